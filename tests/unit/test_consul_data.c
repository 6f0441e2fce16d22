/*
 * Unit tests for consul_data.c, the reader of the Consul agent's answers
 * (/v1/health/service/<name>, /v1/kv/<prefix>?recurse), with hostile inputs;
 * and a real Consul instance against the test core (testcore.h): a health
 * answer full of broken entries must reach the store as its good ones only.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/consul/consul.h"
#include "testcore.h"
#include "testutil.h"

extern const struct bcn_plugin bcn_plugin_consul;

static struct consul_ctx *ctx_new(void)
{
	struct consul_ctx *ctx = calloc(1, sizeof(*ctx));

	ck_assert_ptr_nonnull(ctx);
	ctx->log = "consul#0";
	return ctx;
}

/* consul_parse_health of body: the endpoint ids joined by ',' into ids, or -1. */
static int health(struct consul_ctx *ctx, const char *body, char *ids, size_t cap, const char **why)
{
	struct bcn_endpoint **eps = NULL;
	size_t n = 0;
	int rc = consul_parse_health(ctx, "web", body, strlen(body), &eps, &n, why);

	ids[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strncat(ids, ",", cap - strlen(ids) - 1);
		strncat(ids, eps[i]->id, cap - strlen(ids) - 1);
		free(eps[i]);
	}
	free(eps);
	return rc;
}

#define SVC(id, port) "{\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.1\"},\"Service\":{\"ID\":" id ",\"Port\":" port "}"

START_TEST(test_health_not_a_list)
{
	struct consul_ctx *ctx = ctx_new();
	const char *why = NULL;
	char ids[256];

	ck_assert_int_eq(health(ctx, "", ids, sizeof(ids), &why), -1);
	ck_assert_str_eq(why, "the answer is not valid JSON");
	ck_assert_int_eq(health(ctx, "[{\"Service\":", ids, sizeof(ids), &why), -1);
	ck_assert_int_eq(health(ctx, "{\"Service\":{}}", ids, sizeof(ids), &why), -1);
	ck_assert_str_eq(why, "the answer is not a JSON list");
	ck_assert_int_eq(health(ctx, "\"web\"", ids, sizeof(ids), &why), -1);
	ck_assert_int_eq(health(ctx, "[]", ids, sizeof(ids), &why), 0);
	ck_assert_str_eq(ids, "");
	free(ctx);
}
END_TEST

START_TEST(test_health_hostile_entries)
{
	struct consul_ctx *ctx = ctx_new();
	const char *why = NULL;
	char ids[512], body[4096];

	snprintf(body, sizeof(body), "[%s]",
		 SVC("\"good\"", "80") "},"
		 "5, null, \"text\", [],"
		 "{\"Node\":{\"Node\":\"n1\"}},"                           /* no Service */
		 "{\"Service\":\"web\"},"
		 SVC("\"\"", "80") "},"                                   /* empty ID */
		 SVC("7", "80") "},"                                      /* ID not a string */
		 SVC("\"checks\"", "80") ",\"Checks\":{\"Status\":\"passing\"}},"
		 SVC("\"port-text\"", "\"80\"") "},"
		 SVC("\"port-big\"", "70000") "},"
		 SVC("\"port-neg\"", "-1") "},"
		 SVC("\"port-real\"", "80.5") "},"
		 "{\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.1\"},\"Service\":{\"ID\":\"tags\",\"Port\":80,\"Tags\":\"a\"}},"
		 "{\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.1\"},\"Service\":{\"ID\":\"tagnum\",\"Port\":80,\"Tags\":[1]}},"
		 "{\"Node\":{\"Node\":\"n1\"},\"Service\":{\"ID\":\"noaddr\",\"Port\":80}},"
		 /* Accepted: weights clamped, a null Tags list, Meta not an object ignored. */
		 "{\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.1\"},\"Service\":{\"ID\":\"w-clamped\",\"Port\":81,"
		 "\"Tags\":null,\"Meta\":[1],\"Weights\":{\"Passing\":1000000}}}");
	ck_assert_int_eq(health(ctx, body, ids, sizeof(ids), &why), 0);
	ck_assert_str_eq(ids, "good,w-clamped");
	free(ctx);
}
END_TEST

START_TEST(test_health_status_and_shared_ids)
{
	struct consul_ctx *ctx = ctx_new();
	struct bcn_endpoint **eps = NULL;
	const char *why = NULL;
	size_t n = 0;
	/* The same ID on two nodes stays two endpoints; any check not known as
	 * passing/warning (maintenance, garbage, a missing Status) is critical. */
	const char *body =
		"[{\"Node\":{\"Node\":\"a\",\"Address\":\"10.0.0.1\"},\"Service\":{\"ID\":\"web\",\"Port\":80},"
		"\"Checks\":[{\"Status\":\"passing\"},{\"Status\":\"maintenance\"}]},"
		"{\"Node\":{\"Node\":\"b\",\"Address\":\"10.0.0.2\"},\"Service\":{\"ID\":\"web\",\"Port\":80},"
		"\"Checks\":[{\"Status\":\"warning\"},{\"Status\":5}]},"
		"{\"Node\":{\"Node\":\"c\",\"Address\":\"10.0.0.3\"},\"Service\":{\"ID\":\"w3\",\"Port\":80},"
		"\"Checks\":[{\"Status\":\"warning\"},{\"Status\":\"passing\"}]}]";

	ck_assert_int_eq(consul_parse_health(ctx, "web", body, strlen(body), &eps, &n, &why), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(eps[0]->id, "w3");
	ck_assert_ptr_nonnull(strstr(eps[0]->json, "\"warning\""));
	ck_assert_str_eq(eps[1]->id, "web@a");
	ck_assert_ptr_nonnull(strstr(eps[1]->json, "\"critical\""));
	ck_assert_str_eq(eps[2]->id, "web@b");
	ck_assert_ptr_nonnull(strstr(eps[2]->json, "\"critical\""));
	for (size_t i = 0; i < n; i++)
		free(eps[i]);
	free(eps);
	free(ctx);
}
END_TEST

START_TEST(test_kv_hostile)
{
	struct consul_ctx *ctx = ctx_new();
	struct consul_kv_list l;
	const char *why = NULL;
	const char *body =
		"[{\"Key\":\"config/color\",\"Value\":\"Ymx1ZQ==\"},"
		"{\"Key\":\"config/empty\",\"Value\":null},"
		"{\"Key\":\"config/nil\"},"
		"{\"Key\":\"config/bad\",\"Value\":\"not base64!\"},"
		"{\"Key\":\"config/tail\",\"Value\":\"Ymx1ZQ==x\"},"
		"{\"Key\":\"config/num\",\"Value\":5},"
		"{\"Key\":\"other/x\",\"Value\":\"eA==\"},"
		"{\"Key\":5},{\"Value\":\"eA==\"},7,null,"
		"{\"Key\":\"config/bin\",\"Value\":\"AP8A\"}]";

	ck_assert_int_eq(consul_parse_kv(ctx, "/config/", "{}", 2, &l, &why), -1);
	ck_assert_str_eq(why, "the answer is not a JSON list");
	ck_assert_int_eq(consul_parse_kv(ctx, "/config/", "[", 1, &l, &why), -1);
	ck_assert_str_eq(why, "the answer is not valid JSON");
	ck_assert_int_eq(consul_parse_kv(ctx, "/config/", body, strlen(body), &l, &why), 0);
	ck_assert_uint_eq(l.n, 4);
	ck_assert_str_eq(l.keys[0], "/config/color");
	ck_assert_uint_eq(l.lens[0], 4);
	ck_assert_str_eq(l.vals[0], "blue");
	ck_assert_str_eq(l.keys[1], "/config/empty");
	ck_assert_uint_eq(l.lens[1], 0);
	ck_assert_str_eq(l.keys[2], "/config/nil");
	ck_assert_str_eq(l.keys[3], "/config/bin"); /* bytes, NUL included, kept as they are */
	ck_assert_uint_eq(l.lens[3], 3);
	ck_assert_int_eq(memcmp(l.vals[3], "\0\xff\0", 3), 0);
	consul_kv_list_free(&l);
	free(ctx);
}
END_TEST

/* ---- an instance against the test core ---- */

START_TEST(test_instance_skips_hostile_entries)
{
	static const char *const services[] = { "web", NULL };
	static const char script[] =
		"200\nX-Consul-Index: 7\n\n["
		SVC("\"good\"", "80") "},"
		SVC("\"\"", "80") "},"
		SVC("\"bad-port\"", "\"x\"") "},"
		"{\"Service\":null}, 3]";
	struct testcore t;
	const struct tc_report *r;

	tc_setup(&t, &bcn_plugin_consul, "{\"address\": \"http://127.0.0.1:8500\"}", false);
	tc_watch(&t, services, NULL);
	tc_start(&t, script, NULL);
	r = tc_last(&t, TC_ENDPOINTS_REPLACE);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->name, "web");
	ck_assert_uint_eq(r->len, 1);
	ck_assert_str_eq(r->text, "good");
	tc_teardown(&t);
}
END_TEST

START_TEST(test_instance_garbage_answer_stores_nothing)
{
	static const char *const services[] = { "web", NULL };
	struct testcore t;

	tc_setup(&t, &bcn_plugin_consul, "{\"address\": \"http://127.0.0.1:8500\"}", false);
	tc_watch(&t, services, NULL);
	tc_start(&t, "200\nX-Consul-Index: 7\n\n{\"not\": \"a list\"}", NULL);
	ck_assert_uint_eq(tc_count(&t, TC_ENDPOINTS_REPLACE), 0);
	ck_assert_ptr_nonnull(strstr(t.ins.last_error, "malformed"));
	ck_assert(!t.ins.ready);
	tc_teardown(&t);
}
END_TEST

static Suite *consul_data_suite(void)
{
	Suite *s = suite_create("consul_data");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_health_not_a_list);
	tcase_add_test(tc, test_health_hostile_entries);
	tcase_add_test(tc, test_health_status_and_shared_ids);
	tcase_add_test(tc, test_kv_hostile);
	tcase_add_test(tc, test_instance_skips_hostile_entries);
	tcase_add_test(tc, test_instance_garbage_answer_stores_nothing);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(consul_data_suite)
