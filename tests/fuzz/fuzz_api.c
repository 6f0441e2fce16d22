/*
 * fuzz_api.c - requests into the socket API's route handler (agent/api/:
 * routing, percent-decoding, query parsing, blocking reads, and the
 * endpoint, pick, KV, self, ready and metrics answers) of a real agent with
 * static services and a few KV entries, some of them odd bytes.
 *
 * bcn_api_handle is called with a request as the server (http/server.h)
 * hands one over after parsing it, without a connection (a detached request
 * keeps its answer), so the harness can check the answer: a status from 200
 * to 599; a JSON body wherever the answer is application/json, the server's
 * default type. Requests the handler parks (?index=) are released before
 * the check, as at shutdown. /v1/secrets/ answers 403 here: there is no
 * Unix-socket peer to identify. (The parser in front of this is fuzzed by
 * fuzz_http.c.)
 *
 * Input: "<METHOD> <URI>" on the first line, the request body after it.
 */
#include <event2/buffer.h>
#include <stdint.h>

#include "fuzz_agent.h"
#include "http/server.h"

static struct bcn_agent agent;

static const struct {
	const char *name;
	enum bcn_method type;
} methods[] = {
	{ "GET", BCN_M_GET }, { "POST", BCN_M_POST }, { "HEAD", BCN_M_HEAD },
	{ "PUT", BCN_M_PUT }, { "DELETE", BCN_M_DELETE }, { "OPTIONS", BCN_M_OPTIONS },
	{ "TRACE", BCN_M_OTHER }, { "CONNECT", BCN_M_OTHER }, { "PATCH", BCN_M_PATCH },
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct { const char *key, *value; size_t len; } kv[] = {
		{ "/config/color", "blue", 4 },
		{ "/config/limits/rps", "100", 3 },
		{ "/config/empty", "", 0 },
		{ "/config/binary", "a\0b\xff\xfe", 5 },
		{ "/config/utf8", "gr\xc3\xbcn \xe2\x9c\x93", 9 },
		{ "/config/cut", "\xe2\x9c", 2 },
	};
	int src;

	(void)argc;
	(void)argv;
	fuzz_logs_on();
	fuzz_agent_init(&agent,
			"{\"node\": \"fuzz\", \"socket\": {\"path\": \"/nonexistent/beacon.sock\"},"
			" \"static\": {\"services\": {"
			"  \"web\": [{\"id\": \"web-1\", \"address\": \"10.0.0.1\", \"port\": 8080,"
			"             \"tags\": [\"v1\", \"primary\"], \"meta\": {\"zone\": \"a\"}, \"weight\": 3},"
			"            {\"address\": \"10.0.0.2\", \"port\": 8080, \"tags\": [\"v2\"], \"status\": \"warning\"},"
			"            {\"address\": \"10.0.0.3\", \"port\": 8080, \"status\": \"critical\"}],"
			"  \"db\": [{\"address\": \"10.1.2.3\", \"port\": 5432}],"
			"  \"caf\\u00e9\": [{\"address\": \"::1\", \"port\": 1}]}}}");
	fuzz_agent_start(&agent);
	/* KV entries as a registry would report them. */
	src = bcn_cache_source_add(agent.core.cache, "fuzz-kv");
	if (src < 0)
		fuzz_fail("cannot add the KV source");
	bcn_cache_kv_watch(agent.core.cache, src, "/config/", true);
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		bcn_cache_kv_put(agent.core.cache, src, kv[i].key, kv[i].value, kv[i].len);
	event_base_loop(agent.base, EVLOOP_NONBLOCK); /* the cache applies changes once per turn */
	return 0;
}

/* The answer a client would get is well-formed. */
static void check_answer(struct bcn_hreq *req, const char *uri)
{
	const char *type = bcn_hreq_type(req);
	struct evbuffer *out = bcn_hreq_body(req);
	int code = bcn_hreq_status(req);
	json_t *j;

	if (getenv("FUZZ_SHOW")) /* to see what a seed exercises */
		fprintf(stderr, "%s -> %d %s\n%.*s\n", uri, code, type,
			(int)evbuffer_get_length(out), (const char *)evbuffer_pullup(out, -1));
	if (code < 200 || code > 599)
		fuzz_fail("%s answered with status %d", uri, code);
	if (strstr(type, "json") && evbuffer_get_length(out)) {
		j = json_loadb((const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out),
			       JSON_DECODE_ANY, NULL);
		if (!j)
			fuzz_fail("%s answered %d with a body that is not JSON", uri, code);
		json_decref(j);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t line = nl ? (size_t)(nl - data) : size;
	char *head = fuzz_cstr(data, line), *uri;
	enum bcn_method type = BCN_M_GET;
	struct bcn_hreq *req;

	if (!head)
		return 0;
	uri = head;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t n = strlen(methods[i].name);
		if (strncmp(head, methods[i].name, n) == 0 && head[n] == ' ') {
			type = methods[i].type;
			uri = head + n + 1;
			break;
		}
	}
	/* What the server's parser lets through as a request target
	 * (http/parser.c): from '/', no spaces, controls or DEL. */
	for (const char *p = uri; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			free(head);
			return 0;
		}
	}
	if (uri[0] != '/') {
		free(head);
		return 0;
	}
	req = bcn_hreq_detached_new(type, uri, nl ? nl + 1 : NULL, nl ? size - line - 1 : 0);
	if (!req) {
		free(head);
		return 0;
	}
	bcn_api_handle(req, &agent.api);
	if (!bcn_hreq_status(req))
		bcn_api_release_waits(&agent.api); /* a parked blocking read */
	if (!bcn_hreq_status(req))
		fuzz_fail("%s was never answered", uri);
	check_answer(req, uri);
	bcn_hreq_detached_free(req);

	if (agent.drained)
		bcn_agent_drain(&agent, false); /* every input starts undrained */
	event_base_loop(agent.base, EVLOOP_NONBLOCK);
	free(head);
	return 0;
}
