/*
 * Unit tests for the Vault plugin's reading of Vault's answers (the token
 * lookup, KV v1 / KV v2 reads and leased secrets in vault_secret.c, the
 * durations of vault_http.c), with hostile inputs, on a real Vault instance
 * against the test core (testcore.h): what reaches the secret store is
 * recorded as bcn_report_secret_* calls.
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../plugins/vault/vault.h"
#include "testcore.h"
#include "testutil.h"

extern const struct bcn_plugin bcn_plugin_vault;

static char token_path[64];

/* A token lookup answer: the token is valid for an hour. */
#define LOOKUP "200\n\n{\"data\":{\"id\":\"hvs.x\",\"ttl\":3600,\"renewable\":true,\"policies\":[\"default\"]}}\n--\n"

/* A token instance reading db (KV v2), legacy (KV v1) and creds (leased), in that order. */
static void vault_setup(struct testcore *t)
{
	char conf[1024];
	int fd;

	snprintf(token_path, sizeof(token_path), "/tmp/beacon-test-token-XXXXXX");
	fd = mkstemp(token_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "hvs.test\n", 9), 9);
	close(fd);
	snprintf(conf, sizeof(conf),
		 "{\"address\": \"http://127.0.0.1:8200\", \"auth\": {\"method\": \"token\", \"token_file\": \"%s\"},"
		 " \"secrets\": [{\"name\": \"db\", \"path\": \"secret/data/db\", \"kv_version\": 2},"
		 " {\"name\": \"legacy\", \"path\": \"kv/legacy\", \"kv_version\": 1},"
		 " {\"name\": \"creds\", \"path\": \"database/creds/app\", \"kv_version\": 1}]}",
		 token_path);
	tc_setup(t, &bcn_plugin_vault, conf, true);
}

static void vault_teardown(struct testcore *t)
{
	tc_teardown(t);
	unlink(token_path);
}

static const struct tc_report *put_of(const struct testcore *t, const char *name)
{
	for (size_t i = 0; i < t->nreports; i++) {
		const struct tc_report *r = &t->reports[i];
		if (r->kind == TC_SECRET_PUT && strcmp(r->name, name) == 0)
			return r;
	}
	return NULL;
}

START_TEST(test_good_answers)
{
	struct testcore t;
	const struct tc_report *r;

	vault_setup(&t);
	tc_start(&t, LOOKUP
		 "200\n\n{\"data\":{\"data\":{\"username\":\"app\",\"password\":\"pw\"},\"metadata\":{\"version\":3}}}\n--\n"
		 "200\n\n{\"lease_id\":\"\",\"lease_duration\":3600,\"data\":{\"api_key\":\"abc\"}}\n--\n"
		 "200\n\n{\"lease_id\":\"database/creds/app/x1\",\"renewable\":true,\"lease_duration\":600,"
		 "\"data\":{\"username\":\"v-app\",\"password\":\"p\"}}",
		 NULL);
	ck_assert_uint_eq(tc_count(&t, TC_SECRET_DECLARE), 3);
	r = put_of(&t, "db");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->text, "{\"password\":\"pw\",\"username\":\"app\"}");
	ck_assert_int_eq(r->version, 3);
	ck_assert_uint_eq(r->expires_at_ms, 0);
	r = put_of(&t, "legacy");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->text, "{\"api_key\":\"abc\"}");
	ck_assert_int_lt(r->version, 0); /* no version from Vault: the store counts */
	ck_assert_uint_eq(r->expires_at_ms, 0);
	r = put_of(&t, "creds");
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_gt(r->expires_at_ms, bcn_now_ms());
	ck_assert_uint_le(r->expires_at_ms, bcn_now_ms() + 600 * 1000);
	ck_assert(t.ins.ready);
	vault_teardown(&t);
}
END_TEST

START_TEST(test_hostile_answers_store_nothing)
{
	struct testcore t;

	vault_setup(&t);
	tc_start(&t, LOOKUP
		 /* db: KV v2 without a data object */
		 "200\n\n{\"data\":{\"data\":\"text\",\"metadata\":{\"version\":3}}}\n--\n"
		 /* legacy: data is a list */
		 "200\n\n{\"data\":[1,2]}\n--\n"
		 /* creds: cut off */
		 "200\n\n{\"lease_id\":\"x\",\"data\":{",
		 NULL);
	ck_assert_uint_eq(tc_count(&t, TC_SECRET_PUT), 0);
	ck_assert(!t.ins.ready);
	ck_assert_str_ne(t.ins.last_error, "");
	vault_teardown(&t);
}
END_TEST

START_TEST(test_hostile_numbers_are_clamped)
{
	struct testcore t;
	const struct tc_report *r;
	uint64_t now;

	vault_setup(&t);
	tc_start(&t, LOOKUP
		 /* a negative version: the store counts instead */
		 "200\n\n{\"data\":{\"data\":{\"a\":\"b\"},\"metadata\":{\"version\":-7}}}\n--\n"
		 /* a negative lease duration: no lease */
		 "200\n\n{\"lease_id\":\"kv/legacy/l1\",\"lease_duration\":-5,\"data\":{\"k\":\"v\"}}\n--\n"
		 /* an absurd lease duration: at most VAULT_MAX_SECONDS */
		 "200\n\n{\"lease_id\":\"database/creds/app/x2\",\"renewable\":false,\"lease_duration\":1e300,"
		 "\"data\":{\"u\":\"v\"}}",
		 NULL);
	now = bcn_now_ms();
	r = put_of(&t, "db");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_lt(r->version, 0);
	r = put_of(&t, "legacy");
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->expires_at_ms, 0);
	r = put_of(&t, "creds");
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_gt(r->expires_at_ms, now);
	ck_assert_uint_le(r->expires_at_ms, now + VAULT_MAX_SECONDS * 1000);
	vault_teardown(&t);
}
END_TEST

START_TEST(test_seconds)
{
	json_t *j;

	ck_assert_uint_eq(vault_seconds(NULL), 0);
	j = json_integer(-1);
	ck_assert_uint_eq(vault_seconds(j), 0);
	json_decref(j);
	j = json_integer(INT64_MAX);
	ck_assert_uint_eq(vault_seconds(j), VAULT_MAX_SECONDS);
	json_decref(j);
	j = json_real(1e300);
	ck_assert_uint_eq(vault_seconds(j), VAULT_MAX_SECONDS);
	json_decref(j);
	j = json_real(-0.5);
	ck_assert_uint_eq(vault_seconds(j), 0);
	json_decref(j);
	j = json_real(90.9);
	ck_assert_uint_eq(vault_seconds(j), 90);
	json_decref(j);
	j = json_string("3600");
	ck_assert_uint_eq(vault_seconds(j), 0);
	json_decref(j);
}
END_TEST

static Suite *vault_reply_suite(void)
{
	Suite *s = suite_create("vault_reply");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_good_answers);
	tcase_add_test(tc, test_hostile_answers_store_nothing);
	tcase_add_test(tc, test_hostile_numbers_are_clamped);
	tcase_add_test(tc, test_seconds);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(vault_reply_suite)
