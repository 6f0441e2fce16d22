/*
 * test_api_query.c - the socket API's URL parsing (agent/api/query.c):
 * ?index, ?wait, ?tag, ?status, ?recurse, ?policy and &key, and
 * percent-decoding, against hostile input: cut and non-hex escapes, encoded
 * NULs, values one byte too long, numbers out of range, empty and repeated
 * parameters, and error messages that stay short and name the parameter.
 */
#include <stdio.h>
#include <string.h>

#include "api/api_internal.h"
#include "testutil.h"

static struct bcn_query q;
static char err[512];

static int parse(const char *s)
{
	err[0] = '\0';
	return bcn_api_parse_query(s, &q, err, sizeof(err));
}

START_TEST(test_nothing)
{
	ck_assert_int_eq(parse(NULL), 0);
	ck_assert(!q.has_index && !q.has_tag && !q.has_key && !q.has_recurse && !q.status_any);
	ck_assert_uint_eq(q.wait_ms, 0);
	ck_assert_str_eq(q.tag, "");
	ck_assert_str_eq(q.policy, "");
	ck_assert_int_eq(parse(""), 0);
	ck_assert_int_eq(parse("&&&"), 0);
	ck_assert_int_eq(parse("="), 0);
	ck_assert_int_eq(parse("=x&unknown=%zz-is-fine-unread"), -1); /* every value is decoded */
	ck_assert_int_eq(parse("unknown=1&other&=x&"), 0);            /* ignored, as Consul does */
	ck_assert(!q.has_index && !q.has_tag);
}
END_TEST

START_TEST(test_index)
{
	ck_assert_int_eq(parse("index=0"), 0);
	ck_assert(q.has_index);
	ck_assert_uint_eq(q.index, 0);
	ck_assert_int_eq(parse("index=18446744073709551615"), 0);
	ck_assert_uint_eq(q.index, UINT64_MAX);
	ck_assert_int_eq(parse("index=%34%32"), 0); /* "42", encoded */
	ck_assert_uint_eq(q.index, 42);
	static const char *const bad[] = {
		"index=18446744073709551616", "index=99999999999999999999999", "index=-1", "index=+1",
		"index=%2B1", "index= 1", "index=+", "index=1x", "index=1.5", "index=", "index",
		"index=0x10", "index=1%00",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i]) == -1, "%s was accepted", bad[i]);
		ck_assert_msg(strlen(err) > 0, "%s: no message", bad[i]);
	}
	ck_assert_int_eq(parse("index=5&index=x"), -1);
	ck_assert_str_eq(err, "index must be a non-negative integer");
	ck_assert_int_eq(parse("index=5&index=7"), 0); /* the last one counts */
	ck_assert_uint_eq(q.index, 7);
}
END_TEST

START_TEST(test_wait)
{
	ck_assert_int_eq(parse("wait=30s"), 0);
	ck_assert_uint_eq(q.wait_ms, 30000);
	ck_assert_int_eq(parse("wait=250ms&index=1"), 0);
	ck_assert_uint_eq(q.wait_ms, 250);
	ck_assert(q.has_index);
	ck_assert_int_eq(parse("wait=10m"), 0); /* capped at five minutes */
	ck_assert_uint_eq(q.wait_ms, BCN_API_MAX_WAIT_MS);
	ck_assert_int_eq(parse("wait=99999999999999999999h"), -1);
	ck_assert_int_eq(parse("wait=abc"), -1);
	ck_assert_str_eq(err, "wait must be a duration such as \"30s\"");
	ck_assert_int_eq(parse("wait=-1s"), -1);
	ck_assert_int_eq(parse("wait=1s%00"), -1);
}
END_TEST

START_TEST(test_tag_status_recurse)
{
	ck_assert_int_eq(parse("tag=v1"), 0);
	ck_assert(q.has_tag);
	ck_assert_str_eq(q.tag, "v1");
	ck_assert_int_eq(parse("tag=a+b%2Bc%20d"), 0); /* '+' is a space in a query */
	ck_assert_str_eq(q.tag, "a b+c d");
	ck_assert_int_eq(parse("tag=%E2%9C%93"), 0);
	ck_assert_str_eq(q.tag, "\xe2\x9c\x93");
	ck_assert_int_eq(parse("tag="), 0);
	ck_assert(q.has_tag);
	ck_assert_str_eq(q.tag, "");
	ck_assert_int_eq(parse("tag=a&tag=b"), 0);
	ck_assert_str_eq(q.tag, "b");

	ck_assert_int_eq(parse("status=any"), 0);
	ck_assert(q.status_any);
	ck_assert_int_eq(parse("status=passing"), 0);
	ck_assert(!q.status_any);
	static const char *const bad[] = { "status=ANY", "status=", "status", "status=critical",
					   "status=any%00", "status=any " };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(bad[i]) == -1, "%s was accepted", bad[i]);
	ck_assert_str_eq(err, "status must be \"passing\" or \"any\"");

	ck_assert_int_eq(parse("recurse"), 0);
	ck_assert(q.has_recurse);
	ck_assert_int_eq(parse("recurse=false"), 0); /* present is present, as Consul */
	ck_assert(q.has_recurse);
	ck_assert_int_eq(parse("recursive"), 0);
	ck_assert(!q.has_recurse);
	ck_assert_int_eq(parse("Recurse&TAG=x"), 0); /* names are case-sensitive */
	ck_assert(!q.has_recurse && !q.has_tag);
}
END_TEST

START_TEST(test_policy_and_key)
{
	ck_assert_int_eq(parse("policy=hash&key=user%2F42"), 0);
	ck_assert_str_eq(q.policy, "hash");
	ck_assert(q.has_key);
	ck_assert_str_eq(q.key, "user/42");
	ck_assert_int_eq(parse("key="), 0);
	ck_assert(q.has_key);
	ck_assert_str_eq(q.key, "");
	ck_assert_int_eq(parse("policy=%FF%FE"), 0); /* bytes, judged by the route */
	ck_assert_str_eq(q.policy, "\xff\xfe");
}
END_TEST

START_TEST(test_hostile_escapes_and_lengths)
{
	char long_val[1024], msg_key[200];
	static const char *const bad[] = {
		"tag=%", "tag=%4", "tag=%zz", "tag=%4g", "tag=%%41", "tag=%00", "tag=a%00b", "key=%0",
		"policy=%-1", "tag=%\xff\xff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i]) == -1, "%s was accepted", bad[i]);
		ck_assert_msg(strstr(err, "is malformed or too long") != NULL, "%s: %s", bad[i], err);
	}
	ck_assert_int_eq(parse("tag=%"), -1);
	ck_assert_str_eq(err, "query parameter \"tag\" is malformed or too long");

	/* 255 bytes fit the 256-byte buffers, 256 do not: refused, not cut. */
	memcpy(long_val, "tag=", 4);
	memset(long_val + 4, 'x', 255);
	long_val[4 + 255] = '\0';
	ck_assert_int_eq(parse(long_val), 0);
	ck_assert_uint_eq(strlen(q.tag), 255);
	memset(long_val + 4, 'x', 256);
	long_val[4 + 256] = '\0';
	ck_assert_int_eq(parse(long_val), -1);
	/* Escapes count once decoded: 255 "%41" are 255 bytes. */
	memcpy(long_val, "key=", 4);
	for (int i = 0; i < 255; i++)
		memcpy(long_val + 4 + 3 * i, "%41", 3);
	long_val[4 + 3 * 255] = '\0';
	ck_assert_int_eq(parse(long_val), 0);
	ck_assert_uint_eq(strlen(q.key), 255);

	/* A long parameter name is cut in the message, between characters. */
	memset(msg_key, 'k', 100);
	memcpy(msg_key + 100, "=%zz", 5);
	ck_assert_int_eq(parse(msg_key), -1);
	ck_assert_str_eq(err, "query parameter \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\" is malformed or too long");
	snprintf(msg_key, sizeof(msg_key), "%s=%%zz", "\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93"
		 "\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93\xe2\x9c\x93"
		 "\xe2\x9c\x93\xe2\x9c\x93");
	ck_assert_int_eq(parse(msg_key), -1);
	ck_assert_uint_eq(strlen(err), strlen("query parameter \"\" is malformed or too long") + 39);
	/* A later parameter's problem is reported, after earlier ones were taken. */
	ck_assert_int_eq(parse("tag=ok&status=nope"), -1);
	ck_assert_str_eq(err, "status must be \"passing\" or \"any\"");
}
END_TEST

START_TEST(test_decode_paths)
{
	char out[8];

	ck_assert_int_eq(bcn_api_decode("a+b", 3, out, sizeof(out), false), 0);
	ck_assert_str_eq(out, "a+b"); /* '+' is itself in a path */
	ck_assert_int_eq(bcn_api_decode("a+b", 3, out, sizeof(out), true), 0);
	ck_assert_str_eq(out, "a b");
	ck_assert_int_eq(bcn_api_decode("%2F", 3, out, sizeof(out), false), 0);
	ck_assert_str_eq(out, "/");
	ck_assert_int_eq(bcn_api_decode("", 0, out, sizeof(out), false), 0);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(bcn_api_decode("1234567", 7, out, sizeof(out), false), 0);
	ck_assert_int_eq(bcn_api_decode("12345678", 8, out, sizeof(out), false), -1);
	/* Only len bytes are read: an escape cut by the length is refused. */
	ck_assert_int_eq(bcn_api_decode("%41", 2, out, sizeof(out), false), -1);
	ck_assert_int_eq(bcn_api_decode("ab%00", 5, out, sizeof(out), false), -1);
	ck_assert_int_eq(bcn_api_decode("x", 1, out, 0, false), -1);
}
END_TEST

static Suite *query_suite(void)
{
	Suite *s = suite_create("api_query");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_nothing);
	tcase_add_test(tc, test_index);
	tcase_add_test(tc, test_wait);
	tcase_add_test(tc, test_tag_status_recurse);
	tcase_add_test(tc, test_policy_and_key);
	tcase_add_test(tc, test_hostile_escapes_and_lengths);
	tcase_add_test(tc, test_decode_paths);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(query_suite)
