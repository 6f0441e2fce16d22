/* Unit tests for etcd_data.c: how the numbers etcd sends are read. */
#include <check.h>
#include <jansson.h>
#include <stdint.h>

#include "../../plugins/etcd/etcd.h"
#include "testutil.h"

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

static Suite *etcd_data_suite(void)
{
	Suite *s = suite_create("etcd_data");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_int_in_range);
	tcase_add_test(tc, test_int_clamped_at_the_edges);
	tcase_add_test(tc, test_int_not_a_number);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(etcd_data_suite)
