/*
 * fuzz_etcd_value.c - an etcd key and its value, as anyone with write access
 * to the prefix can put them (etcd_key_id, etcd_parse_endpoint in
 * plugins/etcd/etcd_data.c, bcn_endpoint_from_json in agent/store/endpoint.c).
 *
 * Input: the key's part after "/services/web/" up to the first newline, then
 * the value. An accepted endpoint must carry the key's id and render as a
 * JSON object with that id: the socket serves that text as it is.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "fuzz_util.h"

static struct etcd_ctx ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_logs_on();
	ctx.log = "etcd#0";
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char base[] = "/services/web/";
	const uint8_t *nl = memchr(data, '\n', size);
	size_t tail = nl ? (size_t)(nl - data) : 0, klen = sizeof(base) - 1 + tail, idlen;
	const char *value = nl ? (const char *)nl + 1 : (const char *)data, *why = NULL, *id;
	size_t vlen = nl ? size - tail - 1 : size;
	char *key = malloc(klen + 1), idbuf[257];
	struct bcn_endpoint *ep;
	json_t *j;

	if (!key)
		return 0;
	memcpy(key, base, sizeof(base) - 1);
	memcpy(key + sizeof(base) - 1, data, tail);
	key[klen] = '\0';
	memset(ctx.skipped, 0, sizeof(ctx.skipped)); /* every input may log */
	ctx.nskipped = 0;
	id = etcd_key_id(base, sizeof(base) - 1, key, klen, &idlen, &why);
	if (!id) {
		if (!why)
			fuzz_fail("a key was refused without a reason");
		etcd_skip(&ctx, key, klen, "%s", why);
		free(key);
		return 0;
	}
	memcpy(idbuf, id, idlen);
	idbuf[idlen] = '\0';
	ep = etcd_parse_endpoint(&ctx, "web", key, klen, idbuf, value, vlen);
	if (ep) {
		if (strcmp(ep->id, idbuf) != 0 || strcmp(ep->service, "web") != 0)
			fuzz_fail("an endpoint does not carry its key's id and service");
		j = json_loadb(ep->json, ep->json_len, 0, NULL);
		if (!json_is_object(j) || !json_is_string(json_object_get(j, "id")) ||
		    strcmp(json_string_value(json_object_get(j, "id")), idbuf) != 0)
			fuzz_fail("an endpoint renders as something other than a JSON object with its id");
		json_decref(j);
		free(ep);
	}
	free(key);
	return 0;
}
