/*
 * fuzz_api.c - requests into the socket API's route handler (agent/api/:
 * routing, percent-decoding, query parsing, blocking reads, and the
 * endpoint, pick, KV, self, ready and metrics answers) of a real agent with
 * static services and a few KV entries, some of them odd bytes.
 *
 * bcn_api_handle is called with a request built as evhttp builds one after
 * it parsed a request line, without a connection: evhttp then frees the
 * request when it is answered, which the harness defers so it can check the
 * answer (a status from 200 to 599; a JSON body wherever the answer is
 * application/json, the server's default type). Requests the handler parks (?index=) are released
 * before the check, as at shutdown. /v1/secrets/ answers 403 here: there is
 * no Unix-socket peer to identify.
 *
 * Input: "<METHOD> <URI>" on the first line, the request body after it.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>

#include "fuzz_agent.h"

static struct bcn_agent agent;

static const struct {
	const char *name;
	enum evhttp_cmd_type type;
} methods[] = {
	{ "GET", EVHTTP_REQ_GET }, { "POST", EVHTTP_REQ_POST }, { "HEAD", EVHTTP_REQ_HEAD },
	{ "PUT", EVHTTP_REQ_PUT }, { "DELETE", EVHTTP_REQ_DELETE }, { "OPTIONS", EVHTTP_REQ_OPTIONS },
	{ "TRACE", EVHTTP_REQ_TRACE }, { "CONNECT", EVHTTP_REQ_CONNECT }, { "PATCH", EVHTTP_REQ_PATCH },
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
static void check_answer(struct evhttp_request *req, const char *uri)
{
	const char *type = evhttp_find_header(req->output_headers, "Content-Type");
	struct evbuffer *out = req->output_buffer;
	json_t *j;

	if (getenv("FUZZ_SHOW")) /* to see what a seed exercises */
		fprintf(stderr, "%s -> %d %s\n%.*s\n", uri, req->response_code, type ? type : "",
			(int)evbuffer_get_length(out), (const char *)evbuffer_pullup(out, -1));
	if (req->response_code < 200 || req->response_code > 599)
		fuzz_fail("%s answered with status %d", uri, req->response_code);
	/* No Content-Type: the server's default, application/json (server.c). */
	if ((!type || strstr(type, "json")) && evbuffer_get_length(out)) {
		j = json_loadb((const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out),
			       JSON_DECODE_ANY, NULL);
		if (!j)
			fuzz_fail("%s answered %d with a body that is not JSON", uri, req->response_code);
		json_decref(j);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t line = nl ? (size_t)(nl - data) : size;
	char *head = fuzz_cstr(data, line), *uri;
	enum evhttp_cmd_type type = EVHTTP_REQ_GET;
	struct evhttp_request *req;
	struct evhttp_uri *parsed;

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
	/* What evhttp lets through its request line: no spaces or line ends,
	 * a URI it can parse (leniently, as it does for servers). */
	if (strpbrk(uri, " \r\n") || !(parsed = evhttp_uri_parse_with_flags(uri, EVHTTP_URI_NONCONFORMANT))) {
		free(head);
		return 0;
	}
	req = evhttp_request_new(NULL, NULL);
	if (!req || !(req->uri = strdup(uri))) {
		evhttp_uri_free(parsed);
		if (req)
			evhttp_request_free(req);
		free(head);
		return 0;
	}
	req->uri_elems = parsed;
	req->kind = EVHTTP_REQUEST;
	req->type = type;
	evhttp_add_header(req->input_headers, "Host", "localhost");
	if (nl && size > line + 1)
		evbuffer_add(req->input_buffer, nl + 1, size - line - 1);
	req->flags |= EVHTTP_REQ_DEFER_FREE; /* keep it after the answer, to check it */

	bcn_api_handle(req, &agent.api);
	if (!(req->flags & EVHTTP_REQ_NEEDS_FREE))
		bcn_api_release_waits(&agent.api); /* a parked blocking read */
	if (!(req->flags & EVHTTP_REQ_NEEDS_FREE))
		fuzz_fail("%s was never answered", uri);
	check_answer(req, uri);
	req->flags &= ~(EVHTTP_REQ_DEFER_FREE | EVHTTP_REQ_NEEDS_FREE);
	evhttp_request_free(req);

	if (agent.drained)
		bcn_agent_drain(&agent, false); /* every input starts undrained */
	event_base_loop(agent.base, EVLOOP_NONBLOCK);
	free(head);
	return 0;
}
