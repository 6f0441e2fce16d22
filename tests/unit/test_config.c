/*
 * test_config.c - the agent's config schema and its cross-field rules, loaded
 * from files as the agent loads them: defaults, expansion, every rule that a
 * table cannot express, and the JSON paths problems are reported under.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include "config/config.h"
#include "plugin/plugin.h"
#include "testutil.h"

static char file[64];

static struct bcn_config *load(const char *json, struct bcn_cfg_errs *errs)
{
	snprintf(file, sizeof(file), "/tmp/bcn-cfg-XXXXXX");
	int fd = mkstemp(file);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	close(fd);
	struct bcn_config *c = bcn_config_load(file, bcn_plugin_sections(), errs);
	unlink(file);
	return c;
}

/* True when some problem starts with `path` and contains `text`. */
static int has_err(const struct bcn_cfg_errs *e, const char *path, const char *text)
{
	for (size_t i = 0; i < e->n; i++) {
		if (strncmp(e->msg[i], path, strlen(path)) == 0 && strstr(e->msg[i], text))
			return 1;
	}
	return 0;
}

/* The problems, for a failing test's context (BCN_TEST_VERBOSE=1). */
static void dump(const struct bcn_cfg_errs *e)
{
	if (!getenv("BCN_TEST_VERBOSE"))
		return;
	for (size_t i = 0; i < e->n; i++)
		fprintf(stderr, "  %s\n", e->msg[i]);
}

START_TEST(test_defaults)
{
	struct bcn_cfg_errs e = { 0 };
	struct bcn_config *c = load("{}", &e);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->socket.path, "/run/beacon/beacon.sock");
	ck_assert_uint_eq(c->socket.mode, 0660);
	ck_assert_int_eq(c->socket.max_connections, 1024);
	ck_assert_uint_eq(c->socket.timeout_ms, 30000);
	ck_assert_int_eq(c->log_level, BCN_LOG_INFO);
	ck_assert_int_eq(c->log_format, BCN_LOG_TEXT);
	ck_assert_ptr_null(c->http);
	ck_assert_ptr_null(c->service);
	ck_assert_str_ne(c->node, ""); /* the host name */
	/* The static source is always an instance, so reloads can add services. */
	ck_assert_uint_eq(c->ninstances, 1);
	ck_assert_str_eq(c->instances[0].plugin->name, "static");
	bcn_config_free(c);
}
END_TEST

START_TEST(test_static_and_expansion)
{
	struct bcn_cfg_errs e = { 0 };
	setenv("BCN_T_SOCK", "/tmp/x.sock", 1);
	unsetenv("BCN_T_UNSET");
	struct bcn_config *c = load(
		"{\"node\": \"${BCN_T_UNSET:-n1}\", \"socket\": {\"path\": \"${BCN_T_SOCK}\", \"mode\": \"0600\"},"
		" \"log\": {\"level\": \"debug\", \"format\": \"json\"},"
		" \"http\": {\"listen\": \"127.0.0.1:9464\"},"
		" \"static\": {\"services\": {\"legacy-db\": [{\"address\": \"10.1.2.3\", \"port\": 5432}]}}}", &e);
	dump(&e);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->node, "n1");
	ck_assert_str_eq(c->socket.path, "/tmp/x.sock");
	ck_assert_uint_eq(c->socket.mode, 0600);
	ck_assert_int_eq(c->log_level, BCN_LOG_DEBUG);
	ck_assert_int_eq(c->log_format, BCN_LOG_JSON);
	ck_assert_str_eq(c->http->listen, "127.0.0.1:9464");
	bcn_config_free(c);
}
END_TEST

START_TEST(test_static_endpoint_errors_have_paths)
{
	struct bcn_cfg_errs e = { 0 };
	struct bcn_config *c = load(
		"{\"static\": {\"services\": {\"legacy-db\": [{\"address\": \"10.1.2.3\", \"port\": 70000},"
		" {\"port\": 1, \"status\": \"sleepy\"}], \"ok\": {}}}}", &e);
	ck_assert_ptr_null(c);
	dump(&e);
	ck_assert(has_err(&e, "$.static.services[\"legacy-db\"][0].port", "65535"));
	ck_assert(has_err(&e, "$.static.services[\"legacy-db\"][1]", "address"));
	ck_assert(has_err(&e, "$.static.services[\"legacy-db\"][1]", "sleepy"));
	ck_assert(has_err(&e, "$.static.services.ok", "array"));
	bcn_cfg_errs_free(&e);
}
END_TEST

START_TEST(test_cross_field_rules)
{
	struct bcn_cfg_errs e = { 0 };
	struct bcn_config *c = load(
		"{\"log\": {\"level\": \"loud\", \"format\": \"xml\"},"
		" \"socket\": {\"mode\": \"0770\"},"
		" \"http\": {\"listen\": \"9464\"},"
		" \"service\": {\"name\": \"web\", \"address\": \"10.0.0.1\", \"port\": 8080,"
		"   \"check\": {\"http\": \"http://127.0.0.1:8080/\", \"tcp\": \"127.0.0.1:8080\","
		"               \"interval\": \"1s\", \"timeout\": \"2s\"}},"
		" \"watch\": {\"services\": [\"payments\"], \"kv\": [\"\"]}}", &e);
	ck_assert_ptr_null(c);
	dump(&e);
	ck_assert(has_err(&e, "$.log.level", "loud"));
	ck_assert(has_err(&e, "$.log.format", "xml"));
	ck_assert(has_err(&e, "$.socket.mode", "execute"));
	ck_assert(has_err(&e, "$.http.listen", "host:port"));
	ck_assert(has_err(&e, "$.service", "needs a \"registry\""));
	ck_assert(has_err(&e, "$.service.check", "exactly one"));
	ck_assert(has_err(&e, "$.service.check.timeout", "interval"));
	ck_assert(has_err(&e, "$.watch", "needs a \"registry\""));
	ck_assert(has_err(&e, "$.watch.kv[0]", "empty key prefix"));
	bcn_cfg_errs_free(&e);
}
END_TEST

START_TEST(test_registry_selection)
{
	struct bcn_cfg_errs e = { 0 };
	struct bcn_config *c = load("{\"registry\": {\"backend\": \"zookeeper\"},"
				    " \"registries\": [{\"backend\": \"etcd\"}]}", &e);
	ck_assert_ptr_null(c);
	dump(&e);
	ck_assert(has_err(&e, "$.registries", "not both"));
	bcn_cfg_errs_free(&e);

	c = load("{\"registry\": {\"backend\": \"eureka\"}}", &e);
	ck_assert_ptr_null(c);
	ck_assert(has_err(&e, "$.registry.backend", "unknown registry backend \"eureka\""));
	ck_assert(has_err(&e, "$.registry.backend", "compiled in:"));
	bcn_cfg_errs_free(&e);

	c = load("{\"registry\": {\"endpoints\": []}}", &e);
	ck_assert_ptr_null(c);
	ck_assert(has_err(&e, "$.registry.backend", "missing"));
	bcn_cfg_errs_free(&e);

	c = load("{\"registries\": []}", &e);
	ck_assert_ptr_null(c);
	ck_assert(has_err(&e, "$.registries", "non-empty"));
	bcn_cfg_errs_free(&e);
}
END_TEST

START_TEST(test_unknown_keys_and_json_errors)
{
	struct bcn_cfg_errs e = { 0 };
	struct bcn_config *c = load("{\"sockett\": {}, \"watch\": {\"servics\": []}}", &e);
	ck_assert_ptr_null(c);
	dump(&e);
	ck_assert(has_err(&e, "$.sockett", "did you mean \"socket\""));
	ck_assert(has_err(&e, "$.watch.servics", "did you mean \"services\""));
	bcn_cfg_errs_free(&e);

	c = load("{\n  \"node\": \"a\",\n  \"log\": {\"level\": }\n}", &e);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(e.n, 1);
	/* FILE:LINE:COLUMN: with line 3 */
	ck_assert_msg(strstr(e.msg[0], ":3:") != NULL, "no line number in: %s", e.msg[0]);
	bcn_cfg_errs_free(&e);
}
END_TEST

START_TEST(test_secret_file)
{
	char err[256], path[64] = "/tmp/bcn-secret-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_eq(write(fd, "s3cr3t\n", 7), 7);
	close(fd);
	char *s = bcn_read_secret_file(path, err, sizeof(err));
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "s3cr3t");
	sodium_free(s);
	/* Empty: an error that does not echo anything of the file. */
	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	ck_assert_ptr_null(bcn_read_secret_file(path, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "empty"));
	unlink(path);
	ck_assert_ptr_null(bcn_read_secret_file(path, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "cannot read"));
}
END_TEST

START_TEST(test_check_timeout_default_follows_interval)
{
	static const char *fmt =
		"{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://127.0.0.1:2379\"]},"
		" \"service\": {\"name\": \"web\", \"address\": \"10.0.0.1\", \"port\": 8080,"
		"   \"check\": {\"tcp\": \"127.0.0.1:8080\"%s}}}";
	struct { const char *extra; uint64_t interval, timeout; } ok[] = {
		{ "", 10000, 2000 },                                          /* both defaults */
		{ ", \"interval\": \"300ms\"", 300, 300 },                      /* the default follows a short interval */
		{ ", \"interval\": \"2s\"", 2000, 2000 },
		{ ", \"interval\": \"5s\"", 5000, 2000 },
		{ ", \"interval\": \"300ms\", \"timeout\": \"100ms\"", 300, 100 }, /* explicit wins */
		{ ", \"interval\": \"1m\", \"timeout\": \"30s\"", 60000, 30000 },
	};
	struct bcn_cfg_errs e = { 0 };
	char json[512];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(json, sizeof(json), fmt, ok[i].extra);
		struct bcn_config *c = load(json, &e);
		dump(&e);
		ck_assert_msg(c != NULL, "refused: %s", json);
		ck_assert_uint_eq(c->service->check->interval_ms, ok[i].interval);
		ck_assert_uint_eq(c->service->check->timeout_ms, ok[i].timeout);
		bcn_config_free(c);
	}
	/* An explicit timeout longer than the interval is still refused. */
	snprintf(json, sizeof(json), fmt, ", \"interval\": \"300ms\", \"timeout\": \"2s\"");
	ck_assert_ptr_null(load(json, &e));
	ck_assert(has_err(&e, "$.service.check.timeout", "must not be longer than the interval"));
	bcn_cfg_errs_free(&e);
}
END_TEST

START_TEST(test_kv_prefix_without_slash)
{
	/* Consul users write "config/api/"; it is the same prefix as "/config/api/". */
	struct bcn_cfg_errs e = { 0 };
	struct bcn_config *c = load(
		"{\"registry\": {\"backend\": \"etcd\", \"endpoints\": [\"http://127.0.0.1:2379\"]},"
		" \"watch\": {\"kv\": [\"config/api/\", \"/config/web/\", \"/\", \"a\"]}}", &e);
	dump(&e);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->watch.kv.n, 4);
	ck_assert_str_eq(c->watch.kv.v[0], "/config/api/");
	ck_assert_str_eq(c->watch.kv.v[1], "/config/web/");
	ck_assert_str_eq(c->watch.kv.v[2], "/");
	ck_assert_str_eq(c->watch.kv.v[3], "/a");
	ck_assert(bcn_strlist_has(&c->watch.kv, "/config/api/"));
	bcn_config_free(c);
	bcn_cfg_errs_free(&e);
}
END_TEST

/* ---- sections given by the caller ---------------------------------------- */

struct fake_conf {
	int64_t n;
};

static const struct bcn_cfg_field fake_fields[] = {
	BCN_ROW_INT(struct fake_conf, n, "n", "1", 1, 9, 0, "a number"),
	BCN_ROW_END,
};

static const struct bcn_cfg_section fake_sections[] = {
	{ .key = "extra", .always = true, .fields = fake_fields, .size = sizeof(struct fake_conf) },
	{ .key = "source", .list_key = "sources", .name = "a", .fields = fake_fields,
	  .size = sizeof(struct fake_conf) },
	{ .key = "source", .list_key = "sources", .name = "b", .fields = fake_fields,
	  .size = sizeof(struct fake_conf) },
	{ .key = NULL },
};

static struct bcn_config *load_fake(const char *json, struct bcn_cfg_errs *errs)
{
	snprintf(file, sizeof(file), "/tmp/bcn-cfg-XXXXXX");
	int fd = mkstemp(file);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	close(fd);
	struct bcn_config *c = bcn_config_load(file, fake_sections, errs);
	unlink(file);
	return c;
}

START_TEST(test_sections_from_caller)
{
	struct bcn_cfg_errs e = { 0 };
	struct bcn_config *c;

	c = load_fake("{\"sources\": [{\"backend\": \"b\", \"n\": 3}, {\"backend\": \"a\"}]}", &e);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->ninstances, 3);
	ck_assert_ptr_eq(c->instances[0].section, &fake_sections[0]); /* always made, first key first */
	ck_assert_ptr_eq(c->instances[1].section, &fake_sections[2]);
	ck_assert_str_eq(c->instances[1].path, "$.sources[0]");
	ck_assert_int_eq(((struct fake_conf *)c->instances[1].conf)->n, 3);
	ck_assert_ptr_eq(c->instances[2].section, &fake_sections[1]);
	bcn_config_free(c);

	c = load_fake("{\"source\": {}, \"sources\": [{\"backend\": \"c\"}], \"static\": {}, "
		      "\"extra\": {\"n\": 10}, \"service\": {\"name\": \"x\", \"address\": \"y\", \"port\": 1}}", &e);
	dump(&e);
	ck_assert_ptr_null(c);
	ck_assert(has_err(&e, "$.static", "unknown key \"static\""));
	ck_assert(has_err(&e, "$.sources", "give either \"source\" or \"sources\", not both"));
	ck_assert(has_err(&e, "$.source.backend", "a source backend such as \"a\" or \"b\""));
	ck_assert(has_err(&e, "$.sources[0].backend", "unknown source backend \"c\" (compiled in: a, b)"));
	ck_assert(has_err(&e, "$.extra.n", "from 1 to 9"));
	bcn_cfg_errs_free(&e);

	c = load_fake("{\"watch\": {\"kv\": [\"/a\"]}}", &e);
	ck_assert_ptr_null(c);
	ck_assert(has_err(&e, "$.watch", "needs a \"source\""));
	bcn_cfg_errs_free(&e);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("schema");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_static_and_expansion);
	tcase_add_test(tc, test_static_endpoint_errors_have_paths);
	tcase_add_test(tc, test_cross_field_rules);
	tcase_add_test(tc, test_check_timeout_default_follows_interval);
	tcase_add_test(tc, test_kv_prefix_without_slash);
	tcase_add_test(tc, test_registry_selection);
	tcase_add_test(tc, test_unknown_keys_and_json_errors);
	tcase_add_test(tc, test_secret_file);
	tcase_add_test(tc, test_sections_from_caller);
	suite_add_tcase(s, tc);
	return s;
}

BCN_TEST_MAIN(config_suite)
