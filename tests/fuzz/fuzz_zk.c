/*
 * fuzz_zk.c - an instance znode of the ZooKeeper backend, as anyone with write
 * access to the base path can create it: Curator's ServiceInstance JSON read
 * by zk_parse_instance (plugins/zookeeper/zk_data.c), then the skip logger
 * with the reason, as zk_watch.c calls them.
 *
 * Input: the znode's name (the instance id) up to the first newline, then its
 * data. An accepted endpoint must carry the znode's name as id and the
 * watched service, render as a JSON object with that id, and read back the
 * same after beacon writes it as an instance (zk_instance_json); a refusal
 * must give a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zk.h"
#include "fuzz_util.h"

static struct zk_ctx ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_logs_on();
	ctx.log = "zookeeper#0";
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t idlen = nl ? (size_t)(nl - data) : 0;
	const char *value = nl ? (const char *)nl + 1 : (const char *)data;
	size_t vlen = nl ? size - idlen - 1 : size;
	char id[257], why[200], path[300], *text;
	struct bcn_endpoint *ep, *back;
	json_t *j;

	if (idlen > 256 || memchr(data, '\0', idlen) || memchr(data, '/', idlen))
		return 0; /* znode names are short and hold neither */
	memcpy(id, data, idlen);
	id[idlen] = '\0';
	if (!idlen)
		strcpy(id, "i");
	memset(ctx.skipped, 0, sizeof(ctx.skipped)); /* every input may log */
	ctx.nskipped = 0;
	snprintf(path, sizeof(path), "/services/web/%s", id);
	ep = zk_parse_instance("web", id, value, vlen, why, sizeof(why));
	if (!ep) {
		if (!why[0])
			fuzz_fail("an instance was refused without a reason");
		zk_skip(&ctx, path, "%s", why);
		return 0;
	}
	if (strcmp(ep->id, id) != 0 || strcmp(ep->service, "web") != 0)
		fuzz_fail("an endpoint does not carry its znode's name and service");
	j = json_loadb(ep->json, ep->json_len, 0, NULL);
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "id")) ||
	    strcmp(json_string_value(json_object_get(j, "id")), id) != 0)
		fuzz_fail("an endpoint renders as something other than a JSON object with its id");
	json_decref(j);
	text = zk_instance_json(ep, "web", 1700000000000ULL);
	if (text) {
		back = zk_parse_instance("web", id, text, strlen(text), why, sizeof(why));
		if (!back || back->json_len != ep->json_len || memcmp(back->json, ep->json, ep->json_len))
			fuzz_fail("an instance beacon writes does not read back the same: %s", back ? "" : why);
		free(back);
		free(text);
	}
	free(ep);
	return 0;
}
