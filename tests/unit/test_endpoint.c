/*
 * test_endpoint.c - endpoint construction: the exact JSON served on the socket
 * (SPEC's ENDPOINT, byte for byte), validation of every field, parsing of what
 * registries store, status changes and the stability of the id hash that
 * consistent hashing depends on.
 */
#include <stdio.h>
#include <string.h>

#include "store/endpoint.h"
#include "testutil.h"

static const char *const full_tags[] = { "v1", "canary" };

static struct bcn_endpoint *full_endpoint(json_t **meta_out)
{
	json_t *meta = json_pack("{s:s}", "zone", "a");
	struct bcn_endpoint_spec s = {
		.id = "web-1", .service = "web", .address = "10.0.0.1", .port = 8080,
		.tags = full_tags, .ntags = 2, .meta = meta, .weight = 10,
		.status = BCN_WARNING,
	};
	const char *err = NULL;
	struct bcn_endpoint *e = bcn_endpoint_new(&s, &err);

	ck_assert_msg(e != NULL, "unexpected error: %s", err);
	*meta_out = meta;
	return e;
}

static const char FULL_JSON[] =
	"{\"id\":\"web-1\",\"service\":\"web\",\"address\":\"10.0.0.1\",\"port\":8080,"
	"\"tags\":[\"v1\",\"canary\"],\"meta\":{\"zone\":\"a\"},\"weight\":10,"
	"\"status\":\"warning\"}";

START_TEST(full_example_renders_spec_json)
{
	json_t *meta;
	struct bcn_endpoint *e = full_endpoint(&meta);

	ck_assert_str_eq(e->json, FULL_JSON);
	ck_assert_uint_eq(e->json_len, strlen(FULL_JSON));
	ck_assert_str_eq(e->id, "web-1");
	ck_assert_str_eq(e->service, "web");
	ck_assert_str_eq(e->address, "10.0.0.1");
	ck_assert_uint_eq(e->port, 8080);
	ck_assert_uint_eq(e->weight, 10);
	ck_assert_uint_eq(e->status, BCN_WARNING);
	ck_assert_uint_eq(e->ntags, 2);
	ck_assert_str_eq(e->tags[0], "v1");
	ck_assert_str_eq(e->tags[1], "canary");
	ck_assert(e->tags[0] != full_tags[0]); /* copied, not borrowed */
	ck_assert(e->id_hash == bcn_hash64("web-1", 5));
	ck_assert_int_eq(meta->refcount, 1); /* the endpoint keeps no reference */
	json_decref(meta);
	free(e);
}
END_TEST

START_TEST(minimal_example_gets_defaults)
{
	struct bcn_endpoint_spec s = { .service = "db", .address = "10.1.2.3", .port = 5432 };
	struct bcn_endpoint *e = bcn_endpoint_new(&s, NULL);

	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->json,
			 "{\"id\":\"10.1.2.3:5432\",\"service\":\"db\",\"address\":\"10.1.2.3\","
			 "\"port\":5432,\"tags\":[],\"meta\":{},\"weight\":1,\"status\":\"passing\"}");
	ck_assert_str_eq(e->id, "10.1.2.3:5432");
	ck_assert_uint_eq(e->weight, 1);
	ck_assert_uint_eq(e->ntags, 0);
	ck_assert_uint_eq(e->src, 0);
	free(e);

	s.id = ""; /* empty id means the default too */
	e = bcn_endpoint_new(&s, NULL);
	ck_assert_str_eq(e->id, "10.1.2.3:5432");
	free(e);
}
END_TEST

START_TEST(strings_are_json_escaped)
{
	json_t *meta = json_pack("{s:s, s:s, s:s}", "note", "say \"hi\"\nnow\\",
				 "city", "Z\xc3\xbcrich \xe2\x9c\x93", "ctl", "a\x01\tb");
	const char *tags[] = { "quo\"te" };
	struct bcn_endpoint_spec s = { .id = "a/b", .service = "web", .address = "::1",
				       .port = 1, .tags = tags, .ntags = 1, .meta = meta };
	struct bcn_endpoint *e = bcn_endpoint_new(&s, NULL);

	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->json,
			 "{\"id\":\"a/b\",\"service\":\"web\",\"address\":\"::1\",\"port\":1,"
			 "\"tags\":[\"quo\\\"te\"],\"meta\":{\"note\":\"say \\\"hi\\\"\\nnow\\\\\","
			 "\"city\":\"Z\xc3\xbcrich \xe2\x9c\x93\",\"ctl\":\"a\\u0001\\tb\"},"
			 "\"weight\":1,\"status\":\"passing\"}");
	/* and a JSON parser reads back exactly what was given */
	json_t *back = json_loads(e->json, 0, NULL);
	ck_assert_ptr_nonnull(back);
	ck_assert(json_equal(json_object_get(back, "meta"), meta));
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(back, "tags"), 0)),
			 "quo\"te");
	json_decref(back);
	json_decref(meta);
	free(e);
}
END_TEST

/* ---- validation: one loop iteration per invalid spec ---- */

static const char *const many_tags[65] = {
	"t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t",
	"t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t",
	"t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t",
	"t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t", "t",
};
static const char *const empty_tag[] = { "ok", "" };
static char long_str[1026];

struct bad_case {
	const char *name;
	struct bcn_endpoint_spec spec;
	const char *meta_json;   /* parsed into spec.meta when set */
	const char *err_word;    /* the message must name the field */
};

/* Every case starts from a valid spec; SPEC() names the three required fields
 * so no designated initializer is overridden. */
#define SPEC(svc, addr, prt, ...) { .service = svc, .address = addr, .port = prt, __VA_ARGS__ }
static const struct bad_case bad_cases[] = {
	{ "port 0", SPEC("web", "h", 0), NULL, "port" },
	{ "port 70000", SPEC("web", "h", 70000), NULL, "port" },
	{ "port -1", SPEC("web", "h", -1), NULL, "port" },
	{ "empty address", SPEC("web", "", 80), NULL, "address" },
	{ "no address", SPEC("web", NULL, 80), NULL, "address" },
	{ "empty service", SPEC("", "h", 80), NULL, "service" },
	{ "no service", SPEC(NULL, "h", 80), NULL, "service" },
	{ "weight 70000", SPEC("web", "h", 80, .weight = 70000), NULL, "weight" },
	{ "weight -1", SPEC("web", "h", 80, .weight = -1), NULL, "weight" },
	{ "status 3", SPEC("web", "h", 80, .status = (enum bcn_status)3), NULL, "status" },
	{ "65 tags", SPEC("web", "h", 80, .tags = many_tags, .ntags = 65), NULL, "tags" },
	{ "empty tag", SPEC("web", "h", 80, .tags = empty_tag, .ntags = 2), NULL, "tags" },
	{ "tags NULL with ntags", SPEC("web", "h", 80, .ntags = 1), NULL, "tags" },
	{ "meta value number", SPEC("web", "h", 80), "{\"zone\": 1}", "meta" },
	{ "meta value null", SPEC("web", "h", 80), "{\"a\": \"x\", \"zone\": null}", "meta" },
	{ "meta not object", SPEC("web", "h", 80), "[\"zone\"]", "meta" },
	{ "meta value with NUL", SPEC("web", "h", 80), "{\"zone\": \"a\\u0000b\"}", "meta" },
	{ "address bad UTF-8", SPEC("web", "10.0.0.\xff", 80), NULL, "address" },
	{ "default id from bad UTF-8", SPEC("web", "\xc3", 80), NULL, "address" },
	{ "id bad UTF-8", SPEC("web", "h", 80, .id = "\xe2\x9c"), NULL, "id" },
	{ "service bad UTF-8", SPEC("\xff", "h", 80), NULL, "service" },
	{ "long address", SPEC("web", long_str, 80), NULL, "address" },
	{ "long id", SPEC("web", "h", 80, .id = long_str), NULL, "id" },
};

START_TEST(invalid_fields_are_rejected)
{
	const struct bad_case *c = &bad_cases[_i];
	struct bcn_endpoint_spec s = c->spec;
	const char *err = NULL;

	memset(long_str, 'x', 1025); /* one byte over the limit */
	s.meta = c->meta_json ? json_loads(c->meta_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)
			      : NULL;
	ck_assert(!c->meta_json || s.meta);
	ck_assert_msg(bcn_endpoint_new(&s, &err) == NULL, "%s was accepted", c->name);
	ck_assert_msg(err && strstr(err, c->err_word), "%s: error \"%s\" does not name %s",
		      c->name, err ? err : "(null)", c->err_word);
	ck_assert_msg(err[strlen(err) - 1] == '.', "%s: \"%s\" is not a sentence", c->name, err);
	json_decref(s.meta);
}
END_TEST

START_TEST(limits_are_inclusive)
{
	struct bcn_endpoint_spec s = SPEC("web", long_str, 65535, .weight = 65535,
					  .tags = many_tags, .ntags = 64);
	memset(long_str, 'x', 1024);
	long_str[1024] = '\0';
	struct bcn_endpoint *e = bcn_endpoint_new(&s, NULL);

	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->port, 65535);
	ck_assert_uint_eq(e->weight, 65535);
	ck_assert_uint_eq(e->ntags, 64);
	ck_assert_uint_eq(strlen(e->address), 1024);
	ck_assert_uint_eq(strlen(e->id), 1024 + strlen(":65535"));
	free(e);
}
END_TEST

START_TEST(weight_zero_means_one)
{
	struct bcn_endpoint_spec s = SPEC("web", "h", 80, .weight = 0);
	struct bcn_endpoint *e = bcn_endpoint_new(&s, NULL);

	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->weight, 1);
	ck_assert_ptr_nonnull(strstr(e->json, "\"weight\":1,"));
	free(e);
}
END_TEST

/* ---- from registry JSON ---- */

static struct bcn_endpoint *parse(const char *text, const char *service, const char **err)
{
	json_t *obj = json_loads(text, JSON_ALLOW_NUL, NULL);

	ck_assert_msg(obj != NULL, "test JSON does not parse: %s", text);
	*err = NULL;
	struct bcn_endpoint *e = bcn_endpoint_from_json(obj, service, err);
	json_decref(obj);
	return e;
}

START_TEST(from_json_happy_path)
{
	const char *err;
	/* keys in another order, plus a key from a future version */
	struct bcn_endpoint *e = parse(
		"{\"status\":\"critical\",\"weight\":10,\"meta\":{\"zone\":\"a\"},"
		"\"tags\":[\"v1\",\"canary\"],\"port\":8080,\"address\":\"10.0.0.1\","
		"\"service\":\"web\",\"id\":\"web-1\",\"future\":{\"x\":[1]}}", NULL, &err);

	ck_assert_msg(e != NULL, "unexpected error: %s", err);
	ck_assert_str_eq(e->json,
			 "{\"id\":\"web-1\",\"service\":\"web\",\"address\":\"10.0.0.1\","
			 "\"port\":8080,\"tags\":[\"v1\",\"canary\"],\"meta\":{\"zone\":\"a\"},"
			 "\"weight\":10,\"status\":\"critical\"}");
	ck_assert_uint_eq(e->status, BCN_CRITICAL);
	free(e);
}
END_TEST

START_TEST(from_json_minimal_and_nulls)
{
	const char *err;
	struct bcn_endpoint *e = parse("{\"address\":\"10.1.2.3\",\"port\":5432,\"tags\":null,"
				       "\"meta\":null}", "legacy-db", &err);

	ck_assert_msg(e != NULL, "unexpected error: %s", err);
	ck_assert_str_eq(e->json,
			 "{\"id\":\"10.1.2.3:5432\",\"service\":\"legacy-db\","
			 "\"address\":\"10.1.2.3\",\"port\":5432,\"tags\":[],\"meta\":{},"
			 "\"weight\":1,\"status\":\"passing\"}");
	free(e);
}
END_TEST

START_TEST(from_json_service_argument_wins)
{
	const char *err;
	struct bcn_endpoint *e = parse("{\"service\":\"old\",\"address\":\"h\",\"port\":1}",
				       "payments", &err);

	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->service, "payments");
	ck_assert_ptr_nonnull(strstr(e->json, "\"service\":\"payments\""));
	free(e);

	e = parse("{\"service\":\"old\",\"address\":\"h\",\"port\":1}", NULL, &err);
	ck_assert_str_eq(e->service, "old");
	free(e);

	/* no service anywhere is an error */
	ck_assert_ptr_null(parse("{\"address\":\"h\",\"port\":1}", NULL, &err));
	ck_assert_ptr_nonnull(strstr(err, "service"));
}
END_TEST

static const struct {
	const char *json, *err_word;
} bad_json[] = {
	{ "{\"address\":\"h\",\"port\":\"80\"}", "port" },
	{ "{\"address\":\"h\",\"port\":80.0}", "port" },
	{ "{\"address\":\"h\",\"port\":0}", "port" },
	{ "{\"address\":\"h\"}", "port" },
	{ "{\"port\":80}", "address" },
	{ "{\"address\":null,\"port\":80}", "address" },
	{ "{\"address\":7,\"port\":80}", "address" },
	{ "{\"address\":\"h\\u0000x\",\"port\":80}", "address" },
	{ "{\"address\":\"h\",\"port\":80,\"tags\":\"v1\"}", "tags" },
	{ "{\"address\":\"h\",\"port\":80,\"tags\":[\"v1\",2]}", "tags" },
	{ "{\"address\":\"h\",\"port\":80,\"meta\":{\"zone\":1}}", "meta" },
	{ "{\"address\":\"h\",\"port\":80,\"meta\":\"zone\"}", "meta" },
	{ "{\"address\":\"h\",\"port\":80,\"weight\":\"3\"}", "weight" },
	{ "{\"address\":\"h\",\"port\":80,\"status\":\"up\"}", "status" },
	{ "{\"address\":\"h\",\"port\":80,\"status\":1}", "status" },
	{ "{\"address\":\"h\",\"port\":80,\"id\":[]}", "id" },
	{ "{\"address\":\"h\",\"port\":80,\"service\":{}}", "service" },
};

START_TEST(from_json_wrong_types)
{
	const char *err;

	ck_assert_msg(parse(bad_json[_i].json, "web", &err) == NULL, "accepted %s",
		      bad_json[_i].json);
	ck_assert_msg(err && strstr(err, bad_json[_i].err_word), "%s: error \"%s\"",
		      bad_json[_i].json, err ? err : "(null)");
}
END_TEST

START_TEST(from_json_not_an_object)
{
	const char *err = NULL;
	json_t *arr = json_array();

	ck_assert_ptr_null(bcn_endpoint_from_json(arr, "web", &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_null(bcn_endpoint_from_json(NULL, "web", NULL));
	json_decref(arr);
}
END_TEST

/* ---- status ---- */

START_TEST(with_status_changes_only_status)
{
	json_t *meta;
	struct bcn_endpoint *e = full_endpoint(&meta);
	e->src = 7;
	struct bcn_endpoint *c = bcn_endpoint_with_status(e, BCN_CRITICAL);
	struct bcn_endpoint *p = bcn_endpoint_with_status(c, BCN_PASSING);
	struct bcn_endpoint *w = bcn_endpoint_with_status(p, BCN_WARNING);

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(w);
	ck_assert_str_eq(e->json, FULL_JSON); /* the original is untouched */
	ck_assert_uint_eq(e->status, BCN_WARNING);
	ck_assert_str_eq(c->json,
			 "{\"id\":\"web-1\",\"service\":\"web\",\"address\":\"10.0.0.1\","
			 "\"port\":8080,\"tags\":[\"v1\",\"canary\"],\"meta\":{\"zone\":\"a\"},"
			 "\"weight\":10,\"status\":\"critical\"}");
	ck_assert_uint_eq(c->json_len, strlen(c->json));
	ck_assert_uint_eq(c->status, BCN_CRITICAL);
	ck_assert_uint_eq(p->status, BCN_PASSING);
	ck_assert_ptr_nonnull(strstr(p->json, ",\"status\":\"passing\"}"));
	ck_assert_str_eq(w->json, FULL_JSON); /* back where it started */
	ck_assert_uint_eq(w->json_len, e->json_len);
	ck_assert_str_eq(c->id, "web-1");
	ck_assert_str_eq(c->address, "10.0.0.1");
	ck_assert_uint_eq(c->port, 8080);
	ck_assert_uint_eq(c->weight, 10);
	ck_assert_uint_eq(c->ntags, 2);
	ck_assert_str_eq(c->tags[1], "canary");
	ck_assert(c->id_hash == e->id_hash);
	ck_assert_uint_eq(c->src, 7);
	ck_assert_ptr_null(bcn_endpoint_with_status(e, (enum bcn_status)9));
	free(e);
	free(c);
	free(p);
	free(w);
	json_decref(meta);
}
END_TEST

START_TEST(status_names_round_trip)
{
	enum bcn_status st;

	for (int i = BCN_PASSING; i <= BCN_CRITICAL; i++) {
		ck_assert_int_eq(bcn_status_parse(bcn_status_name((enum bcn_status)i), &st), 0);
		ck_assert_int_eq(st, i);
	}
	ck_assert_str_eq(bcn_status_name(BCN_WARNING), "warning");
	ck_assert_int_eq(bcn_status_parse("PASSING", &st), -1);
	ck_assert_int_eq(bcn_status_parse("", &st), -1);
	ck_assert_int_eq(bcn_status_parse(NULL, &st), -1);
}
END_TEST

START_TEST(has_tag_matches_whole_tags)
{
	json_t *meta;
	struct bcn_endpoint *e = full_endpoint(&meta);

	ck_assert(bcn_endpoint_has_tag(e, "v1"));
	ck_assert(bcn_endpoint_has_tag(e, "canary"));
	ck_assert(!bcn_endpoint_has_tag(e, "v"));
	ck_assert(!bcn_endpoint_has_tag(e, "canary2"));
	ck_assert(!bcn_endpoint_has_tag(e, NULL));
	ck_assert(!bcn_endpoint_has_tag(NULL, "v1"));
	json_decref(meta);
	free(e);
}
END_TEST

/* ---- hash ---- */

START_TEST(hash64_is_pinned)
{
	/*
	 * Computed once by this implementation (and by a Python FNV-1a + fmix64
	 * reference): a change would reshuffle every hash pick in a fleet.
	 */
	ck_assert_uint_eq(bcn_hash64("", 0), 0xefd01f60ba992926ULL);
	ck_assert_uint_eq(bcn_hash64("10.0.0.1:8080", 13), 0xe8c721156ed52b14ULL);
	ck_assert(bcn_hash64("a", 1) != bcn_hash64("b", 1));
	ck_assert(bcn_hash64("ab", 2) != bcn_hash64("ba", 2));
	ck_assert(bcn_hash64("a", 1) != bcn_hash64("a\0", 2));
}
END_TEST

START_TEST(hash64_spreads_similar_ids)
{
	enum { N = 2000 };
	static uint64_t seen[N];
	unsigned high_bit = 0, collisions = 0;
	char id[32];

	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "10.0.%d.%d:8080", i / 256, i % 256);
		seen[i] = bcn_hash64(id, strlen(id));
		high_bit += (unsigned)(seen[i] >> 63);
		for (int j = 0; j < i; j++) /* no ck_assert here: each one costs a pipe write */
			collisions += seen[i] == seen[j];
	}
	ck_assert_uint_eq(collisions, 0);
	/* the top bit is set about half the time: the finalizer mixes into the high bits */
	ck_assert_uint_ge(high_bit, N / 2 - 150);
	ck_assert_uint_le(high_bit, N / 2 + 150);
}
END_TEST

static Suite *endpoint_suite(void)
{
	Suite *s = suite_create("endpoint");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, full_example_renders_spec_json);
	tcase_add_test(tc, minimal_example_gets_defaults);
	tcase_add_test(tc, strings_are_json_escaped);
	tcase_add_loop_test(tc, invalid_fields_are_rejected, 0,
			    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, limits_are_inclusive);
	tcase_add_test(tc, weight_zero_means_one);
	tcase_add_test(tc, from_json_happy_path);
	tcase_add_test(tc, from_json_minimal_and_nulls);
	tcase_add_test(tc, from_json_service_argument_wins);
	tcase_add_loop_test(tc, from_json_wrong_types, 0,
			    (int)(sizeof(bad_json) / sizeof(bad_json[0])));
	tcase_add_test(tc, from_json_not_an_object);
	tcase_add_test(tc, with_status_changes_only_status);
	tcase_add_test(tc, status_names_round_trip);
	tcase_add_test(tc, has_tag_matches_whole_tags);
	tcase_add_test(tc, hash64_is_pinned);
	tcase_add_test(tc, hash64_spreads_similar_ids);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(endpoint_suite)
