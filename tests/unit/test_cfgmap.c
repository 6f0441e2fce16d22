/*
 * test_cfgmap.c - unit tests for the table-driven config parser.
 *
 * The sample table below mirrors the shape of the real config (SPEC.md): a
 * nested object, an optional object behind a pointer, a list of objects, string
 * lists and maps, ranged integers and durations, a file mode, a bool, required
 * keys and defaults. Error messages are compared whole, because their exact
 * wording and JSON path are what `beacon agent --check-config` prints.
 *
 * Environment variables used here are all named BCN_T_*, and each test sets
 * the ones it reads: under CK_FORK=no (valgrind) tests share one process.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/cfgmap.h"
#include "testutil.h"

/* ---- the sample table --------------------------------------------------- */

struct tls_conf {
	char *ca_file, *cert_file, *key_file;
};

struct socket_conf {
	char *path;
	unsigned mode;
	char *group;
};

struct registry_conf {
	char *backend;
	struct bcn_strlist endpoints;
	char *prefix;
	uint64_t ttl;
	struct tls_conf *tls;
	bool insecure;
};

struct check_conf {
	char *http;
	struct bcn_strlist exec;
	uint64_t interval, timeout;
	int64_t rise, fall;
};

struct service_conf {
	char *name, *id, *address;
	int64_t port;
	struct bcn_strlist tags;
	json_t *meta;
	int64_t weight;
	struct check_conf check;
};

struct watch_conf {
	struct bcn_strlist services, kv;
};

struct secret_conf {
	char *name, *path;
	uint64_t refresh;
	json_t *allow_uids;
};

struct vault_conf {
	char *address;
	struct bcn_objlist secrets;
};

struct sample_conf {
	char *node;
	struct socket_conf socket;
	struct registry_conf registry;
	struct service_conf service;
	struct watch_conf watch;
	json_t *statics;
	struct vault_conf *vault;
	bool debug;
};

#define SEC 1000
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

static const struct bcn_cfg_field tls_fields[] = {
	{ .key = "ca_file", .type = BCN_CFG_STR, .offset = offsetof(struct tls_conf, ca_file) },
	{ .key = "cert_file", .type = BCN_CFG_STR, .offset = offsetof(struct tls_conf, cert_file) },
	{ .key = "key_file", .type = BCN_CFG_STR, .offset = offsetof(struct tls_conf, key_file) },
	{ .key = NULL }
};

static const struct bcn_cfg_field socket_fields[] = {
	{ .key = "path", .type = BCN_CFG_STR, .offset = offsetof(struct socket_conf, path),
	  .def = "/run/beacon/beacon.sock" },
	{ .key = "mode", .type = BCN_CFG_MODE, .offset = offsetof(struct socket_conf, mode),
	  .def = "0660" },
	{ .key = "group", .type = BCN_CFG_STR, .offset = offsetof(struct socket_conf, group) },
	{ .key = NULL }
};

static const struct bcn_cfg_field registry_fields[] = {
	{ .key = "backend", .type = BCN_CFG_STR, .offset = offsetof(struct registry_conf, backend),
	  .flags = BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY,
	  .desc = "registry backend, \"etcd\" or \"consul\"" },
	{ .key = "endpoints", .type = BCN_CFG_STRLIST,
	  .offset = offsetof(struct registry_conf, endpoints),
	  .def = "[\"http://127.0.0.1:2379\"]", .flags = BCN_CFG_NONEMPTY },
	{ .key = "prefix", .type = BCN_CFG_STR, .offset = offsetof(struct registry_conf, prefix),
	  .def = "/beacon/services" },
	{ .key = "ttl", .type = BCN_CFG_DURATION, .offset = offsetof(struct registry_conf, ttl),
	  .def = "10s", .min = SEC, .max = HOUR },
	{ .key = "tls", .type = BCN_CFG_OBJPTR, .offset = offsetof(struct registry_conf, tls),
	  .sub = tls_fields, .sub_size = sizeof(struct tls_conf) },
	{ .key = "insecure", .type = BCN_CFG_BOOL, .offset = offsetof(struct registry_conf, insecure) },
	{ .key = NULL }
};

static const struct bcn_cfg_field check_fields[] = {
	{ .key = "http", .type = BCN_CFG_STR, .offset = offsetof(struct check_conf, http) },
	{ .key = "exec", .type = BCN_CFG_STRLIST, .offset = offsetof(struct check_conf, exec),
	  .flags = BCN_CFG_NONEMPTY },
	{ .key = "interval", .type = BCN_CFG_DURATION, .offset = offsetof(struct check_conf, interval),
	  .def = "5s", .min = 100, .max = HOUR },
	{ .key = "timeout", .type = BCN_CFG_DURATION, .offset = offsetof(struct check_conf, timeout),
	  .def = "1s", .min = 100, .max = INT64_MAX },
	{ .key = "rise", .type = BCN_CFG_INT, .offset = offsetof(struct check_conf, rise),
	  .def = "2", .min = 1, .max = 100 },
	{ .key = "fall", .type = BCN_CFG_INT, .offset = offsetof(struct check_conf, fall),
	  .def = "3", .min = 1, .max = 100 },
	{ .key = NULL }
};

static const struct bcn_cfg_field service_fields[] = {
	{ .key = "name", .type = BCN_CFG_STR, .offset = offsetof(struct service_conf, name),
	  .flags = BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY },
	{ .key = "id", .type = BCN_CFG_STR, .offset = offsetof(struct service_conf, id) },
	{ .key = "address", .type = BCN_CFG_STR, .offset = offsetof(struct service_conf, address) },
	{ .key = "port", .type = BCN_CFG_INT, .offset = offsetof(struct service_conf, port),
	  .def = "${BCN_T_DEFPORT:-8080}", .min = 1, .max = 65535 },
	{ .key = "tags", .type = BCN_CFG_STRLIST, .offset = offsetof(struct service_conf, tags) },
	{ .key = "meta", .type = BCN_CFG_STRMAP, .offset = offsetof(struct service_conf, meta) },
	{ .key = "weight", .type = BCN_CFG_INT, .offset = offsetof(struct service_conf, weight),
	  .def = "10", .min = 0, .max = 1000 },
	{ .key = "check", .type = BCN_CFG_OBJECT, .offset = offsetof(struct service_conf, check),
	  .sub = check_fields },
	{ .key = NULL }
};

static const struct bcn_cfg_field watch_fields[] = {
	{ .key = "services", .type = BCN_CFG_STRLIST, .offset = offsetof(struct watch_conf, services) },
	{ .key = "kv", .type = BCN_CFG_STRLIST, .offset = offsetof(struct watch_conf, kv) },
	{ .key = NULL }
};

static const struct bcn_cfg_field secret_fields[] = {
	{ .key = "name", .type = BCN_CFG_STR, .offset = offsetof(struct secret_conf, name),
	  .flags = BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, .desc = "the name clients ask for" },
	{ .key = "path", .type = BCN_CFG_STR, .offset = offsetof(struct secret_conf, path),
	  .flags = BCN_CFG_REQUIRED },
	{ .key = "refresh", .type = BCN_CFG_DURATION, .offset = offsetof(struct secret_conf, refresh),
	  .def = "5m" },
	{ .key = "allow_uids", .type = BCN_CFG_JSON,
	  .offset = offsetof(struct secret_conf, allow_uids) },
	{ .key = NULL }
};

static const struct bcn_cfg_field vault_fields[] = {
	{ .key = "address", .type = BCN_CFG_STR, .offset = offsetof(struct vault_conf, address),
	  .flags = BCN_CFG_REQUIRED },
	{ .key = "secrets", .type = BCN_CFG_OBJLIST, .offset = offsetof(struct vault_conf, secrets),
	  .sub = secret_fields, .sub_size = sizeof(struct secret_conf) },
	{ .key = NULL }
};

static const struct bcn_cfg_field sample_fields[] = {
	{ .key = "node", .type = BCN_CFG_STR, .offset = offsetof(struct sample_conf, node),
	  .def = "${BCN_T_NODE:-localhost}" },
	{ .key = "socket", .type = BCN_CFG_OBJECT, .offset = offsetof(struct sample_conf, socket),
	  .sub = socket_fields },
	{ .key = "registry", .type = BCN_CFG_OBJECT, .offset = offsetof(struct sample_conf, registry),
	  .sub = registry_fields },
	{ .key = "service", .type = BCN_CFG_OBJECT, .offset = offsetof(struct sample_conf, service),
	  .sub = service_fields },
	{ .key = "watch", .type = BCN_CFG_OBJECT, .offset = offsetof(struct sample_conf, watch),
	  .sub = watch_fields },
	{ .key = "static", .type = BCN_CFG_JSON, .offset = offsetof(struct sample_conf, statics) },
	{ .key = "vault", .type = BCN_CFG_OBJPTR, .offset = offsetof(struct sample_conf, vault),
	  .sub = vault_fields, .sub_size = sizeof(struct vault_conf) },
	{ .key = "debug", .type = BCN_CFG_BOOL, .offset = offsetof(struct sample_conf, debug) },
	{ .key = NULL }
};

/* ---- helpers ------------------------------------------------------------ */

/* JSON written with single quotes, so the test configs stay readable. */
static json_t *js(const char *text)
{
	char *copy = strdup(text);
	json_error_t jerr;
	json_t *v;

	ck_assert_ptr_nonnull(copy);
	for (char *p = copy; *p; p++)
		if (*p == '\'')
			*p = '"';
	v = json_loads(copy, JSON_DECODE_ANY, &jerr);
	ck_assert_msg(v != NULL, "bad test JSON %s: %s", copy, jerr.text);
	free(copy);
	return v;
}

/* All messages on one line, for a readable failure report. */
static const char *joined(const struct bcn_cfg_errs *e)
{
	static char buf[4096];
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < e->n && off < sizeof(buf); i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "[%s] ", e->msg[i]);
	return buf;
}

/* Fill the sample table from `text` and compare the problems, in order. */
static void expect_errors(const char *text, const char *const *want, size_t n)
{
	struct bcn_cfg_errs e = { 0 };
	struct sample_conf c;
	json_t *root = js(text);
	size_t got = bcn_cfg_fill(sample_fields, root, &c, "$", &e);

	ck_assert_msg(e.n == n, "want %zu problems, got %zu: %s", n, e.n, joined(&e));
	ck_assert_uint_eq(got, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(e.msg[i], want[i]);
	bcn_cfg_free(sample_fields, &c);
	bcn_cfg_errs_free(&e);
	json_decref(root);
}

static void expect_one(const char *text, const char *want)
{
	expect_errors(text, &want, 1);
}

#define REG "'registry': {'backend': 'etcd'}"
#define SVC "'service': {'name': 'web'}"
#define MINIMAL "{" REG ", " SVC "}"

static void set_env(void)
{
	setenv("BCN_T_HOST", "10.0.0.7", 1);
	setenv("BCN_T_PORT", "9090", 1);
	setenv("BCN_T_TTL", "30s", 1);
	setenv("BCN_T_MODE", "0640", 1);
	setenv("BCN_T_TAG", "canary", 1);
	setenv("BCN_T_ZONE", "eu-1a", 1);
	setenv("BCN_T_EMPTY", "", 1);
	setenv("BCN_T_REC", "${BCN_T_HOST}", 1);
	unsetenv("BCN_T_UNSET");
	unsetenv("BCN_T_NODE");
	unsetenv("BCN_T_DEFPORT");
}

/* ---- filling ------------------------------------------------------------ */

START_TEST(test_defaults)
{
	struct bcn_cfg_errs e = { 0 };
	struct sample_conf c;
	json_t *root;

	set_env();
	root = js(MINIMAL);
	ck_assert_uint_eq(bcn_cfg_fill(sample_fields, root, &c, "$", &e), 0);
	ck_assert_uint_eq(e.n, 0);

	ck_assert_str_eq(c.node, "localhost");
	ck_assert_str_eq(c.socket.path, "/run/beacon/beacon.sock");
	ck_assert_uint_eq(c.socket.mode, 0660);
	ck_assert_str_eq(c.socket.group, "");
	ck_assert_str_eq(c.registry.backend, "etcd");
	ck_assert_uint_eq(c.registry.endpoints.n, 1);
	ck_assert_str_eq(c.registry.endpoints.v[0], "http://127.0.0.1:2379");
	ck_assert_ptr_null(c.registry.endpoints.v[1]); /* NULL-terminated */
	ck_assert_str_eq(c.registry.prefix, "/beacon/services");
	ck_assert_uint_eq(c.registry.ttl, 10 * SEC);
	ck_assert_ptr_null(c.registry.tls);
	ck_assert(!c.registry.insecure);
	ck_assert_str_eq(c.service.name, "web");
	ck_assert_str_eq(c.service.id, "");
	ck_assert_int_eq(c.service.port, 8080);
	ck_assert_uint_eq(c.service.tags.n, 0);
	ck_assert_ptr_null(c.service.tags.v);
	ck_assert_ptr_null(c.service.meta);
	ck_assert_int_eq(c.service.weight, 10);
	ck_assert_str_eq(c.service.check.http, "");
	ck_assert_uint_eq(c.service.check.exec.n, 0);
	ck_assert_uint_eq(c.service.check.interval, 5 * SEC);
	ck_assert_uint_eq(c.service.check.timeout, 1 * SEC);
	ck_assert_int_eq(c.service.check.rise, 2);
	ck_assert_int_eq(c.service.check.fall, 3);
	ck_assert_uint_eq(c.watch.services.n, 0);
	ck_assert_ptr_null(c.statics);
	ck_assert_ptr_null(c.vault);
	ck_assert(!c.debug);

	bcn_cfg_free(sample_fields, &c);
	json_decref(root);
}
END_TEST

START_TEST(test_defaults_use_env)
{
	struct bcn_cfg_errs e = { 0 };
	struct sample_conf c;
	json_t *root;

	set_env();
	setenv("BCN_T_NODE", "node-7", 1);
	setenv("BCN_T_DEFPORT", "7070", 1);
	root = js(MINIMAL);
	ck_assert_uint_eq(bcn_cfg_fill(sample_fields, root, &c, "$", &e), 0);
	ck_assert_str_eq(c.node, "node-7");
	ck_assert_int_eq(c.service.port, 7070);
	bcn_cfg_free(sample_fields, &c);
	json_decref(root);
}
END_TEST

START_TEST(test_every_type)
{
	struct bcn_cfg_errs e = { 0 };
	struct sample_conf c;
	struct secret_conf *s;
	json_t *root, *want;

	set_env();
	root = js("{'node': 'n1',"
		  " 'socket': {'path': '/tmp/b.sock', 'mode': '640', 'group': 'app'},"
		  " 'registry': {'backend': 'consul', 'endpoints': ['http://a:8500', 'http://b:8500'],"
		  "   'ttl': '1m30s', 'tls': {'ca_file': '/ca.pem'}, 'insecure': true},"
		  " 'service': {'name': 'web', 'id': 'web-1', 'address': '10.0.0.1', 'port': 443,"
		  "   'tags': ['v1', 'blue'], 'meta': {'zone': 'a', 'legacy-id': '7'}, 'weight': 0,"
		  "   'check': {'exec': ['/bin/check', '--fast'], 'interval': '1.5s',"
		  "     'timeout': '500ms', 'rise': '4', 'fall': 1}},"
		  " 'watch': {'services': ['payments', 'users'], 'kv': ['/config/web/']},"
		  " 'static': {'services': {'legacy-db': [{'address': '10.1.2.3', 'port': 5432}]}},"
		  " 'vault': {'address': 'https://vault:8200', 'secrets': ["
		  "   {'name': 'db', 'path': 'secret/data/web/db', 'refresh': '1h', 'allow_uids': [1000]},"
		  "   {'name': 'api', 'path': 'secret/data/web/api'}]},"
		  " 'debug': true}");
	ck_assert_msg(bcn_cfg_fill(sample_fields, root, &c, "$", &e) == 0, "%s", joined(&e));

	ck_assert_str_eq(c.node, "n1");
	ck_assert_str_eq(c.socket.path, "/tmp/b.sock");
	ck_assert_uint_eq(c.socket.mode, 0640);
	ck_assert_str_eq(c.socket.group, "app");
	ck_assert_str_eq(c.registry.backend, "consul");
	ck_assert_uint_eq(c.registry.endpoints.n, 2);
	ck_assert_str_eq(c.registry.endpoints.v[1], "http://b:8500");
	ck_assert_uint_eq(c.registry.ttl, 90 * SEC);
	ck_assert_ptr_nonnull(c.registry.tls);
	ck_assert_str_eq(c.registry.tls->ca_file, "/ca.pem");
	ck_assert_str_eq(c.registry.tls->key_file, ""); /* defaults inside an OBJPTR */
	ck_assert(c.registry.insecure);
	ck_assert_str_eq(c.service.address, "10.0.0.1");
	ck_assert_int_eq(c.service.port, 443);
	ck_assert_uint_eq(c.service.tags.n, 2);
	ck_assert_str_eq(c.service.tags.v[0], "v1");
	ck_assert_str_eq(json_string_value(json_object_get(c.service.meta, "legacy-id")), "7");
	ck_assert_uint_eq(json_object_size(c.service.meta), 2);
	ck_assert_int_eq(c.service.weight, 0);
	ck_assert_str_eq(c.service.check.exec.v[1], "--fast");
	ck_assert_ptr_null(c.service.check.exec.v[2]);
	ck_assert_uint_eq(c.service.check.interval, 1500);
	ck_assert_uint_eq(c.service.check.timeout, 500);
	ck_assert_int_eq(c.service.check.rise, 4);
	ck_assert_int_eq(c.service.check.fall, 1);
	ck_assert_str_eq(c.watch.kv.v[0], "/config/web/");
	ck_assert(c.debug);

	ck_assert_ptr_nonnull(c.vault);
	ck_assert_uint_eq(c.vault->secrets.n, 2);
	s = c.vault->secrets.v;
	ck_assert_str_eq(s[0].name, "db");
	ck_assert_uint_eq(s[0].refresh, HOUR);
	ck_assert_int_eq(json_integer_value(json_array_get(s[0].allow_uids, 0)), 1000);
	ck_assert_str_eq(s[1].path, "secret/data/web/api");
	ck_assert_uint_eq(s[1].refresh, 5 * MIN);
	ck_assert_ptr_null(s[1].allow_uids);

	/* JSON fields hold their own reference: they outlive the document. */
	want = json_deep_copy(json_object_get(root, "static"));
	json_decref(root);
	ck_assert(json_equal(c.statics, want));
	json_decref(want);
	bcn_cfg_free(sample_fields, &c);
}
END_TEST

START_TEST(test_env_everywhere)
{
	struct bcn_cfg_errs e = { 0 };
	struct sample_conf c;
	json_t *root;

	set_env();
	root = js("{'node': '${BCN_T_HOST}',"
		  " 'socket': {'mode': '${BCN_T_MODE}'},"
		  " 'registry': {'backend': 'etcd', 'ttl': '${BCN_T_TTL}',"
		  "   'endpoints': ['http://${BCN_T_HOST}:2379']},"
		  " 'service': {'name': 'web', 'id': 'web-${BCN_T_UNSET}', 'port': '${BCN_T_PORT}',"
		  "   'tags': ['${BCN_T_TAG}', '${BCN_T_UNSET:-stable}', '${BCN_T_REC}'],"
		  "   'meta': {'zone': '${BCN_T_ZONE}', 'cost': '$$5', 'dc': '${BCN_T_EMPTY:-dc1}'},"
		  "   'check': {'http': 'http://${BCN_T_HOST}:${BCN_T_PORT}/healthz',"
		  "     'rise': '${BCN_T_UNSET:-5}'}},"
		  " 'static': {'address': '${BCN_T_HOST}'}}");
	ck_assert_msg(bcn_cfg_fill(sample_fields, root, &c, "$", &e) == 0, "%s", joined(&e));

	ck_assert_str_eq(c.node, "10.0.0.7");
	ck_assert_uint_eq(c.socket.mode, 0640);
	ck_assert_uint_eq(c.registry.ttl, 30 * SEC);
	ck_assert_str_eq(c.registry.endpoints.v[0], "http://10.0.0.7:2379");
	ck_assert_str_eq(c.service.id, "web-");
	ck_assert_int_eq(c.service.port, 9090);
	ck_assert_str_eq(c.service.tags.v[0], "canary");
	ck_assert_str_eq(c.service.tags.v[1], "stable");
	ck_assert_str_eq(c.service.tags.v[2], "${BCN_T_HOST}"); /* results are not re-expanded */
	ck_assert_str_eq(json_string_value(json_object_get(c.service.meta, "zone")), "eu-1a");
	ck_assert_str_eq(json_string_value(json_object_get(c.service.meta, "cost")), "$5");
	ck_assert_str_eq(json_string_value(json_object_get(c.service.meta, "dc")), "dc1");
	ck_assert_str_eq(c.service.check.http, "http://10.0.0.7:9090/healthz");
	ck_assert_int_eq(c.service.check.rise, 5);
	/* JSON fields are kept exactly as written. */
	ck_assert_str_eq(json_string_value(json_object_get(c.statics, "address")), "${BCN_T_HOST}");

	bcn_cfg_free(sample_fields, &c);
	json_decref(root);
}
END_TEST

START_TEST(test_fill_null_object)
{
	static const char *const want[] = {
		"$.registry.backend: missing required key (registry backend, \"etcd\" or \"consul\")",
		"$.service.name: missing required key",
	};
	struct bcn_cfg_errs e = { 0 };
	struct sample_conf c;

	set_env();
	ck_assert_uint_eq(bcn_cfg_fill(sample_fields, NULL, &c, "$", &e), 2);
	ck_assert_uint_eq(e.n, 2);
	ck_assert_str_eq(e.msg[0], want[0]);
	ck_assert_str_eq(e.msg[1], want[1]);
	/* Everything else still got its default. */
	ck_assert_uint_eq(c.registry.ttl, 10 * SEC);
	ck_assert_ptr_null(c.registry.backend);
	bcn_cfg_free(sample_fields, &c);
	bcn_cfg_errs_free(&e);
}
END_TEST

START_TEST(test_fill_custom_path_and_appends)
{
	struct bcn_cfg_errs e = { 0 };
	struct tls_conf t;
	json_t *bad = js("{'ca_fille': 1}");
	json_t *arr = js("[1]");

	bcn_cfg_err(&e, "$.first", "already %d here", 1);
	ck_assert_uint_eq(bcn_cfg_fill(tls_fields, bad, &t, "$.registries[2].tls", &e), 1);
	bcn_cfg_free(tls_fields, &t);
	ck_assert_uint_eq(bcn_cfg_fill(tls_fields, arr, &t, "$.x", &e), 1);
	ck_assert_uint_eq(e.n, 3);
	ck_assert_str_eq(e.msg[0], "$.first: already 1 here");
	ck_assert_str_eq(e.msg[1], "$.registries[2].tls.ca_fille: unknown key \"ca_fille\" "
				   "(did you mean \"ca_file\"?)");
	ck_assert_str_eq(e.msg[2], "$.x: expected an object, got an array");
	bcn_cfg_free(tls_fields, &t);
	bcn_cfg_free(tls_fields, NULL);
	bcn_cfg_free(NULL, &t);
	bcn_cfg_errs_free(&e);
	ck_assert_ptr_null(e.msg);
	ck_assert_uint_eq(e.n, 0);
	bcn_cfg_errs_free(&e);
	bcn_cfg_errs_free(NULL);
	json_decref(bad);
	json_decref(arr);
}
END_TEST

/* ---- one problem each --------------------------------------------------- */

static const struct {
	const char *json, *want;
} single_cases[] = {
	/* unknown keys, with and without a suggestion */
	{ "{" REG ", 'service': {'name': 'web', 'chek': {}}}",
	  "$.service.chek: unknown key \"chek\" (did you mean \"check\"?)" },
	{ "{" REG ", 'service': {'name': 'web', 'check': {'itnerval': '5s'}}}",
	  "$.service.check.itnerval: unknown key \"itnerval\" (did you mean \"interval\"?)" },
	{ "{" REG ", " SVC ", 'debgu': true}",
	  "$.debgu: unknown key \"debgu\" (did you mean \"debug\"?)" },
	{ "{" REG ", 'service': {'name': 'web', 'foo': 1}}",
	  "$.service.foo: unknown key \"foo\"" },
	{ "{" REG ", " SVC ", 'watch': {'service': []}}",
	  "$.watch.service: unknown key \"service\" (did you mean \"services\"?)" },
	{ "{" REG ", " SVC ", 'watch': {'legacy-db': []}}",
	  "$.watch[\"legacy-db\"]: unknown key \"legacy-db\"" },
	{ "{" REG ", " SVC ", 'watch': {'a\\\\b': 1}}",
	  "$.watch[\"a\\\\b\"]: unknown key \"a\\\\b\"" },
	{ "{" REG ", " SVC ", 'watch': {'a\\\"b': 1}}",
	  "$.watch[\"a\\\"b\"]: unknown key \"a\\\"b\"" },
	{ "{" REG ", " SVC ", 'watch': {'x': []}}", /* too short to be a typo of "kv" */
	  "$.watch.x: unknown key \"x\"" },
	{ "{" REG ", " SVC ", 'watch': {'kb': []}}",
	  "$.watch.kb: unknown key \"kb\" (did you mean \"kv\"?)" },
	{ "{'registry': {'backend': 'etcd', 'tls': {'ca': ''}}, " SVC "}",
	  "$.registry.tls.ca: unknown key \"ca\"" },
	/* wrong types, one per field type */
	{ "{'node': 5, " REG ", " SVC "}", "$.node: expected a string, got a number 5" },
	{ "{" REG ", 'service': {'name': 'web', 'port': 'abc'}}",
	  "$.service.port: expected an integer, got a string \"abc\"" },
	{ "{" REG ", 'service': {'name': 'web', 'port': true}}",
	  "$.service.port: expected an integer, got true" },
	{ "{" REG ", 'service': {'name': 'web', 'port': 80.5}}",
	  "$.service.port: expected an integer, got a number 80.5" },
	{ "{" REG ", 'service': {'name': 'web', 'port': 8080.0}}",
	  "$.service.port: expected an integer, got a number 8080.0" },
	{ "{" REG ", 'service': {'name': 'web', 'port': 1e3}}",
	  "$.service.port: expected an integer, got a number 1000.0" },
	{ "{" REG ", 'service': {'name': 'web', 'port': null}}",
	  "$.service.port: expected an integer, got null" },
	{ "{" REG ", 'service': {'name': 'web', 'port': ' 80'}}",
	  "$.service.port: expected an integer, got a string \" 80\"" },
	{ "{'registry': {'backend': 'etcd', 'insecure': 'yes'}, " SVC "}",
	  "$.registry.insecure: expected true or false, got a string \"yes\"" },
	{ "{'registry': {'backend': 'etcd', 'insecure': 1}, " SVC "}",
	  "$.registry.insecure: expected true or false, got a number 1" },
	{ "{'registry': {'backend': 'etcd', 'ttl': 10}, " SVC "}",
	  "$.registry.ttl: expected a duration string such as \"10s\", got a number 10" },
	{ "{'socket': {'mode': 660}, " REG ", " SVC "}",
	  "$.socket.mode: expected an octal file mode string such as \"0660\", got a number 660" },
	{ "{" REG ", 'service': {'name': 'web', 'tags': 'v1'}}",
	  "$.service.tags: expected an array of strings, got a string \"v1\"" },
	{ "{" REG ", 'service': {'name': 'web', 'tags': ['v1', 2]}}",
	  "$.service.tags[1]: expected a string, got a number 2" },
	{ "{" REG ", 'service': {'name': 'web', 'meta': ['a']}}",
	  "$.service.meta: expected an object with string values, got an array" },
	{ "{" REG ", 'service': {'name': 'web', 'meta': {'zone': 1}}}",
	  "$.service.meta.zone: expected a string, got a number 1" },
	{ "{" REG ", 'service': {'name': 'web', 'meta': {'my-zone': false}}}",
	  "$.service.meta[\"my-zone\"]: expected a string, got false" },
	{ "{" REG ", 'service': []}", "$.service: expected an object, got an array" },
	{ "{'registry': {'backend': 'etcd', 'tls': 'x'}, " SVC "}",
	  "$.registry.tls: expected an object, got a string \"x\"" },
	{ "{" REG ", " SVC ", 'vault': {'address': 'a', 'secrets': {}}}",
	  "$.vault.secrets: expected an array of objects, got an object" },
	{ "{" REG ", " SVC ", 'vault': {'address': 'a', 'secrets': [{'name': 'db', 'path': 'p'}, 3]}}",
	  "$.vault.secrets[1]: expected an object, got a number 3" },
	{ "{" REG ", " SVC ", 'vault': []}", "$.vault: expected an object, got an array" },
	/* NONEMPTY */
	{ "{'registry': {'backend': 'etcd', 'endpoints': []}, " SVC "}",
	  "$.registry.endpoints: expected a non-empty array of strings, got an empty array" },
	{ "{" REG ", 'service': {'name': 'web', 'check': {'exec': ['/bin/true', '']}}}",
	  "$.service.check.exec[1]: expected a non-empty string, got a string \"\"" },
	{ "{" REG ", 'service': {'name': ''}}",
	  "$.service.name: expected a non-empty string, got a string \"\"" },
	{ "{" REG ", 'service': {'name': '${BCN_T_EMPTY}'}}",
	  "$.service.name: expected a non-empty string, got a string \"${BCN_T_EMPTY}\" "
	  "(expanded to \"\")" },
	/* ranges */
	{ "{" REG ", 'service': {'name': 'web', 'port': 70000}}",
	  "$.service.port: expected an integer from 1 to 65535, got 70000" },
	{ "{" REG ", 'service': {'name': 'web', 'port': '0'}}",
	  "$.service.port: expected an integer from 1 to 65535, got 0" },
	{ "{" REG ", 'service': {'name': 'web', 'port': '99999999999999999999'}}",
	  "$.service.port: expected an integer, got a string \"99999999999999999999\"" },
	{ "{" REG ", 'service': {'name': 'web', 'check': {'rise': 0}}}",
	  "$.service.check.rise: expected an integer from 1 to 100, got 0" },
	{ "{'registry': {'backend': 'etcd', 'ttl': '2h'}, " SVC "}",
	  "$.registry.ttl: expected a duration from \"1s\" to \"1h\", got \"2h\"" },
	{ "{'registry': {'backend': 'etcd', 'ttl': '999ms'}, " SVC "}",
	  "$.registry.ttl: expected a duration from \"1s\" to \"1h\", got \"999ms\"" },
	{ "{" REG ", 'service': {'name': 'web', 'check': {'timeout': '0.05s'}}}",
	  "$.service.check.timeout: expected a duration of at least \"100ms\", got \"50ms\"" },
	/* bad durations and modes */
	{ "{'registry': {'backend': 'etcd', 'ttl': '10x'}, " SVC "}",
	  "$.registry.ttl: expected a duration string such as \"10s\", got a string \"10x\"" },
	{ "{'registry': {'backend': 'etcd', 'ttl': '10'}, " SVC "}",
	  "$.registry.ttl: expected a duration string such as \"10s\", got a string \"10\" "
	  "(add a unit: ms, s, m or h)" },
	{ "{'registry': {'backend': 'etcd', 'ttl': '${BCN_T_UNSET}'}, " SVC "}",
	  "$.registry.ttl: expected a duration string such as \"10s\", got a string "
	  "\"${BCN_T_UNSET}\" (expanded to \"\")" },
	{ "{'socket': {'mode': '0999'}, " REG ", " SVC "}",
	  "$.socket.mode: expected an octal file mode string such as \"0660\", got a string \"0999\"" },
	{ "{'socket': {'mode': '17777'}, " REG ", " SVC "}",
	  "$.socket.mode: expected an octal file mode string such as \"0660\", got a string \"17777\"" },
	{ "{'socket': {'mode': ''}, " REG ", " SVC "}",
	  "$.socket.mode: expected an octal file mode string such as \"0660\", got a string \"\"" },
	/* required keys, nested paths */
	{ "{" SVC "}",
	  "$.registry.backend: missing required key (registry backend, \"etcd\" or \"consul\")" },
	{ "{" REG ", " SVC ", 'vault': {}}", "$.vault.address: missing required key" },
	{ "{" REG ", " SVC ", 'vault': {'address': 'a', 'secrets': [{'name': 'db', 'path': 'p'},"
	  " {'name': 'api'}]}}",
	  "$.vault.secrets[1].path: missing required key" },
	{ "{" REG ", " SVC ", 'vault': {'address': 'a', 'secrets': [{'name': 'db', 'path': 'p'},"
	  " {'name': 'api', 'path': 'q', 'refresh': 'weekly'}]}}",
	  "$.vault.secrets[1].refresh: expected a duration string such as \"10s\", got a string "
	  "\"weekly\"" },
	/* ${VAR} syntax errors, in every string position */
	{ "{'node': 'n-${BCN_T_HOST', " REG ", " SVC "}",
	  "$.node: unterminated \"${\": close it with \"}\", or write \"$$\" for a literal \"$\"" },
	{ "{" REG ", 'service': {'name': 'web', 'tags': ['${1X}']}}",
	  "$.service.tags[0]: invalid variable name in \"${...}\": use letters, digits and \"_\", "
	  "not starting with a digit" },
	{ "{" REG ", 'service': {'name': 'web', 'meta': {'zone': '${Z:=a}'}}}",
	  "$.service.meta.zone: unsupported \"${...}\" form: use ${VAR} or ${VAR:-default}" },
	{ "{" REG ", 'service': {'name': 'web', 'port': '${BCN_T_PORT'}}",
	  "$.service.port: unterminated \"${\": close it with \"}\", or write \"$$\" for a literal \"$\"" },
	/* long values are cut */
	{ "{" REG ", 'service': {'name': 'web', 'port': "
	  "'12345678901234567890123456789012345678901234567890x'}}",
	  "$.service.port: expected an integer, got a string "
	  "\"1234567890123456789012345678901234567890...\"" },
	{ "{" REG ", " SVC ", 'watch': {"
	  "'abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij': 1}}",
	  "$.watch.abcdefghijabcdefghijabcdefghijabcdefghij...: unknown key "
	  "\"abcdefghijabcdefghijabcdefghijabcdefghij...\"" },
	{ "{" REG ", 'service': {'name': 'web', 'port': 'a\\nb\\u00e9'}}",
	  "$.service.port: expected an integer, got a string \"a\\nb\xc3\xa9\"" },
};

START_TEST(test_single_error)
{
	set_env();
	expect_one(single_cases[_i].json, single_cases[_i].want);
}
END_TEST

START_TEST(test_many_errors_one_pass)
{
	static const char *const want[] = {
		"$.nodee: unknown key \"nodee\" (did you mean \"node\"?)",
		"$.socket.mode: expected an octal file mode string such as \"0660\", got a string \"0999\"",
		"$.registry.ttl: expected a duration string such as \"10s\", got a string \"soon\"",
		"$.registry.endpoints[1]: expected a string, got a number 7",
		"$.registry.backend: missing required key (registry backend, \"etcd\" or \"consul\")",
		"$.service.port: expected an integer from 1 to 65535, got 0",
		"$.service.check.interval: expected a duration string such as \"10s\", got a string \"1x\"",
		"$.vault.secrets[0].refresh: expected a duration string such as \"10s\", got a number 5",
		"$.vault.secrets[1].name: missing required key (the name clients ask for)",
	};

	set_env();
	expect_errors("{'nodee': 'x', 'socket': {'mode': '0999'},"
		      " 'registry': {'ttl': 'soon', 'endpoints': ['http://a', 7]},"
		      " 'service': {'name': 'web', 'port': 0, 'check': {'interval': '1x'}},"
		      " 'vault': {'address': 'a', 'secrets': [{'name': 'db', 'path': 'p', 'refresh': 5},"
		      "   {'path': 'q'}]}}",
		      want, sizeof(want) / sizeof(want[0]));
}
END_TEST

/* A broken table default is a programming error, reported as such. */
START_TEST(test_bad_table_defaults)
{
	struct bad {
		int64_t n;
		struct bcn_strlist l;
	};
	static const struct bcn_cfg_field bad_fields[] = {
		{ .key = "n", .type = BCN_CFG_INT, .offset = offsetof(struct bad, n), .def = "ten" },
		{ .key = "l", .type = BCN_CFG_STRLIST, .offset = offsetof(struct bad, l), .def = "[a" },
		{ .key = NULL }
	};
	static const char prefix[] = "$.l (default): the field table's default is invalid: ";
	struct bcn_cfg_errs e = { 0 };
	struct bad b;

	ck_assert_uint_eq(bcn_cfg_fill(bad_fields, NULL, &b, "$", &e), 2);
	ck_assert_str_eq(e.msg[0], "$.n (default): expected an integer, got a string \"ten\"");
	ck_assert_msg(strncmp(e.msg[1], prefix, strlen(prefix)) == 0, "%s", e.msg[1]);
	bcn_cfg_free(bad_fields, &b);
	bcn_cfg_errs_free(&e);
}
END_TEST

/* ---- releasing after failures ------------------------------------------- */

/* Warnings are kept apart from problems: they never count as one. */
START_TEST(test_warnings_apart)
{
	struct bcn_cfg_errs e = { 0 };

	bcn_cfg_warn(&e, "$.registry.ttl", "only %d", 1);
	bcn_cfg_warn(&e, NULL, "no path");
	bcn_cfg_err(&e, "$.x", "bad");
	ck_assert_uint_eq(e.n, 1);
	ck_assert_uint_eq(e.nwarn, 2);
	ck_assert_str_eq(e.warn[0], "$.registry.ttl: only 1");
	ck_assert_str_eq(e.warn[1], "no path");
	ck_assert_str_eq(e.msg[0], "$.x: bad");
	bcn_cfg_warn(NULL, "$.y", "dropped");
	bcn_cfg_errs_free(&e);
	ck_assert_ptr_null(e.warn);
	ck_assert_uint_eq(e.nwarn, 0);
}
END_TEST

START_TEST(test_free_after_partial_failure)
{
	struct bcn_cfg_errs e = { 0 };
	struct sample_conf c;
	json_t *root;

	set_env();
	/* Start from garbage: fill must not trust or free what was there. */
	memset(&c, 0xA5, sizeof(c));
	root = js("{'node': 'n', 'registry': {'backend': 'etcd', 'endpoints': ['a', 1, 'c'],"
		  "   'tls': {'ca_file': '/ca', 'bogus': 1}},"
		  " 'service': {'name': 'web', 'tags': ['x', '${'], 'meta': {'a': 'b', 'c': []},"
		  "   'check': {'exec': ['/bin/x', ''], 'http': 'h'}},"
		  " 'static': [1, 2],"
		  " 'vault': {'address': 'v', 'secrets': [{'name': 'a', 'path': 'p', 'allow_uids': [1]},"
		  "   'junk', {'name': 7, 'path': 'q'}, {'name': 'c', 'path': 'r', 'x': 1}]}}");
	ck_assert_uint_eq(bcn_cfg_fill(sample_fields, root, &c, "$", &e), 8);
	ck_assert_uint_eq(e.n, 8);

	/* What did convert is there; what failed is empty, not garbage. */
	ck_assert_str_eq(c.registry.endpoints.v[2], "c");
	ck_assert_ptr_null(c.registry.endpoints.v[1]);
	ck_assert_str_eq(c.registry.tls->ca_file, "/ca");
	ck_assert_uint_eq(json_object_size(c.service.meta), 1);
	ck_assert_uint_eq(c.vault->secrets.n, 4);
	ck_assert_ptr_null(((struct secret_conf *)c.vault->secrets.v)[1].name);
	ck_assert_ptr_null(((struct secret_conf *)c.vault->secrets.v)[2].name);

	json_decref(root); /* the config must not depend on the document any more */
	bcn_cfg_free(sample_fields, &c);
	ck_assert_ptr_null(c.node);
	ck_assert_ptr_null(c.registry.endpoints.v);
	ck_assert_uint_eq(c.registry.endpoints.n, 0);
	ck_assert_ptr_null(c.registry.tls);
	ck_assert_ptr_null(c.service.meta);
	ck_assert_ptr_null(c.service.check.exec.v);
	ck_assert_ptr_null(c.statics);
	ck_assert_ptr_null(c.vault);
	bcn_cfg_free(sample_fields, &c); /* twice is harmless */
	bcn_cfg_errs_free(&e);
}
END_TEST

/* ---- bcn_expand_env ----------------------------------------------------- */

static const struct {
	const char *in, *out;
} expand_ok[] = {
	{ "plain", "plain" },
	{ "", "" },
	{ "${BCN_T_HOST}", "10.0.0.7" },
	{ "x${BCN_T_HOST}y${BCN_T_PORT}", "x10.0.0.7y9090" },
	{ "${BCN_T_UNSET}", "" },
	{ "${BCN_T_UNSET:-def}", "def" },
	{ "${BCN_T_EMPTY:-def}", "def" }, /* empty counts as unset, as in sh */
	{ "${BCN_T_EMPTY}", "" },
	{ "${BCN_T_HOST:-def}", "10.0.0.7" },
	{ "${BCN_T_UNSET:-}", "" },
	{ "${BCN_T_UNSET:-a:b-c ${x $y}", "a:b-c ${x $y" }, /* defaults are verbatim up to '}' */
	{ "${BCN_T_UNSET:-a}}", "a}" },
	{ "$$", "$" },
	{ "$$${BCN_T_TAG}", "$canary" },
	{ "$${BCN_T_TAG}", "${BCN_T_TAG}" },
	{ "a$b", "a$b" },
	{ "5$", "5$" },
	{ "$1 $ $}", "$1 $ $}" },
	{ "${BCN_T_REC}", "${BCN_T_HOST}" }, /* no recursive expansion */
	{ "${_BCN_T}", "" },
};

START_TEST(test_expand_ok)
{
	const char *err = "untouched";
	char *s;

	set_env();
	s = bcn_expand_env(expand_ok[_i].in, &err);
	ck_assert_msg(s != NULL, "%s: %s", expand_ok[_i].in, err);
	ck_assert_str_eq(s, expand_ok[_i].out);
	free(s);
}
END_TEST

#define E_UNTERM "unterminated \"${\": close it with \"}\", or write \"$$\" for a literal \"$\""
#define E_NAME "invalid variable name in \"${...}\": use letters, digits and \"_\", " \
	       "not starting with a digit"
#define E_FORM "unsupported \"${...}\" form: use ${VAR} or ${VAR:-default}"

static const struct {
	const char *in, *err;
} expand_bad[] = {
	{ "${BCN_T_HOST", E_UNTERM },
	{ "${", E_UNTERM },
	{ "abc${", E_UNTERM },
	{ "${A:-x", E_UNTERM },
	{ "${BCN_T_HOST}${", E_UNTERM },
	{ "${}", E_NAME },
	{ "${1A}", E_NAME },
	{ "${A B}", E_NAME },
	{ "${A.B}", E_NAME },
	{ "${:-x}", E_NAME },
	{ "${A-x}", E_FORM },
	{ "${A:=x}", E_FORM },
	{ "${A:}", E_FORM },
	{ "${A?}", E_FORM },
};

START_TEST(test_expand_bad)
{
	const char *err = NULL;

	set_env();
	ck_assert_ptr_null(bcn_expand_env(expand_bad[_i].in, &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err, expand_bad[_i].err);
}
END_TEST

/* ---- durations ---------------------------------------------------------- */

static const struct {
	const char *in;
	uint64_t ms;
} duration_ok[] = {
	{ "0", 0 },
	{ "0s", 0 },
	{ "0ms", 0 },
	{ "500ms", 500 },
	{ "10s", 10 * SEC },
	{ "5m", 5 * MIN },
	{ "1h", HOUR },
	{ "1h30m", 90 * MIN },
	{ "1.5s", 1500 },
	{ "1.5h", 90 * MIN },
	{ ".5s", 500 },
	{ "5.s", 5 * SEC },
	{ "1m30s", 90 * SEC },
	{ "1h0m0.5s", HOUR + 500 },
	{ "30s1h", HOUR + 30 * SEC },
	{ "1.0005s", 1000 },  /* below a millisecond is dropped */
	{ "0.25ms", 0 },
	{ "2562047h", 2562047ULL * HOUR },
	{ "9223372036854ms", 9223372036854ULL }, /* Go's time.Duration maximum */
};

static const char *const duration_bad[] = {
	"", "10", "-1s", "+1s", "10x", "1d", "1us", "1ns", "s", ".s", "1..5s", "1 s", " 1s",
	"1s ", "99999999999h", "9223372036855ms", "2562048h", "2562047h1h", "1.5", "1h30",
	"00", "0.0", "1e3s", "1S", "1H",
};

START_TEST(test_duration_ok)
{
	uint64_t ms = 12345;

	ck_assert_msg(bcn_duration_parse(duration_ok[_i].in, &ms) == 0, "%s", duration_ok[_i].in);
	ck_assert_uint_eq(ms, duration_ok[_i].ms);
}
END_TEST

START_TEST(test_duration_bad)
{
	uint64_t ms = 12345;

	ck_assert_msg(bcn_duration_parse(duration_bad[_i], &ms) == -1, "%s", duration_bad[_i]);
	ck_assert_uint_eq(ms, 12345); /* untouched on failure */
}
END_TEST

static const struct {
	uint64_t ms;
	const char *text;
} duration_fmt[] = {
	{ 0, "0s" },
	{ 1, "1ms" },
	{ 500, "500ms" },
	{ 1000, "1s" },
	{ 1001, "1.001s" },
	{ 1250, "1.25s" },
	{ 1500, "1.5s" },
	{ 90 * SEC, "1m30s" },
	{ 5 * MIN, "5m" },
	{ HOUR, "1h" },
	{ 90 * MIN, "1h30m" },
	{ HOUR + 500, "1h500ms" },
	{ HOUR + 1500, "1h1.5s" },
	{ 24 * HOUR, "24h" },
	{ 2562047ULL * HOUR + 47 * MIN + 16 * SEC + 854, "2562047h47m16.854s" },
};

START_TEST(test_duration_format)
{
	char buf[32];
	uint64_t back = 0;

	bcn_duration_format(duration_fmt[_i].ms, buf, sizeof(buf));
	ck_assert_str_eq(buf, duration_fmt[_i].text);
	ck_assert_int_eq(bcn_duration_parse(buf, &back), 0);
	ck_assert_uint_eq(back, duration_fmt[_i].ms);
}
END_TEST

START_TEST(test_duration_round_trip)
{
	char buf[32];

	/* A spread of values with every unit part present or absent. */
	for (uint64_t ms = 0; ms < 4 * HOUR; ms = ms * 3 + 7) {
		uint64_t back = 0;

		bcn_duration_format(ms, buf, sizeof(buf));
		ck_assert_msg(bcn_duration_parse(buf, &back) == 0, "%s", buf);
		ck_assert_uint_eq(back, ms);
	}
	/* A short buffer is cut, never overrun. */
	bcn_duration_format(90 * MIN, buf, 3);
	ck_assert_str_eq(buf, "1h");
	bcn_duration_format(90 * MIN, buf, 1);
	ck_assert_str_eq(buf, "");
}
END_TEST

/* ---- loading files ------------------------------------------------------ */

static char tmpdir[64];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_cfgmap.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/c.json", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

/* Write `text` to a file in the test's directory; returns its path. */
static const char *write_file(const char *text)
{
	static char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/c.json", tmpdir);
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* Load `text` from a file and expect exactly "FILE<suffix>" as the problem. */
static void expect_load_error(const char *text, const char *suffix)
{
	struct bcn_cfg_errs e = { 0 };
	const char *file = write_file(text);
	char want[512];

	ck_assert_ptr_null(bcn_cfg_load_file(file, &e));
	ck_assert_uint_eq(e.n, 1);
	snprintf(want, sizeof(want), "%s%s", file, suffix);
	ck_assert_str_eq(e.msg[0], want);
	bcn_cfg_errs_free(&e);
}

START_TEST(test_load_ok)
{
	struct bcn_cfg_errs e = { 0 };
	struct sample_conf c;
	json_t *root;

	set_env();
	root = bcn_cfg_load_file(write_file("{\n  \"registry\": {\"backend\": \"etcd\"},\n"
					    "  \"service\": {\"name\": \"web\", \"port\": 81}\n}\n"), &e);
	ck_assert_msg(root != NULL, "%s", joined(&e));
	ck_assert_uint_eq(bcn_cfg_fill(sample_fields, root, &c, "$", &e), 0);
	ck_assert_int_eq(c.service.port, 81);
	bcn_cfg_free(sample_fields, &c);
	json_decref(root);
}
END_TEST

START_TEST(test_load_syntax_errors)
{
	/* jansson's column is that of the last character of the offending token. */
	expect_load_error("{\n  \"node\": \"a\",\n  \"debug\": tru\n}\n",
			  ":3:14: invalid token near 'tru'");
	expect_load_error("{\n  \"a\": 1\n  \"b\": 2\n}\n", ":3:5: '}' expected near '\"b\"'");
	expect_load_error("{\"node\": \"a\", \"node\": \"b\"}",
			  ":1:20: duplicate object key near '\"node\"'");
	expect_load_error("", ":1:0: unexpected token near end of file");
}
END_TEST

START_TEST(test_load_not_an_object)
{
	expect_load_error("[1, 2]\n", ": expected a JSON object at the top level, got an array");
	expect_load_error("\"abc\"\n",
			  ": expected a JSON object at the top level, got a string \"abc\"");
	expect_load_error("42", ": expected a JSON object at the top level, got a number 42");
}
END_TEST

START_TEST(test_load_cannot_open)
{
	struct bcn_cfg_errs e = { 0 };
	char missing[128], want[256];

	snprintf(missing, sizeof(missing), "%s/missing.json", tmpdir);
	ck_assert_ptr_null(bcn_cfg_load_file(missing, &e));
	ck_assert_ptr_null(bcn_cfg_load_file(tmpdir, &e));
	ck_assert_uint_eq(e.n, 2);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", missing);
	ck_assert_str_eq(e.msg[0], want);
	snprintf(want, sizeof(want), "%s: cannot open: Is a directory", tmpdir);
	ck_assert_str_eq(e.msg[1], want);
	bcn_cfg_errs_free(&e);
}
END_TEST

/* ---- restart-only keys ------------------------------------------------------ */

struct rs_inner {
	char *a;
	int64_t b;
};

struct rs_conf {
	char *addr;                 /* restart */
	uint64_t timeout_ms;        /* restart */
	struct bcn_strlist watch;   /* live */
	struct rs_inner tls;        /* restart as a whole */
	struct rs_inner sock;       /* only sock.a restart */
	struct rs_inner *svc;       /* restart (pointer) */
};

static const struct bcn_cfg_field rs_inner_fields[] = {
	BCN_ROW_STR(struct rs_inner, a, "a", "", 0, "a"),
	BCN_ROW_INT(struct rs_inner, b, "b", "0", 0, 100, 0, "b"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field rs_sock_fields[] = {
	BCN_ROW_STR(struct rs_inner, a, "a", "", BCN_CFG_RESTART, "a"),
	BCN_ROW_INT(struct rs_inner, b, "b", "0", 0, 100, 0, "b"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field rs_fields[] = {
	BCN_ROW_STR(struct rs_conf, addr, "addr", "x", BCN_CFG_RESTART, "address"),
	BCN_ROW_DURATION(struct rs_conf, timeout_ms, "timeout", "5s", BCN_MS(100), BCN_MIN(10), BCN_CFG_RESTART,
			 "timeout"),
	BCN_ROW_STRLIST(struct rs_conf, watch, "watch", NULL, 0, "live list"),
	BCN_ROW_OBJECT(struct rs_conf, tls, "tls", rs_inner_fields, BCN_CFG_RESTART, "tls"),
	BCN_ROW_OBJECT(struct rs_conf, sock, "sock", rs_sock_fields, 0, "socket"),
	BCN_ROW_OBJPTR(struct rs_conf, svc, "svc", rs_inner_fields, struct rs_inner, BCN_CFG_RESTART, "service"),
	BCN_ROW_END,
};

static void rs_fill(struct rs_conf *c, const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(bcn_cfg_fill(rs_fields, j, c, "$", NULL), 0);
	json_decref(j);
}

START_TEST(test_unit_macros)
{
	ck_assert_int_eq(BCN_MS(500), 500);
	ck_assert_int_eq(BCN_S(10), 10000);
	ck_assert_int_eq(BCN_MIN(1), 60000);
	ck_assert_int_eq(BCN_H(1), 3600000);
	ck_assert_int_eq(BCN_DAYS(365), 31536000000LL);
}
END_TEST

START_TEST(test_keep_restart)
{
	struct rs_conf run, next;
	char changed[128];
	struct rs_inner *svc;
	char *addr;

	rs_fill(&run, "{\"addr\": \"a1\", \"watch\": [\"w1\"], \"tls\": {\"a\": \"t1\"},"
		      " \"sock\": {\"a\": \"s1\", \"b\": 1}, \"svc\": {\"a\": \"v1\"}}");
	rs_fill(&next, "{\"addr\": \"a2\", \"watch\": [\"w2\"], \"tls\": {\"a\": \"t1\", \"b\": 2},"
		       " \"sock\": {\"a\": \"s2\", \"b\": 2}}");
	addr = run.addr;
	svc = run.svc;
	ck_assert_uint_eq(bcn_cfg_keep_restart(rs_fields, &run, &next, changed, sizeof(changed)), 4);
	ck_assert_str_eq(changed, "addr, tls, sock.a, svc");
	/* next runs on: restart-only keys moved over (the same pointers), live ones are new. */
	ck_assert_ptr_eq(next.addr, addr);
	ck_assert_ptr_eq(next.svc, svc);
	ck_assert_str_eq(next.svc->a, "v1");
	ck_assert_str_eq(next.tls.a, "t1");
	ck_assert_int_eq(next.tls.b, 0);
	ck_assert_str_eq(next.sock.a, "s1");
	ck_assert_int_eq(next.sock.b, 2);
	ck_assert_str_eq(next.watch.v[0], "w2");
	ck_assert_uint_eq(next.timeout_ms, 5000);
	/* run holds the new values, to be freed. */
	ck_assert_str_eq(run.addr, "a2");
	ck_assert_ptr_null(run.svc);
	/* The same config twice: nothing to say. */
	ck_assert_uint_eq(bcn_cfg_keep_restart(rs_fields, &next, &next, changed, sizeof(changed)), 0);
	ck_assert_str_eq(changed, "");
	bcn_cfg_free(rs_fields, &run);
	bcn_cfg_free(rs_fields, &next);
}
END_TEST

static Suite *cfgmap_suite(void)
{
	Suite *s = suite_create("cfgmap");
	TCase *fill = tcase_create("fill");
	TCase *errors = tcase_create("errors");
	TCase *env = tcase_create("expand_env");
	TCase *dur = tcase_create("duration");
	TCase *load = tcase_create("load_file");

	tcase_add_test(fill, test_defaults);
	tcase_add_test(fill, test_defaults_use_env);
	tcase_add_test(fill, test_every_type);
	tcase_add_test(fill, test_env_everywhere);
	tcase_add_test(fill, test_fill_null_object);
	tcase_add_test(fill, test_fill_custom_path_and_appends);
	tcase_add_test(fill, test_free_after_partial_failure);
	tcase_add_test(fill, test_unit_macros);
	tcase_add_test(fill, test_keep_restart);
	suite_add_tcase(s, fill);

	tcase_add_loop_test(errors, test_single_error, 0,
			    (int)(sizeof(single_cases) / sizeof(single_cases[0])));
	tcase_add_test(errors, test_many_errors_one_pass);
	tcase_add_test(errors, test_bad_table_defaults);
	tcase_add_test(errors, test_warnings_apart);
	suite_add_tcase(s, errors);

	tcase_add_loop_test(env, test_expand_ok, 0, (int)(sizeof(expand_ok) / sizeof(expand_ok[0])));
	tcase_add_loop_test(env, test_expand_bad, 0,
			    (int)(sizeof(expand_bad) / sizeof(expand_bad[0])));
	suite_add_tcase(s, env);

	tcase_add_loop_test(dur, test_duration_ok, 0,
			    (int)(sizeof(duration_ok) / sizeof(duration_ok[0])));
	tcase_add_loop_test(dur, test_duration_bad, 0,
			    (int)(sizeof(duration_bad) / sizeof(duration_bad[0])));
	tcase_add_loop_test(dur, test_duration_format, 0,
			    (int)(sizeof(duration_fmt) / sizeof(duration_fmt[0])));
	tcase_add_test(dur, test_duration_round_trip);
	suite_add_tcase(s, dur);

	/* Checked fixture: runs in each test's own process, so a failure cleans up too. */
	tcase_add_checked_fixture(load, make_tmpdir, remove_tmpdir);
	tcase_add_test(load, test_load_ok);
	tcase_add_test(load, test_load_syntax_errors);
	tcase_add_test(load, test_load_not_an_object);
	tcase_add_test(load, test_load_cannot_open);
	suite_add_tcase(s, load);
	return s;
}

BCN_TEST_MAIN(cfgmap_suite)
