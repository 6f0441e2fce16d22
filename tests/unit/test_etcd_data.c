/*
 * Unit tests for etcd_data.c, the reader of what etcd sends (numbers, base64,
 * keys and endpoint values), with hostile inputs; and a real etcd instance
 * against the test core (testcore.h), whose ranges carry broken keys and
 * values: only the good endpoints and keys may reach the store.
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/etcd/etcd.h"
#include "testcore.h"
#include "testutil.h"

extern const struct bcn_plugin bcn_plugin_etcd;

/* etcd_int of {"n": <json>} with max. */
static int64_t num(const char *json, int64_t max)
{
	json_t *obj = json_pack("{so}", "n", json_loads(json, JSON_DECODE_ANY, NULL));
	int64_t n;

	ck_assert_ptr_nonnull(obj);
	n = etcd_int(obj, "n", max);
	json_decref(obj);
	return n;
}

START_TEST(test_int_in_range)
{
	ck_assert_int_eq(num("\"12\"", ETCD_MAX_REVISION), 12);
	ck_assert_int_eq(num("12", ETCD_MAX_REVISION), 12);
	ck_assert_int_eq(num("\"0\"", ETCD_MAX_REVISION), 0);
	/* Lease IDs use the whole positive int64 range and stay exact. */
	ck_assert_int_eq(num("\"7587869391345195788\"", ETCD_MAX_ID), INT64_C(7587869391345195788));
	ck_assert_int_eq(num("\"9223372036854775807\"", ETCD_MAX_ID), INT64_MAX);
	ck_assert_int_eq(num("\"9000000000\"", ETCD_MAX_TTL), INT64_C(9000000000));
}
END_TEST

START_TEST(test_int_clamped_at_the_edges)
{
	/* The header.revision of issue 9: revision + 1 must stay representable. */
	ck_assert_int_eq(num("\"9223372036854775807\"", ETCD_MAX_REVISION), ETCD_MAX_REVISION);
	ck_assert_int_eq(num("9223372036854775807", ETCD_MAX_REVISION), ETCD_MAX_REVISION);
	ck_assert_int_lt(num("\"9223372036854775807\"", ETCD_MAX_REVISION), INT64_MAX);
	/* Beyond int64 (strtoll saturates) and beyond etcd's MaxLeaseTTL. */
	ck_assert_int_eq(num("\"99999999999999999999999\"", ETCD_MAX_REVISION), ETCD_MAX_REVISION);
	ck_assert_int_eq(num("\"9223372036854775807\"", ETCD_MAX_TTL), INT64_C(9000000000));
	/* ttl * 1000 cannot overflow for anything etcd_int returns as a TTL. */
	ck_assert_int_lt(ETCD_MAX_TTL, INT64_MAX / 1000);
	/* Negative numbers read as absent. */
	ck_assert_int_eq(num("\"-1\"", ETCD_MAX_REVISION), 0);
	ck_assert_int_eq(num("\"-9223372036854775808\"", ETCD_MAX_ID), 0);
	ck_assert_int_eq(num("\"-99999999999999999999999\"", ETCD_MAX_ID), 0);
	ck_assert_int_eq(num("-5", ETCD_MAX_TTL), 0);
}
END_TEST

START_TEST(test_int_not_a_number)
{
	ck_assert_int_eq(num("\"\"", ETCD_MAX_REVISION), 0);
	ck_assert_int_eq(num("\"12abc\"", ETCD_MAX_REVISION), 0);
	ck_assert_int_eq(num("\"abc\"", ETCD_MAX_REVISION), 0);
	ck_assert_int_eq(num("1.5e300", ETCD_MAX_REVISION), 0);
	ck_assert_int_eq(num("true", ETCD_MAX_REVISION), 0);
	ck_assert_int_eq(num("null", ETCD_MAX_REVISION), 0);
	ck_assert_int_eq(etcd_int(NULL, "n", ETCD_MAX_REVISION), 0);
}
END_TEST


START_TEST(test_b64_member_hostile)
{
	json_t *o = json_pack("{ssssssss si}", "ok", "aGVsbG8=", "bad", "not base64!", "tail", "aGVsbG8=x",
			      "empty", "", "num", 5);
	char *out = NULL;
	size_t len = 7;

	ck_assert_int_eq(etcd_b64_member(o, "ok", &out, &len), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert_str_eq(out, "hello");
	free(out);
	ck_assert_int_eq(etcd_b64_member(o, "bad", &out, &len), -1);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(etcd_b64_member(o, "tail", &out, &len), -1);
	/* Absent, empty or not a string: an empty value, as etcd omits empty fields. */
	ck_assert_int_eq(etcd_b64_member(o, "missing", &out, &len), 0);
	ck_assert_uint_eq(len, 0);
	free(out);
	ck_assert_int_eq(etcd_b64_member(o, "empty", &out, &len), 0);
	free(out);
	ck_assert_int_eq(etcd_b64_member(o, "num", &out, &len), 0);
	ck_assert_uint_eq(len, 0);
	free(out);
	json_decref(o);
}
END_TEST

START_TEST(test_prefix_end)
{
	size_t n = 0;
	char *e = etcd_prefix_end("/a/", 3, &n);

	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(memcmp(e, "/a0", 3), 0);
	free(e);
	e = etcd_prefix_end("a\xff\xff", 3, &n); /* 0xff bytes carry over */
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(e[0], 'b');
	free(e);
	e = etcd_prefix_end("\xff\xff", 2, &n); /* nothing above: every key */
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(e[0], '\0');
	free(e);
}
END_TEST

START_TEST(test_key_id_hostile)
{
	const char *base = "/s/web/", *why = NULL, *id;
	char longkey[300 + 8], nul[] = "/s/web/a\0b";
	size_t n;

	id = etcd_key_id(base, 7, "/s/web/w1", 9, &n, &why);
	ck_assert_ptr_nonnull(id);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(memcmp(id, "w1", 2), 0);
	ck_assert_ptr_null(etcd_key_id(base, 7, "/s/other/w1", 11, &n, &why));
	ck_assert_ptr_nonnull(strstr(why, "outside"));
	ck_assert_ptr_null(etcd_key_id(base, 7, "/s/we", 5, &n, &why)); /* shorter than the base */
	ck_assert_ptr_nonnull(strstr(why, "outside"));
	ck_assert_ptr_null(etcd_key_id(base, 7, "/s/web/", 7, &n, &why));
	ck_assert_ptr_nonnull(strstr(why, "empty"));
	ck_assert_ptr_null(etcd_key_id(base, 7, "/s/web/a/b", 10, &n, &why));
	ck_assert_ptr_nonnull(strstr(why, "more levels"));
	ck_assert_ptr_null(etcd_key_id(base, 7, nul, sizeof(nul) - 1, &n, &why));
	ck_assert_ptr_nonnull(strstr(why, "short text"));
	memcpy(longkey, base, 7);
	memset(longkey + 7, 'x', 300);
	ck_assert_ptr_null(etcd_key_id(base, 7, longkey, 307, &n, &why));
	ck_assert_ptr_nonnull(strstr(why, "short text"));
}
END_TEST

/* etcd_parse_endpoint of value under key /s/web/<id>. */
static struct bcn_endpoint *parse_n(struct etcd_ctx *ctx, const char *id, const char *value, size_t vlen)
{
	char key[128];

	snprintf(key, sizeof(key), "/s/web/%s", id);
	return etcd_parse_endpoint(ctx, "web", key, strlen(key), id, value, vlen);
}

static struct bcn_endpoint *parse(struct etcd_ctx *ctx, const char *id, const char *value)
{
	return parse_n(ctx, id, value, strlen(value));
}

START_TEST(test_parse_endpoint_hostile)
{
	struct etcd_ctx *ctx = calloc(1, sizeof(*ctx));
	const char *bad[] = {
		"", "not json", "[1,2]", "\"text\"", "null", "{\"address\":\"10.0.0.1\"",
		"{\"id\":5,\"address\":\"10.0.0.1\",\"port\":80}",       /* id not a string */
		"{\"id\":\"other\",\"address\":\"10.0.0.1\",\"port\":80}", /* id not the key's */
		"{\"address\":\"10.0.0.1\",\"port\":70000}",
		"{\"address\":\"10.0.0.1\",\"port\":-1}",
		"{\"address\":\"10.0.0.1\",\"port\":\"80\"}",
		"{\"address\":\"\",\"port\":80}",
		"{\"address\":\"10.0.0.1\",\"port\":80,\"tags\":[1]}",
		"{\"address\":\"10.0.0.1\",\"port\":80,\"status\":\"bogus\"}",
	};
	static const char nul_id[] = "{\"id\":\"w1\\u0000x\",\"address\":\"10.0.0.1\",\"port\":80}";
	struct bcn_endpoint *ep;
	char *huge;

	ck_assert_ptr_nonnull(ctx);
	ctx->log = "etcd#0";
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ep = parse(ctx, "w1", bad[i]);
		ck_assert_msg(ep == NULL, "accepted %s", bad[i]);
	}
	ck_assert_ptr_null(parse_n(ctx, "w1", nul_id, sizeof(nul_id) - 1));
	/* A value with a NUL inside is not JSON to jansson's length-aware loader. */
	ck_assert_ptr_null(parse_n(ctx, "w1", "{\"port\":80}\0junk", 16));
	huge = malloc(ETCD_MAX_VALUE + 2);
	ck_assert_ptr_nonnull(huge);
	memset(huge, ' ', ETCD_MAX_VALUE + 1);
	memcpy(huge, "{\"address\":\"10.0.0.1\",\"port\":80}", 32);
	ck_assert_ptr_null(parse_n(ctx, "w1", huge, ETCD_MAX_VALUE + 1));
	free(huge);

	/* The id comes from the key when the value has none. */
	ep = parse(ctx, "w1", "{\"address\":\"10.0.0.1\",\"port\":80}");
	ck_assert_ptr_nonnull(ep);
	ck_assert_str_eq(ep->id, "w1");
	ck_assert_uint_eq(ep->port, 80);
	free(ep);
	ep = parse(ctx, "w2", "{\"id\":\"w2\",\"address\":\"10.0.0.2\",\"port\":81}");
	ck_assert_ptr_nonnull(ep);
	ck_assert_str_eq(ep->id, "w2");
	free(ep);
	free(ctx);
}
END_TEST

/* ---- an instance against the test core ---- */

static const struct fake_route etcd_canned[] = {
	{ "/v3/maintenance/status", "200\n\n{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"5\"},\"version\":\"3.4.23\"}" },
	{ NULL, NULL },
};

/* The /config/ range (two good keys), then the web range: good web-1 and
 * web-6 among a value that is not JSON, a nested key, an id that is not the
 * key's, a port out of range, a list, an empty id and a value that is not
 * base64. The watch streams that follow stay unanswered. */
static const char etcd_script[] =
	"{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"5\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"L2NvbmZpZy9jb2xvcg==\",\"mod_revision\":\"4\",\"value\":\"Ymx1ZQ==\"},{\"key\":\"L2NvbmZpZy9saW1pdHMvcnBz\",\"mod_revision\":\"4\",\"value\":\"MTAw\"}],\"count\":\"2\"}\n--\n"
	"{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"5\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"L3NlcnZpY2VzL3dlYi93ZWItMQ==\",\"mod_revision\":\"3\",\"value\":\"eyJpZCI6IndlYi0xIiwiYWRkcmVzcyI6IjEwLjAuMC4xIiwicG9ydCI6ODA4MH0=\"},{\"key\":\"L3NlcnZpY2VzL3dlYi9iYWQ=\",\"mod_revision\":\"3\",\"value\":\"bm90IGpzb24=\"},{\"key\":\"L3NlcnZpY2VzL3dlYi9hL2I=\",\"mod_revision\":\"3\",\"value\":\"eyJhZGRyZXNzIjoiMTAuMC4wLjkiLCJwb3J0IjoxfQ==\"},{\"key\":\"L3NlcnZpY2VzL3dlYi93ZWItMg==\",\"mod_revision\":\"3\",\"value\":\"eyJpZCI6Im90aGVyIiwiYWRkcmVzcyI6IjEwLjAuMC4yIiwicG9ydCI6ODA4MH0=\"},{\"key\":\"L3NlcnZpY2VzL3dlYi93ZWItMw==\",\"mod_revision\":\"3\",\"value\":\"eyJhZGRyZXNzIjoiMTAuMC4wLjMiLCJwb3J0Ijo3MDAwMH0=\"},{\"key\":\"L3NlcnZpY2VzL3dlYi93ZWItNA==\",\"mod_revision\":\"3\",\"value\":\"WzEsMl0=\"},{\"key\":\"L3NlcnZpY2VzL3dlYi8=\",\"mod_revision\":\"3\",\"value\":\"eyJhZGRyZXNzIjoiMTAuMC4wLjUiLCJwb3J0Ijo1fQ==\"},{\"key\":\"L3NlcnZpY2VzL3dlYi93ZWItNQ==\",\"mod_revision\":\"3\",\"value\":\"not base64!\"},{\"key\":\"L3NlcnZpY2VzL3dlYi93ZWItNg==\",\"mod_revision\":\"3\",\"value\":\"eyJhZGRyZXNzIjoiMTAuMC4wLjYiLCJwb3J0Ijo2LCJzdGF0dXMiOiJ3YXJuaW5nIn0=\"}],\"count\":\"9\"}";

static const struct tc_report *find(const struct testcore *t, enum tc_kind kind, const char *name)
{
	for (size_t i = t->nreports; i-- > 0;) {
		const struct tc_report *r = &t->reports[i];
		if (r->kind == kind && r->name && strcmp(r->name, name) == 0)
			return r;
	}
	return NULL;
}

START_TEST(test_instance_skips_hostile_values)
{
	static const char *const services[] = { "web", NULL }, *const kv[] = { "/config/", NULL };
	struct testcore t;
	const struct tc_report *r;

	tc_setup(&t, &bcn_plugin_etcd, "{\"endpoints\": [\"http://127.0.0.1:2379\"], \"prefix\": \"/services\"}",
		 false);
	tc_watch(&t, services, kv);
	tc_start(&t, etcd_script, etcd_canned);
	ck_assert_ptr_nonnull(find(&t, TC_WATCH, "web"));
	ck_assert_ptr_nonnull(find(&t, TC_KV_WATCH, "/config/"));
	r = find(&t, TC_ENDPOINTS_REPLACE, "web");
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->len, 2);
	ck_assert_str_eq(r->text, "web-1,web-6");
	r = find(&t, TC_KV_REPLACE, "/config/");
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->len, 2);
	ck_assert_str_eq(r->text, "/config/color,/config/limits/rps");
	/* Synced: the last staleness report says fresh. */
	ck_assert_ptr_nonnull(tc_last(&t, TC_STALE));
	ck_assert(!tc_last(&t, TC_STALE)->flag);
	tc_teardown(&t);
}
END_TEST

static Suite *etcd_data_suite(void)
{
	Suite *s = suite_create("etcd_data");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_int_in_range);
	tcase_add_test(tc, test_int_clamped_at_the_edges);
	tcase_add_test(tc, test_int_not_a_number);
	tcase_add_test(tc, test_b64_member_hostile);
	tcase_add_test(tc, test_prefix_end);
	tcase_add_test(tc, test_key_id_hostile);
	tcase_add_test(tc, test_parse_endpoint_hostile);
	tcase_add_test(tc, test_instance_skips_hostile_values);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(etcd_data_suite)
