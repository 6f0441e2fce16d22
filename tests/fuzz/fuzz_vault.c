/*
 * fuzz_vault.c - Vault's answers to a real Vault secrets instance: the
 * AppRole login (or, for an input that starts with the line "token", the
 * lookup-self of a token_file token), then each secret's read, into the
 * encrypted secret store (plugins/vault/vault_auth.c, vault_secret.c,
 * vault_http.c's error bodies, agent/secrets/), and the /v1/secrets/{name}
 * answer rendered from it.
 *
 * Each request gets the next part of the input (tests/fuzz/fake_http.h):
 * typically the login or lookup first, then the reads of "db" (KV v2),
 * "legacy" (KV v1), "creds" (a leased secret) and "auto" (kv_version 0: its
 * mount is looked up first, sys/internal/ui/mounts), in the order they start.
 * Afterwards every loaded secret must render as a JSON object with its name
 * and a data object, and the instance must leave no request behind.
 */
#include <event2/buffer.h>
#include <stdint.h>

#include "fuzz_agent.h"
#include "secrets/store.h"

static struct bcn_agent approle_agent, token_agent;
static const char *const names[] = { "db", "legacy", "creds", "auto" };

/* A credential file the config can name: a memfd seen through /proc. */
static int cred_file(const char *content)
{
	int fd = memfd_create("beacon-fuzz-cred", 0);

	if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content))
		fuzz_fail("cannot write a credential file");
	return fd;
}

#define SECRETS \
	" \"secrets\": [{\"name\": \"db\", \"path\": \"secret/data/db\", \"kv_version\": 2}," \
	" {\"name\": \"legacy\", \"path\": \"kv/legacy\", \"kv_version\": 1}," \
	" {\"name\": \"creds\", \"path\": \"database/creds/app\", \"kv_version\": 1}," \
	" {\"name\": \"auto\", \"path\": \"team/kv/app\", \"kv_version\": 0}]}}"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char config[1024];
	int role = cred_file("4f3a1c2e-role-id\n"), secret = cred_file("9b8c7d6e-secret-id\n");
	int token = cred_file("hvs.CAESIFuzzTokenForTheHarnessOnly\n");

	(void)argc;
	(void)argv;
	fuzz_logs_on();
	snprintf(config, sizeof(config),
		 "{\"node\": \"fuzz\", \"socket\": {\"path\": \"/nonexistent/beacon.sock\"},"
		 " \"vault\": {\"address\": \"http://127.0.0.1:8200\","
		 " \"auth\": {\"method\": \"approle\", \"role_id_file\": \"/proc/self/fd/%d\","
		 " \"secret_id_file\": \"/proc/self/fd/%d\", \"remove_secret_id_file_after_reading\": false},"
		 SECRETS, role, secret);
	fuzz_agent_init(&approle_agent, config);
	snprintf(config, sizeof(config),
		 "{\"node\": \"fuzz\", \"socket\": {\"path\": \"/nonexistent/beacon.sock\"},"
		 " \"vault\": {\"address\": \"http://127.0.0.1:8200\", \"namespace\": \"team-a\","
		 " \"auth\": {\"method\": \"token\", \"token_file\": \"/proc/self/fd/%d\"},"
		 SECRETS, token);
	fuzz_agent_init(&token_agent, config);
	return 0;
}

static void check_rendered(struct bcn_agent *agent)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct bcn_secret *sec = bcn_secrets_find(agent->core.secrets, names[i]);
		struct evbuffer *out;
		json_t *j;

		if (!sec || !bcn_secret_loaded(sec))
			continue;
		out = evbuffer_new();
		if (!out)
			continue;
		if (bcn_secret_render(sec, out) == 0) {
			j = json_loadb((const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out), 0, NULL);
			if (!json_is_object(j) || !json_is_object(json_object_get(j, "data")) ||
			    !json_is_string(json_object_get(j, "name")) ||
			    strcmp(json_string_value(json_object_get(j, "name")), names[i]) != 0)
				fuzz_fail("secret %s renders as something other than its SPEC object", names[i]);
			json_decref(j);
		}
		evbuffer_free(out);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bcn_agent *agent = &approle_agent;

	if (size >= 6 && memcmp(data, "token\n", 6) == 0) {
		agent = &token_agent;
		data += 6;
		size -= 6;
	}
	fake_http_script(data, size, NULL);
	fuzz_agent_start(agent);
	fake_http_run(agent->base);
	check_rendered(agent);
	fuzz_agent_stop(agent);
	return 0;
}
