/*
 * Unit tests for zk_data.c, Apache Curator's ServiceInstance JSON both ways:
 * what beacon writes (an untagged payload a plain Curator client reads as a
 * Map), and what it accepts from a znode: Curator's own shape, Spring Cloud
 * Zookeeper's "@class"-tagged payload with "metadata", odd payloads, and
 * hostile data (not JSON, invalid UTF-8, oversized, mismatched ids, bad
 * fields), each refused with a reason and nothing else. And an instance of
 * the plugin against the test core with no server to reach: it declares its
 * watches, serves stale, says "connecting", and cb_exit closes the handle.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/zookeeper/zk.h"
#include "testcore.h"
#include "testutil.h"

extern const struct bcn_plugin bcn_plugin_zookeeper;

static char why[200];

static struct bcn_endpoint *parse(const char *id, const char *data)
{
	return zk_parse_instance("api", id, data, strlen(data), why, sizeof(why));
}

/* The endpoint's ENDPOINT JSON as an object (a new reference). */
static json_t *ep_json(const struct bcn_endpoint *e)
{
	json_t *j = json_loadb(e->json, e->json_len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	return j;
}

START_TEST(test_curator_instance)
{
	struct bcn_endpoint *e = parse("a1",
		"{\"name\":\"api\",\"id\":\"a1\",\"address\":\"10.0.0.5\",\"port\":8080,\"sslPort\":null,"
		"\"payload\":{\"tags\":[\"x\",\"y\"],\"meta\":{\"k\":\"v\"},\"weight\":7,\"status\":\"warning\"},"
		"\"registrationTimeUTC\":1700000000000,\"serviceType\":\"DYNAMIC\",\"uriSpec\":null}");
	json_t *j;

	ck_assert_msg(e != NULL, "%s", why);
	ck_assert_str_eq(e->id, "a1");
	ck_assert_str_eq(e->service, "api");
	ck_assert_str_eq(e->address, "10.0.0.5");
	ck_assert_int_eq(e->port, 8080);
	ck_assert_int_eq(e->weight, 7);
	ck_assert_int_eq(e->status, BCN_WARNING);
	ck_assert_int_eq(e->ntags, 2);
	j = ep_json(e);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "meta"), "k")), "v");
	json_decref(j);
	free(e);
}
END_TEST

START_TEST(test_spring_and_other_payloads)
{
	struct bcn_endpoint *e;
	json_t *j;

	/* Spring Cloud Zookeeper: "@class" tag, string metadata (others dropped). */
	e = parse("s1", "{\"name\":\"api\",\"id\":\"s1\",\"address\":\"h\",\"port\":81,\"payload\":"
		  "{\"@class\":\"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance\","
		  "\"id\":\"api\",\"name\":\"api\",\"metadata\":{\"zone\":\"b\",\"n\":1}}}");
	ck_assert_msg(e != NULL, "%s", why);
	j = ep_json(e);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "meta"), "zone")), "b");
	ck_assert_ptr_null(json_object_get(json_object_get(j, "meta"), "n"));
	ck_assert_int_eq(e->status, BCN_PASSING);
	ck_assert_int_eq(e->weight, 1);
	json_decref(j);
	free(e);
	/* No payload, a string payload, no "id" (the znode's name is used), sslPort only. */
	e = parse("p1", "{\"address\":\"h\",\"sslPort\":8443,\"payload\":\"text\"}");
	ck_assert_msg(e != NULL, "%s", why);
	ck_assert_str_eq(e->id, "p1");
	ck_assert_int_eq(e->port, 8443);
	free(e);
	/* enabled: false is not served as passing; weights are clamped. */
	e = parse("d1", "{\"address\":\"h\",\"port\":1,\"enabled\":false,\"payload\":{\"weight\":-4}}");
	ck_assert_msg(e != NULL, "%s", why);
	ck_assert_int_eq(e->status, BCN_CRITICAL);
	ck_assert_int_eq(e->weight, 1);
	free(e);
}
END_TEST

START_TEST(test_hostile_data_refused)
{
	static const struct {
		const char *id, *data, *reason;
	} bad[] = {
		{"a", "{nope", "not valid JSON"},
		{"a", "[1,2]", "not a JSON object"},
		{"a", "\"str\"", "not valid JSON"},
		{"a", "{\"address\":\"\xff\xfe\",\"port\":1}", "not valid JSON"},
		{"a", "{\"id\":\"b\",\"address\":\"h\",\"port\":1}", "not the znode's name"},
		{"a", "{\"id\":7,\"address\":\"h\",\"port\":1}", "\"id\" is not a string"},
		{"a", "{\"port\":1}", "no \"address\""},
		{"a", "{\"address\":\"h\"}", "no integer \"port\""},
		{"a", "{\"address\":\"h\",\"port\":\"80\"}", "no integer \"port\""},
		{"a", "{\"address\":\"h\",\"port\":70000}", "port"},
		{"a", "{\"address\":\"h\",\"port\":0}", "port"},
		{"a", "{\"address\":\"h\",\"port\":1,\"payload\":{\"tags\":\"x\"}}", "not an array"},
		{"a", "{\"address\":\"h\",\"port\":1,\"payload\":{\"tags\":[1]}}", "non-string"},
		{"a", "{\"address\":\"h\",\"port\":1,\"payload\":{\"meta\":[]}}", "not an object"},
		{"a", "{\"address\":\"h\",\"port\":1,\"payload\":{\"status\":\"up\"}}", "passing, warning"},
		{"a", "{\"address\":\"h\",\"port\":1,\"port\":2}", "not valid JSON"}, /* duplicate key */
		{"a", "", "no data"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct bcn_endpoint *e = parse(bad[i].id, bad[i].data);
		ck_assert_msg(e == NULL, "case %zu accepted", i);
		ck_assert_msg(strstr(why, bad[i].reason), "case %zu: %s", i, why);
	}
}
END_TEST

START_TEST(test_oversized_refused)
{
	size_t n = ZK_MAX_INSTANCE + 1;
	char *big = malloc(n);
	struct bcn_endpoint *e;

	ck_assert_ptr_nonnull(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	e = zk_parse_instance("api", "a", big, n, why, sizeof(why));
	ck_assert_ptr_null(e);
	ck_assert_msg(strstr(why, "bytes, more than"), "%s", why);
	free(big);
}
END_TEST

START_TEST(test_written_instance_reads_back)
{
	const char *tags[] = {"v1", "blue"};
	json_t *meta = json_pack("{s:s}", "zone", "a");
	struct bcn_endpoint_spec s = {.id = "web-1", .service = "web", .address = "10.0.0.1",
				      .port = 8080, .tags = tags, .ntags = 2, .meta = meta,
				      .weight = 5, .status = BCN_WARNING};
	const char *err = NULL;
	struct bcn_endpoint *self = bcn_endpoint_new(&s, &err), *back;
	char *text;
	json_t *j, *p;

	ck_assert_msg(self != NULL, "%s", err);
	text = zk_instance_json(self, "web", 1700000000123ULL);
	ck_assert_ptr_nonnull(text);
	j = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(j);
	/* Curator's fields, and a payload without a Java type tag. */
	ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "web");
	ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "web-1");
	ck_assert_str_eq(json_string_value(json_object_get(j, "serviceType")), "DYNAMIC");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "registrationTimeUTC")), 1700000000123LL);
	ck_assert(json_is_null(json_object_get(j, "sslPort")));
	p = json_object_get(j, "payload");
	ck_assert(json_is_object(p));
	ck_assert_ptr_null(json_object_get(p, "@class"));
	ck_assert_str_eq(json_string_value(json_object_get(p, "status")), "warning");
	ck_assert_int_eq(json_integer_value(json_object_get(p, "weight")), 5);
	/* What we write, we read as the same endpoint. */
	back = zk_parse_instance("web", "web-1", text, strlen(text), why, sizeof(why));
	ck_assert_msg(back != NULL, "%s", why);
	ck_assert_int_eq(back->json_len, self->json_len);
	ck_assert(memcmp(back->json, self->json, self->json_len) == 0);
	ck_assert_ptr_null(zk_instance_json(NULL, "web", 0));
	free(back);
	free(text);
	json_decref(j);
	json_decref(meta);
	free(self);
}
END_TEST

START_TEST(test_instance_without_a_server)
{
	static const char *const services[] = { "web", NULL }, *const kv[] = { "/config/", NULL };
	struct testcore t;
	const struct tc_report *r;

	/* Port 1 on loopback: nobody listens, connects are refused at once. */
	tc_setup(&t, &bcn_plugin_zookeeper,
		 "{\"servers\": [\"127.0.0.1:1\"], \"base_path\": \"/svc\", \"session_timeout\": \"2s\"}",
		 false);
	tc_watch(&t, services, kv);
	tc_start(&t, "", NULL);
	ck_assert_uint_ge(tc_count(&t, TC_WATCH), 1);
	ck_assert_uint_ge(tc_count(&t, TC_KV_WATCH), 1);
	r = tc_last(&t, TC_STALE);
	ck_assert_ptr_nonnull(r);
	ck_assert(r->flag);
	ck_assert_str_eq(t.ins.state, "connecting");
	ck_assert(!t.ins.ready);
	tc_teardown(&t);
}
END_TEST

static Suite *zk_data_suite(void)
{
	Suite *s = suite_create("zk_data");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_curator_instance);
	tcase_add_test(tc, test_spring_and_other_payloads);
	tcase_add_test(tc, test_hostile_data_refused);
	tcase_add_test(tc, test_oversized_refused);
	tcase_add_test(tc, test_written_instance_reads_back);
	tcase_add_test(tc, test_instance_without_a_server);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(zk_data_suite)
