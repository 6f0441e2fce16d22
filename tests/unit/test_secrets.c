/*
 * test_secrets.c - the secret store (agent/secrets/secrets.c) and the zero-on-free
 * allocator (agent/base/zalloc.c): encryption round trips, index bumps and
 * blocking-read wake-ups, sealed credentials, guarded pages that fault
 * between uses (checked in a forked child that must die of SIGSEGV), and
 * blocks that are wiped before libc gets them back.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <malloc.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secrets/store.h"
#include "testutil.h"
#include "base/timing.h"
#include "base/zalloc.h"

static json_t *data_of(const char *json)
{
	json_t *d = json_loads(json, 0, NULL);
	ck_assert_ptr_nonnull(d);
	return d;
}

static int put(struct bcn_secret *sec, const char *json, int64_t version, uint64_t expires)
{
	json_t *d = data_of(json);
	int rc = bcn_secret_put(sec, d, version, expires);
	json_decref(d);
	return rc;
}

/* The rendered answer, parsed. */
static json_t *answer(struct bcn_secret *sec)
{
	struct evbuffer *b = evbuffer_new();
	json_t *o;

	ck_assert_int_eq(bcn_secret_render(sec, b), 0);
	o = json_loadb((const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b), 0, NULL);
	evbuffer_free(b);
	ck_assert_ptr_nonnull(o);
	return o;
}

/* Run fn(arg) in a child; true when the child died of SIGSEGV. */
static bool segfaults(void (*fn)(const void *), const void *arg)
{
	int status = 0;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

static void read_byte(const void *p)
{
	volatile unsigned char c = *(const volatile unsigned char *)p;
	(void)c;
}

START_TEST(test_round_trip_and_index)
{
	struct bcn_secrets *s = bcn_secrets_new(NULL);
	uid_t me = geteuid();
	struct bcn_secret *sec;
	uint64_t i0, i1;
	json_t *a;

	ck_assert_ptr_nonnull(s);
	sec = bcn_secrets_add(s, "db", &me, 1);
	ck_assert_ptr_nonnull(sec);
	ck_assert_ptr_eq(bcn_secrets_find(s, "db"), sec);
	ck_assert_ptr_null(bcn_secrets_find(s, "nope"));
	ck_assert(!bcn_secret_loaded(sec));
	i0 = bcn_secret_index(sec);

	ck_assert_int_eq(put(sec, "{\"user\":\"app\",\"password\":\"p4ss-\\\"quoted\\\"\"}", 3, 0), 1);
	i1 = bcn_secret_index(sec);
	ck_assert_uint_gt(i1, i0);
	ck_assert(bcn_secret_loaded(sec));
	a = answer(sec);
	ck_assert_str_eq(json_string_value(json_object_get(a, "name")), "db");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "data"), "password")),
			 "p4ss-\"quoted\"");
	ck_assert_int_eq(json_integer_value(json_object_get(a, "version")), 3);
	ck_assert(json_is_null(json_object_get(a, "expires_in")));
	ck_assert(json_is_false(json_object_get(a, "stale")));
	json_decref(a);

	/* Same data and version: no change, no bump (key order does not matter). */
	ck_assert_int_eq(put(sec, "{\"password\":\"p4ss-\\\"quoted\\\"\",\"user\":\"app\"}", 3, 0), 0);
	ck_assert_uint_eq(bcn_secret_index(sec), i1);
	/* A new version of the same data is a change. */
	ck_assert_int_eq(put(sec, "{\"password\":\"p4ss-\\\"quoted\\\"\",\"user\":\"app\"}", 4, 0), 1);
	ck_assert_uint_gt(bcn_secret_index(sec), i1);

	/* Stale does not move the index but shows. */
	i1 = bcn_secret_index(sec);
	bcn_secret_set_stale(sec, true);
	ck_assert_uint_eq(bcn_secret_index(sec), i1);
	a = answer(sec);
	ck_assert(json_is_true(json_object_get(a, "stale")));
	json_decref(a);

	/* Names are unique in the store. */
	ck_assert_ptr_null(bcn_secrets_add(s, "db", &me, 1));
	bcn_secrets_free(s);
}
END_TEST

START_TEST(test_counted_versions_expiry_and_drop)
{
	struct bcn_secrets *s = bcn_secrets_new(NULL);
	uid_t uids[2] = { 1000, 1001 };
	struct bcn_secret *sec = bcn_secrets_add(s, "dyn", uids, 2);
	uint64_t now = bcn_now_ms(), idx;
	json_t *a;

	ck_assert(bcn_secret_allows(sec, 1001));
	ck_assert(!bcn_secret_allows(sec, 0));
	ck_assert_int_eq(put(sec, "{\"u\":\"a\"}", -1, now + 60000), 1);
	ck_assert_int_eq(bcn_secret_version(sec), 1);
	ck_assert_int_eq(put(sec, "{\"u\":\"a\"}", -1, now + 60000), 0);
	ck_assert_int_eq(bcn_secret_version(sec), 1);
	ck_assert_int_eq(put(sec, "{\"u\":\"b\"}", -1, now + 60000), 1);
	ck_assert_int_eq(bcn_secret_version(sec), 2);
	a = answer(sec);
	ck_assert_int_ge(json_integer_value(json_object_get(a, "expires_in")), 58);
	ck_assert_int_le(json_integer_value(json_object_get(a, "expires_in")), 60);
	json_decref(a);

	/* Past its expiry it is no longer served. */
	bcn_secret_set_expiry(sec, now - 1);
	ck_assert(!bcn_secret_loaded(sec));
	ck_assert(bcn_secret_ended(sec));
	ck_assert_int_eq(bcn_secret_render(sec, NULL), -1);

	idx = bcn_secret_index(sec);
	bcn_secret_drop(sec);
	ck_assert_uint_gt(bcn_secret_index(sec), idx);
	ck_assert(!bcn_secret_loaded(sec) && bcn_secret_ended(sec));
	ck_assert_int_eq(put(sec, "{\"u\":\"c\"}", -1, 0), 1);
	ck_assert_int_eq(bcn_secret_version(sec), 3);
	ck_assert(bcn_secret_loaded(sec) && !bcn_secret_ended(sec));

	/* Not an object: refused, nothing changes. */
	idx = bcn_secret_index(sec);
	json_t *arr = json_array();
	ck_assert_int_eq(bcn_secret_put(sec, arr, -1, 0), -1);
	json_decref(arr);
	ck_assert_uint_eq(bcn_secret_index(sec), idx);
	bcn_secrets_free(s);
}
END_TEST

static int woken;
static void on_wake(void *arg)
{
	(void)arg;
	woken++;
}

START_TEST(test_waiters)
{
	struct event_base *base = event_base_new();
	struct bcn_secrets *s = bcn_secrets_new(base);
	uid_t me = geteuid();
	struct bcn_secret *sec = bcn_secrets_add(s, "w", &me, 1);
	struct bcn_wait *w1, *w2;

	woken = 0;
	ck_assert_ptr_null(bcn_secrets_wait(s, "unknown", 1, on_wake, NULL));
	w1 = bcn_secrets_wait(s, "w", bcn_secret_index(sec), on_wake, NULL);
	w2 = bcn_secrets_wait(s, "w", bcn_secret_index(sec), on_wake, NULL);
	ck_assert_ptr_nonnull(w1);
	ck_assert_ptr_nonnull(w2);
	bcn_wait_cancel(w2);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken, 0);
	put(sec, "{\"k\":\"v\"}", 1, 0);
	ck_assert_int_eq(woken, 0); /* never from inside the change */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken, 1);

	/* An index that is already old wakes at once (from the loop). */
	ck_assert_ptr_nonnull(bcn_secrets_wait(s, "w", 1, on_wake, NULL));
	ck_assert_int_eq(woken, 1);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken, 2);

	/* Unchanged data wakes nobody. */
	ck_assert_ptr_nonnull(bcn_secrets_wait(s, "w", bcn_secret_index(sec), on_wake, NULL));
	put(sec, "{\"k\":\"v\"}", 1, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(woken, 2);
	bcn_secrets_free(s); /* drops the waiter without calling it */
	ck_assert_int_eq(woken, 2);
	event_base_free(base);
}
END_TEST

START_TEST(test_sealed_credentials)
{
	struct bcn_secrets *s = bcn_secrets_new(NULL);
	struct bcn_sealed tok = { NULL, 0 }, other = { NULL, 0 };
	const char *p;
	size_t n = 0, mark;

	ck_assert_int_eq(bcn_secrets_seal(s, &tok, "hvs.token-value", 15), 0);
	ck_assert_uint_eq(bcn_sealed_len(&tok), 15);
	ck_assert_ptr_null(memmem(tok.box, tok.len, "token-value", 11)); /* not in the clear */
	mark = bcn_secrets_mark(s);
	p = bcn_secrets_unseal(s, &tok, &n);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(n, 15);
	ck_assert_str_eq(p, "hvs.token-value");
	/* Nested use stacks on top. */
	ck_assert_int_eq(bcn_secrets_seal(s, &other, "second", 6), 0);
	ck_assert_str_eq(bcn_secrets_unseal(s, &other, NULL), "second");
	ck_assert_str_eq(p, "hvs.token-value");
	bcn_secrets_release(s, mark);
	ck_assert_uint_eq(bcn_secrets_mark(s), 0);

	/* A flipped bit is refused. */
	tok.box[tok.len - 1] ^= 1;
	ck_assert_ptr_null(bcn_secrets_unseal(s, &tok, NULL));
	ck_assert_uint_eq(bcn_secrets_mark(s), 0);
	bcn_sealed_clear(&tok);
	bcn_sealed_clear(&other);
	ck_assert_ptr_null(bcn_secrets_unseal(s, &tok, NULL));
	bcn_secrets_free(s);
}
END_TEST

START_TEST(test_guarded_pages_fault_between_uses)
{
	struct bcn_secrets *s = bcn_secrets_new(NULL);
	uid_t me = geteuid();
	struct bcn_secret *sec = bcn_secrets_add(s, "g", &me, 1);
	size_t mark = bcn_secrets_mark(s);
	unsigned char *scratch;
	json_t *a;

	/* The key page faults when nothing uses it. */
	ck_assert(segfaults(read_byte, bcn_secrets_key_page(s)));
	put(sec, "{\"k\":\"v\"}", 1, 0);
	a = answer(sec);
	json_decref(a);
	ck_assert(segfaults(read_byte, bcn_secrets_key_page(s)));

	/* The arena is readable while in use and faults (wiped) once released. */
	scratch = bcn_secrets_scratch(s, 32);
	ck_assert_ptr_nonnull(scratch);
	memcpy(scratch, "plaintext-in-the-arena", 23);
	ck_assert(!segfaults(read_byte, scratch));
	bcn_secrets_release(s, mark);
	ck_assert(segfaults(read_byte, scratch));
	scratch = bcn_secrets_scratch(s, 32); /* same place, wiped */
	ck_assert(sodium_is_zero(scratch, 32));
	bcn_secrets_release(s, mark);
	bcn_secrets_free(s);
}
END_TEST

/* ---- the allocator ------------------------------------------------------------ */

static size_t released, dirty;

static void check_release(void *p)
{
	released++;
	if (!sodium_is_zero(p, malloc_usable_size(p)))
		dirty++;
	free(p);
}

START_TEST(test_zalloc_wipes_on_free_and_realloc)
{
	char *p, *q;

	released = dirty = 0;
	bcn_zalloc_release = check_release;
	p = bcn_zmalloc(100);
	memset(p, 0xAA, 100);
	bcn_zfree(p);
	ck_assert_uint_eq(released, 1);

	/* Growing moves to a new block and wipes the old one. */
	p = bcn_zmalloc(16);
	memset(p, 'x', 16);
	q = bcn_zrealloc(p, 100000);
	ck_assert_uint_eq(released, 2);
	ck_assert(memcmp(q, "xxxxxxxxxxxxxxxx", 16) == 0);
	/* Shrinking keeps the block and wipes the tail. */
	memset(q, 'y', 100000);
	p = bcn_zrealloc(q, 10);
	ck_assert_ptr_eq(p, q);
	ck_assert(sodium_is_zero((unsigned char *)p + 10, malloc_usable_size(p) - 10));
	bcn_zfree(bcn_zstrdup("a-secret-string"));
	bcn_zfree(p);
	bcn_zfree(bcn_zcalloc(3, 7));
	bcn_zfree(NULL);
	ck_assert_uint_eq(released, 5);
	ck_assert_uint_eq(dirty, 0);

	/* Through jansson, as the agent installs it. */
	json_set_alloc_funcs(bcn_zmalloc, bcn_zfree);
	json_t *o = json_pack("{ss}", "password", "hunter2-hunter2-hunter2");
	char *dump = json_dumps(o, 0);
	json_decref(o);
	free(dump); /* a plain malloc pointer: free() still works, it just skips the wipe */
	ck_assert_uint_ge(released, 7);
	ck_assert_uint_eq(dirty, 0);
	json_set_alloc_funcs(malloc, free);
	bcn_zalloc_release = free;
}
END_TEST

static Suite *secrets_suite(void)
{
	Suite *s = suite_create("secrets");
	TCase *tc = tcase_create("store");

	tcase_add_test(tc, test_round_trip_and_index);
	tcase_add_test(tc, test_counted_versions_expiry_and_drop);
	tcase_add_test(tc, test_waiters);
	tcase_add_test(tc, test_sealed_credentials);
	tcase_add_test(tc, test_guarded_pages_fault_between_uses);
	tcase_add_test(tc, test_zalloc_wipes_on_free_and_realloc);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(secrets_suite)
