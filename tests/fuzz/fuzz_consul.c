/*
 * fuzz_consul.c - the Consul agent's answers to a real Consul registry
 * instance: /v1/health/service/<name> and /v1/kv/<prefix>?recurse, with
 * their X-Consul-Index headers and error statuses (plugins/consul/
 * consul_data.c, consul_watch.c, consul_req.c), through to the cache and
 * the bodies the socket serves.
 *
 * The instance watches the service "web" and the KV prefix "/config/"; each
 * request gets the next part of the input (tests/fuzz/fake_http.h), so
 * typically the first part answers one watch and the second the other.
 * Afterwards every body the cache serves must be JSON, and the instance
 * must leave no request behind.
 */
#include <stdint.h>

#include "fuzz_agent.h"

static struct bcn_agent agent;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_logs_on();
	fuzz_agent_init(&agent,
			"{\"node\": \"fuzz\", \"socket\": {\"path\": \"/nonexistent/beacon.sock\"},"
			" \"registry\": {\"backend\": \"consul\", \"address\": \"http://127.0.0.1:8500\"},"
			" \"watch\": {\"services\": [\"web\"], \"kv\": [\"/config/\"]}}");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fake_http_script(data, size, NULL);
	fuzz_agent_start(&agent);
	fake_http_run(agent.base);
	fuzz_agent_check_bodies(&agent);
	fuzz_agent_stop(&agent);
	return 0;
}
