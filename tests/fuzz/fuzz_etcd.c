/*
 * fuzz_etcd.c - etcd's answers to a real etcd registry instance: the
 * /v3/kv/range pages and the /v3/watch stream (plugins/etcd/etcd_watch.c,
 * etcd_conn.c's error classification, etcd_data.c), through to the cache
 * and the bodies the socket serves.
 *
 * The instance watches the service "web" and the KV prefix "/config/"; the
 * status probe is answered by the harness, every other request by the next
 * part of the input (tests/fuzz/fake_http.h): typically the two ranges,
 * then the two watch streams, each streamed in X-Fuzz-Chunk pieces so a
 * message split across reads is covered. Afterwards every body the cache
 * serves must be JSON, and the instance must leave no request behind.
 */
#include <stdint.h>

#include "fuzz_agent.h"

static struct bcn_agent agent;

static const struct fake_route canned[] = {
	{ "/v3/maintenance/status", "200\n\n{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"5\"},\"version\":\"3.4.23\"}" },
	{ NULL, NULL },
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_logs_on();
	fuzz_agent_init(&agent,
			"{\"node\": \"fuzz\", \"socket\": {\"path\": \"/nonexistent/beacon.sock\"},"
			" \"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://127.0.0.1:2379\"],"
			" \"prefix\": \"/services\"},"
			" \"watch\": {\"services\": [\"web\"], \"kv\": [\"/config/\"]}}");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fake_http_script(data, size, canned);
	fuzz_agent_start(&agent);
	fake_http_run(agent.base);
	fuzz_agent_check_bodies(&agent);
	fuzz_agent_stop(&agent);
	return 0;
}
