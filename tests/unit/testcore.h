/*
 * testcore.h - a test core for plugin unit tests (after collectd's
 * src/tests/mock/plugin.c): the reporting half of plugin.h implemented by
 * recording every call in an array, plus one instance of a real plugin set up
 * from a JSON config on its own event loop, with the scripted HTTP client of
 * tests/fuzz/fake_http.h in place of curl. A test scripts the backend's
 * answers (hostile ones included), runs the loop, and reads what the plugin
 * reported; no agent, socket or network is involved.
 */
#ifndef BCN_TESTCORE_H
#define BCN_TESTCORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_http.h"
#include "plugin/plugin.h"

enum tc_kind {
	TC_WATCH, TC_ENDPOINT, TC_ENDPOINT_GONE, TC_ENDPOINTS_REPLACE,
	TC_KV_WATCH, TC_KV_PUT, TC_KV_DELETE, TC_KV_REPLACE, TC_STALE,
	TC_SECRET_DECLARE, TC_SECRET_UIDS, TC_SECRET_PUT, TC_SECRET_EXPIRY, TC_SECRET_STALE,
	TC_SECRET_DROP,
};

/* One bcn_report_*() call as the plugin made it. */
struct tc_report {
	enum tc_kind kind;
	char *name;          /* service, key, prefix or secret name; NULL for stale */
	char *text;          /* endpoint JSON (one), ids joined by ',' (replace),
			      * KV value, secret data as compact JSON */
	size_t len;          /* bytes of a KV value; entries of a replace */
	bool flag;           /* watch / stale */
	int64_t version;     /* secret put */
	uint64_t expires_at_ms;
};

struct testcore {
	struct event_base *base;
	struct bcn_core core;
	struct bcn_instance ins;
	const struct bcn_service_conf *service; /* what bcn_core_service returns */
	struct bcn_config *config;     /* only watch is set (tc_watch) */
	struct tc_report *reports;
	size_t nreports;
	bool started;
};

/* Set up t with an instance of plugin p whose config object is conf_json
 * (filled through p->config_map, checked by p->cb_check; the test fails on
 * any problem). with_secrets: give the core a real secret store. */
void tc_setup(struct testcore *t, const struct bcn_plugin *p, const char *conf_json, bool with_secrets);
/* Watch these services and KV prefixes (NULL-terminated lists, may be NULL);
 * before tc_start. */
void tc_watch(struct testcore *t, const char *const *services, const char *const *kv);
/* cb_init and cb_start with script as the backend's answers and canned
 * routes for the plumbing (fake_http.h), then run the loop until no answer
 * is due. */
void tc_start(struct testcore *t, const char *script, const struct fake_route *canned);
/* cb_exit (which must cancel every request), then free everything. */
void tc_teardown(struct testcore *t);

/* How many reports of kind there are, and the last one (NULL when none). */
size_t tc_count(const struct testcore *t, enum tc_kind kind);
const struct tc_report *tc_last(const struct testcore *t, enum tc_kind kind);

/* The testcore whose instance is reporting (one at a time). */
extern struct testcore *tc_current;

#endif
