/*
 * config.c - the config schema of SPEC.md, declared once in tables, and the
 * cross-field rules no table can express (exactly one check type, a service
 * needs a registry...). The sources' sections come from the caller (each
 * plugin's descriptor says which key it takes); each is read as raw JSON and
 * handed to its own table, so the same walk validates it with its JSON paths
 * and this file names no backend.
 */
#include "config/config.h"
#include "config/sections.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sodium.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define TLS struct bcn_tls_conf
const struct bcn_cfg_field bcn_tls_fields[] = {
	BCN_ROW_STR(TLS, ca_file, "ca_file", "", 0, "CA bundle to verify the server"),
	BCN_ROW_STR(TLS, cert_file, "cert_file", "", 0, "client certificate"),
	BCN_ROW_STR(TLS, key_file, "key_file", "", 0, "client key"),
	BCN_ROW_STR(TLS, server_name, "server_name", "", 0, "name for SNI and the certificate check"),
	BCN_ROW_BOOL(TLS, insecure_skip_verify, "insecure_skip_verify", "false", 0, "accept any certificate (testing only)"),
	BCN_ROW_END,
};
#undef TLS

/* A DNS name as a certificate holds it (or an IPv4 address): what curl puts in
 * SNI. A URL or host:port here is the likely mistake, so it is named. */
void bcn_tls_conf_check(const struct bcn_tls_conf *t, const char *path, struct bcn_cfg_errs *errs)
{
	const char *s = t->server_name, *label = s;
	char p[256];
	bool ok = strlen(s) <= 253;

	if (!s[0])
		return;
	for (const char *c = s; ok; c++) {
		if (*c == '.' || *c == '\0') {
			/* labels of 1 to 63 characters, neither starting nor ending with '-' */
			ok = c > label && c - label <= 63 && *label != '-' && c[-1] != '-';
			if (!*c)
				break;
			label = c + 1;
		} else {
			ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			     *c == '-' || *c == '_';
		}
	}
	if (ok)
		return;
	snprintf(p, sizeof(p), "%s.server_name", path);
	if (strstr(s, "://") || strchr(s, '/') || strchr(s, ':'))
		bcn_cfg_err(errs, p, "expected a host name such as \"vault.example.com\" (the name in the "
			    "server's certificate), not a URL or host:port");
	else
		bcn_cfg_err(errs, p, "expected a host name such as \"vault.example.com\" (the name in the "
			    "server's certificate): letters, digits, '-' and '_' in dot-separated labels");
}

void bcn_tls_warn_insecure(const char *log, bool insecure_skip_verify)
{
	if (insecure_skip_verify)
		bcn_warn(log, "tls.insecure_skip_verify is set: the server's certificate is not checked, so "
			 "anyone on the network path can pose as the server and read what beacon sends it, "
			 "tokens included; use it only for testing");
}

char *bcn_read_secret_file(const char *path, char *err, size_t errlen)
{
	enum { MAX_SECRET = 64 * 1024 };
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	/* sodium_malloc needs sodium_init (idempotent) for its page size. */
	buf = sodium_init() < 0 ? NULL : sodium_malloc(MAX_SECRET + 1);
	if (!buf) {
		snprintf(err, errlen, "cannot allocate guarded memory for %s", path);
		close(fd);
		return NULL;
	}
	while (len < MAX_SECRET && (n = read(fd, buf + len, MAX_SECRET - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	if (len == MAX_SECRET) {
		snprintf(err, errlen, "%s is larger than %d bytes", path, MAX_SECRET);
		goto fail;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (len == 0) {
		snprintf(err, errlen, "%s is empty", path);
		sodium_free(buf);
		return NULL;
	}
	return buf;
fail:
	close(fd);
	sodium_free(buf);
	return NULL;
}

#define CHECK_TIMEOUT_MS ((uint64_t)BCN_S(2)) /* service.check.timeout when absent, unless the interval is shorter */

static const struct bcn_cfg_field check_fields[] = {
	BCN_ROW_STR(struct bcn_check_conf, http, "http", NULL, 0, "URL polled; 2xx passing, 429 warning"),
	BCN_ROW_STR(struct bcn_check_conf, tcp, "tcp", NULL, 0, "host:port that must accept a connection"),
	BCN_ROW_STRLIST(struct bcn_check_conf, exec, "exec", NULL, 0, "argv; exit 0 passing, 1 warning"),
	BCN_ROW_DURATION(struct bcn_check_conf, interval_ms, "interval", "10s", BCN_MS(100), BCN_DAYS(1), 0,
			 "time between checks"),
	/* No table default: absent means the smaller of 2s and the interval (check_service). */
	BCN_ROW_DURATION(struct bcn_check_conf, timeout_ms, "timeout", NULL, BCN_MS(10), BCN_H(1), 0,
			 "limit for one check"),
	BCN_ROW_INT(struct bcn_check_conf, rise, "rise", "1", 1, 100, 0, "successes before passing"),
	BCN_ROW_INT(struct bcn_check_conf, fall, "fall", "1", 1, 100, 0, "failures before critical"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field service_fields[] = {
	BCN_ROW_STR(struct bcn_service_conf, name, "name", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, "service name"),
	BCN_ROW_STR(struct bcn_service_conf, id, "id", NULL, 0, "instance id, default <name>-<node>"),
	BCN_ROW_STR(struct bcn_service_conf, address, "address", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY,
		    "address other services use"),
	BCN_ROW_INT(struct bcn_service_conf, port, "port", NULL, 1, 65535, BCN_CFG_REQUIRED, "port other services use"),
	BCN_ROW_STRLIST(struct bcn_service_conf, tags, "tags", NULL, 0, "tags"),
	BCN_ROW_STRMAP(struct bcn_service_conf, meta, "meta", 0, "string metadata"),
	BCN_ROW_INT(struct bcn_service_conf, weight, "weight", "1", 1, 65535, 0, "weight for weighted picks"),
	BCN_ROW_OBJPTR(struct bcn_service_conf, check, "check", check_fields, struct bcn_check_conf, 0,
		       "health check of the app"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field socket_fields[] = {
	/* The listening socket is made once; its limits below change live. */
	BCN_ROW_STR(struct bcn_socket_conf, path, "path", "/run/beacon/beacon.sock", BCN_CFG_NONEMPTY | BCN_CFG_RESTART,
		    "Unix socket path"),
	BCN_ROW_MODE(struct bcn_socket_conf, mode, "mode", "0660", BCN_CFG_RESTART, "socket file permissions"),
	BCN_ROW_STR(struct bcn_socket_conf, group, "group", "", BCN_CFG_RESTART, "socket file group"),
	BCN_ROW_INT(struct bcn_socket_conf, max_connections, "max_connections", "1024", 1, 1000000, 0,
		    "open connections at most"),
	BCN_ROW_INT(struct bcn_socket_conf, max_header_size, "max_header_size", "8192", 512, 1048576, 0,
		    "request line + headers, bytes"),
	BCN_ROW_INT(struct bcn_socket_conf, max_body_size, "max_body_size", "65536", 0, 16777216, 0,
		    "request body, bytes"),
	BCN_ROW_DURATION(struct bcn_socket_conf, timeout_ms, "timeout", "30s", BCN_S(1), BCN_H(1), 0,
			 "idle, read and write timeout"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field http_fields[] = {
	BCN_ROW_STR(struct bcn_http_conf, listen, "listen", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY,
		    "host:port for /health, /ready, /metrics"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field log_fields[] = {
	BCN_ROW_STR(struct bcn_log_conf, level, "level", "info", 0, "debug, info, warn, error"),
	BCN_ROW_STR(struct bcn_log_conf, format, "format", "text", 0, "text or json"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field watch_fields[] = {
	BCN_ROW_STRLIST(struct bcn_watch_conf, services, "services", NULL, 0, "services to discover"),
	BCN_ROW_STRLIST(struct bcn_watch_conf, kv, "kv", NULL, 0, "key prefixes to watch"),
	BCN_ROW_END,
};

/* The DNS interface: the socket is bound once (port 53 may need a
 * capability the agent no longer has after a reload). */
static const struct bcn_cfg_field dns_fields[] = {
	BCN_ROW_STR(struct bcn_dns_conf, listen, "listen", "127.0.0.1:8600", BCN_CFG_NONEMPTY | BCN_CFG_RESTART,
		    "host:port for UDP and TCP"),
	BCN_ROW_STR(struct bcn_dns_conf, domain, "domain", "beacon.", BCN_CFG_NONEMPTY, "the zone beacon answers for"),
	BCN_ROW_DURATION(struct bcn_dns_conf, ttl_ms, "ttl", "0s", 0, BCN_DAYS(1), 0,
			 "TTL of answers and of negative answers (SOA minimum)"),
	BCN_ROW_INT(struct bcn_dns_conf, udp_answer_limit, "udp_answer_limit", "0", 0, 65535, 0,
		    "answer records in a UDP answer at most, 0 = as many as fit"),
	BCN_ROW_INT(struct bcn_dns_conf, max_connections, "max_connections", "256", 1, 100000, 0,
		    "open TCP connections at most"),
	BCN_ROW_DURATION(struct bcn_dns_conf, idle_timeout_ms, "idle_timeout", "10s", BCN_MS(100), BCN_H(1), 0,
			 "a TCP connection without a query is closed after this"),
	BCN_ROW_END,
};

#define PX struct bcn_proxy_conf
static const struct bcn_cfg_field proxy_outlier_fields[] = {
	BCN_ROW_INT(struct bcn_proxy_outlier_conf, consecutive_failures, "consecutive_failures", "5", 1, 1000, 0,
		    "connect failures in a row that eject an endpoint"),
	BCN_ROW_DURATION(struct bcn_proxy_outlier_conf, ejection_ms, "ejection", "30s", BCN_MS(100), BCN_H(1), 0,
			 "how long an ejected endpoint gets no new connections"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field proxy_fields[] = {
	BCN_ROW_STR(PX, listen, "listen", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, "\"host:port\" or \"unix:/path\""),
	BCN_ROW_STR(PX, service, "service", NULL, BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, "service relayed to"),
	BCN_ROW_STR(PX, tag, "tag", "", 0, "only endpoints with this tag"),
	BCN_ROW_STR(PX, policy, "policy", "round_robin", 0, "round_robin, least_conn, random, weighted, hash"),
	BCN_ROW_DURATION(PX, connect_timeout_ms, "connect_timeout", "2s", BCN_MS(10), BCN_MIN(5), 0,
			 "limit for one connect to an endpoint"),
	BCN_ROW_INT(PX, retries, "retries", "2", 0, 16, 0, "further endpoints tried after a failed connect"),
	BCN_ROW_DURATION(PX, idle_timeout_ms, "idle_timeout", "1h", BCN_MS(100), BCN_DAYS(7), 0,
			 "a connection with no byte either way for this long is closed"),
	BCN_ROW_INT(PX, max_connections, "max_connections", "10000", 1, 1000000, 0,
		    "relayed connections at most; more are closed at once"),
	BCN_ROW_OBJECT(PX, outlier, "outlier", proxy_outlier_fields, 0, "outlier ejection"),
	BCN_ROW_END,
};
#undef PX
/* templates and exec (issue 12): the tables only; template/ checks what
 * needs the engine (syntax, names, secrets) in bcn_templates_prepare. */
static const struct bcn_cfg_field template_wait_fields[] = {
	BCN_ROW_DURATION(struct bcn_template_wait, min_ms, "min", "0s", 0, BCN_H(1), 0,
			 "quiet time after the last change before rendering"),
	BCN_ROW_DURATION(struct bcn_template_wait, max_ms, "max", "0s", 0, BCN_H(1), 0,
			 "render at the latest this long after the first change"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field template_fields[] = {
	BCN_ROW_STR(struct bcn_template_conf, source, "source", NULL, 0, "template file (partials beside it)"),
	BCN_ROW_STR(struct bcn_template_conf, contents, "contents", NULL, 0, "the template itself"),
	BCN_ROW_STR(struct bcn_template_conf, destination, "destination", NULL,
		    BCN_CFG_REQUIRED | BCN_CFG_NONEMPTY, "file to write"),
	BCN_ROW_MODE(struct bcn_template_conf, perms, "perms", NULL, 0,
		     "file mode (default 0644, 0600 with a secret)"),
	BCN_ROW_STR(struct bcn_template_conf, user, "user", "", 0, "owner of the file"),
	BCN_ROW_STR(struct bcn_template_conf, group, "group", "", 0, "group of the file"),
	BCN_ROW_OBJECT(struct bcn_template_conf, wait, "wait", template_wait_fields, 0, "quiescence"),
	BCN_ROW_STRLIST(struct bcn_template_conf, command, "command", NULL, 0, "argv run after a change"),
	BCN_ROW_DURATION(struct bcn_template_conf, command_timeout_ms, "command_timeout", "30s", BCN_MS(10),
			 BCN_H(1), 0, "the command is killed after this"),
	BCN_ROW_STR(struct bcn_template_conf, signal, "signal", "", 0, "signal sent after a change"),
	BCN_ROW_STR(struct bcn_template_conf, pid_file, "pid_file", "", 0, "process the signal goes to"),
	BCN_ROW_STR(struct bcn_template_conf, escape, "escape", "none", 0, "none, html or json"),
	BCN_ROW_END,
};

static const struct bcn_cfg_field exec_fields[] = {
	BCN_ROW_STRLIST(struct bcn_exec_conf, command, "command", NULL, 0, "the app's argv"),
	BCN_ROW_JSON(struct bcn_exec_conf, env, "env", 0, "environment variables (values are templates)"),
	BCN_ROW_BOOL(struct bcn_exec_conf, restart_on_change, "restart_on_change", "true", 0,
		     "restart the app when its environment changes"),
	BCN_ROW_STR(struct bcn_exec_conf, kill_signal, "kill_signal", "SIGTERM", 0, "how the app is stopped"),
	BCN_ROW_DURATION(struct bcn_exec_conf, kill_timeout_ms, "kill_timeout", "10s", BCN_MS(10), BCN_H(1), 0,
			 "SIGKILL after this"),
	BCN_ROW_STR(struct bcn_exec_conf, escape, "escape", "none", 0, "none, html or json"),
	BCN_ROW_END,
};

/* The core's top-level keys; each section's key gets a raw JSON row after
 * these (top_table), handed to the section's own table later. */
static const struct bcn_cfg_field base_fields[] = {
	BCN_ROW_STR(struct bcn_config, node, "node", NULL, 0, "node name, default the host name"),
	BCN_ROW_OBJECT(struct bcn_config, socket, "socket", socket_fields, 0, "local API socket"),
	BCN_ROW_OBJPTR(struct bcn_config, http, "http", http_fields, struct bcn_http_conf, BCN_CFG_RESTART,
		       "optional TCP listener"),
	BCN_ROW_OBJECT(struct bcn_config, log, "log", log_fields, 0, "logging"),
	/* The running registration and health check keep the service section
	 * they started with: registries publish it under a key that must not
	 * change under them. */
	BCN_ROW_OBJPTR(struct bcn_config, service, "service", service_fields, struct bcn_service_conf,
		       BCN_CFG_RESTART, "this app"),
	BCN_ROW_OBJECT(struct bcn_config, watch, "watch", watch_fields, 0, "what to discover"),
	BCN_ROW_OBJPTR(struct bcn_config, dns, "dns", dns_fields, struct bcn_dns_conf, 0, "the DNS interface"),
	BCN_ROW_OBJLIST(struct bcn_config, proxies, "proxies", proxy_fields, struct bcn_proxy_conf, 0,
			"local TCP proxies, one per upstream service"),
	BCN_ROW_OBJLIST(struct bcn_config, templates, "templates", template_fields, struct bcn_template_conf, 0,
			"files rendered from templates"),
	/* The child runs once; a changed exec section needs a restart. */
	BCN_ROW_OBJPTR(struct bcn_config, exec, "exec", exec_fields, struct bcn_exec_conf, BCN_CFG_RESTART,
		       "run the app as a child"),
	BCN_ROW_END,
};
#define NBASE_FIELDS (sizeof(base_fields) / sizeof(base_fields[0]) - 1)

size_t bcn_config_keep_restart(struct bcn_config *running, struct bcn_config *next, char *changed,
				size_t len)
{
	/* gid is derived from group, which the table swaps. */
	gid_t gid = running->socket.gid;
	size_t n = bcn_cfg_keep_restart(base_fields, running, next, changed, len);

	running->socket.gid = next->socket.gid;
	next->socket.gid = gid;
	return n;
}

void bcn_instance_conf_free(const struct bcn_cfg_field *fields, void *conf)
{
	if (!conf)
		return;
	bcn_cfg_free(fields, conf);
	free(conf);
}

static void check_listen(const char *addr, const char *path, struct bcn_cfg_errs *errs)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	long port;

	if (!colon || colon == addr) {
		bcn_cfg_err(errs, path, "expected \"host:port\", got \"%.40s\"", addr);
		return;
	}
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535 || end == colon + 1)
		bcn_cfg_err(errs, path, "invalid port in \"%.40s\"", addr);
}

/* Fields that failed conversion may be NULL: treat them as empty here (their
 * problem is already recorded) so every other rule is still checked. */
static const char *str(const char *s)
{
	return s ? s : "";
}

static void check_service(struct bcn_config *c, const char *need, bool have_registry,
			  struct bcn_cfg_errs *errs)
{
	struct bcn_service_conf *sv = c->service;
	struct bcn_check_conf *k = sv->check;

	if (!str(sv->id)[0] && str(sv->name)[0]) {
		size_t len = strlen(sv->name) + strlen(str(c->node)) + 2;
		free(sv->id);
		sv->id = malloc(len);
		if (sv->id)
			snprintf(sv->id, len, "%s-%s", sv->name, str(c->node));
	}
	if (!have_registry)
		bcn_cfg_err(errs, "$.service", "a service to register needs a \"%s\"", need);
	/* Both become one level of a registry key (<prefix>/<name>/<id>). */
	if (strchr(str(sv->name), '/'))
		bcn_cfg_err(errs, "$.service.name", "must not contain \"/\"");
	if (strchr(str(sv->id), '/'))
		bcn_cfg_err(errs, "$.service.id", "must not contain \"/\"");
	if (!k)
		return;
	int kinds = (str(k->http)[0] != 0) + (str(k->tcp)[0] != 0) + (k->exec.n != 0);
	if (kinds != 1)
		bcn_cfg_err(errs, "$.service.check", "give exactly one of \"http\", \"tcp\" or \"exec\"");
	/* A default must never make a valid config invalid: "interval": "300ms"
	 * alone gets a 300ms timeout. An explicit timeout is never below 10ms, so
	 * 0 means absent (or unconvertible, already reported). */
	if (k->timeout_ms == 0)
		k->timeout_ms = k->interval_ms && k->interval_ms < CHECK_TIMEOUT_MS ? k->interval_ms
										 : CHECK_TIMEOUT_MS;
	else if (k->timeout_ms > k->interval_ms && k->interval_ms)
		bcn_cfg_err(errs, "$.service.check.timeout", "must not be longer than the interval");
	if (str(k->http)[0] && strncmp(k->http, "http://", 7) && strncmp(k->http, "https://", 8))
		bcn_cfg_err(errs, "$.service.check.http", "expected an http:// or https:// URL");
	if (str(k->tcp)[0])
		check_listen(k->tcp, "$.service.check.tcp", errs);
}

static void check_socket(struct bcn_config *c, struct bcn_cfg_errs *errs)
{
	c->socket.gid = (gid_t)-1;
	if (strlen(str(c->socket.path)) >= 108)
		bcn_cfg_err(errs, "$.socket.path", "too long for a Unix socket (at most 107 bytes)");
	if (str(c->socket.group)[0]) {
		/* A name first (as chown(1) does), else a number: only digits, and
		 * within gid_t without (gid_t)-1, which chown reads as "unchanged";
		 * strtol alone would take " 5", "+5" and wrap 4294967297 to 1. */
		const char *grp = c->socket.group;
		struct group *g = getgrnam(grp);
		bool digits = grp[strspn(grp, "0123456789")] == '\0';
		unsigned long long gid;
		errno = 0;
		gid = digits ? strtoull(grp, NULL, 10) : 0;
		if (g)
			c->socket.gid = g->gr_gid;
		else if (digits && (errno == ERANGE || gid >= (gid_t)-1))
			bcn_cfg_err(errs, "$.socket.group", "group id %.40s is out of range (0 to %u)", grp,
				    (unsigned)(gid_t)-1 - 1);
		else if (digits)
			c->socket.gid = (gid_t)gid;
		else
			bcn_cfg_err(errs, "$.socket.group", "no such group \"%.40s\" (a group name, or a group id of digits only)",
				    grp);
	}
	if (c->socket.mode & 0111)
		bcn_cfg_err(errs, "$.socket.mode", "a socket needs no execute bits (use e.g. \"0660\")");
}

/*
 * "config/api/" (as Consul users write it) and "/config/api/" are the same
 * prefix. Every plugin and the cache keep keys with a leading "/" (etcd's
 * form; Consul's plugin drops it on the wire), so add it here, once, and no
 * plugin ever sees the other form. An empty prefix is more likely an unset
 * ${VAR} than a wish to watch every key, so it stays an error.
 */
static void normalise_kv_prefix(char **prefix, size_t i, struct bcn_cfg_errs *errs)
{
	char path[48], *p;

	snprintf(path, sizeof(path), "$.watch.kv[%zu]", i);
	if (!*prefix || (*prefix)[0] == '/')
		return;
	if (!(*prefix)[0]) {
		bcn_cfg_err(errs, path, "an empty key prefix (use \"/\" to watch every key)");
		return;
	}
	if (asprintf(&p, "/%s", *prefix) < 0) {
		bcn_cfg_err(errs, path, "out of memory");
		return;
	}
	free(*prefix);
	*prefix = p;
}

/* The domain as the DNS code compares it: lower case, no trailing dot. */
static void check_dns(struct bcn_dns_conf *d, struct bcn_cfg_errs *errs)
{
	char *s = d->domain;
	size_t n = strlen(str(s)), label = 0;
	bool ok = n > 0 && n <= 254;

	check_listen(str(d->listen), "$.dns.listen", errs);
	if (ok && s[n - 1] == '.')
		s[--n] = '\0';
	for (size_t i = 0; ok && i <= n; i++) {
		char ch = i < n ? s[i] : '.';
		if (ch >= 'A' && ch <= 'Z')
			s[i] = (char)(ch - 'A' + 'a');
		if (ch == '.')
			ok = label > 0 && label <= 63, label = 0;
		else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			 ch == '-' || ch == '_')
			label++;
		else
			ok = false;
	}
	if (!ok)
		bcn_cfg_err(errs, "$.dns.domain", "expected a DNS name such as \"beacon.\" or "
			    "\"svc.example.com.\": letters, digits, '-' and '_' in dot-separated labels of 1 to 63");
}

static void check_rules(struct bcn_config *c, const struct bcn_cfg_section *sections,
			struct bcn_cfg_errs *errs)
{
	const char *need;
	bool have = bcn_sections_have_registry(c, sections, &need);

	if (c->log.level && bcn_log_level_parse(c->log.level, &c->log_level) < 0)
		bcn_cfg_err(errs, "$.log.level", "unknown level \"%.40s\" (use debug, info, warn or error)", c->log.level);
	if (c->log.format && bcn_log_format_parse(c->log.format, &c->log_format) < 0)
		bcn_cfg_err(errs, "$.log.format", "unknown format \"%.40s\" (use text or json)", c->log.format);
	if (c->http && str(c->http->listen)[0])
		check_listen(c->http->listen, "$.http.listen", errs);
	check_socket(c, errs);
	if (c->dns)
		check_dns(c->dns, errs);

	if (!str(c->node)[0]) {
		char host[HOST_NAME_MAX + 1] = "";
		gethostname(host, sizeof(host));
		free(c->node);
		c->node = strdup(host[0] ? host : "localhost");
	}

	bcn_sections_check(c, sections, errs);
	if (c->service)
		check_service(c, need, have, errs);
	if ((c->watch.services.n || c->watch.kv.n) && !have)
		bcn_cfg_err(errs, "$.watch", "watching services or keys needs a \"%s\"", need);
	for (size_t i = 0; i < c->watch.kv.n; i++)
		normalise_kv_prefix(&c->watch.kv.v[i], i, errs);
	bcn_config_check_proxies(c, have, errs);
}

struct bcn_config *bcn_config_load(const char *file, const struct bcn_cfg_section *sections,
				   struct bcn_cfg_errs *errs)
{
	struct bcn_cfg_field top[NBASE_FIELDS + BCN_CFG_MAX_SECTION_KEYS + 1]; /* see sections.h */
	struct bcn_config *c;
	json_t *root;
	size_t before = errs->n;

	root = bcn_cfg_load_file(file, errs);
	if (!root)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(root);
		bcn_cfg_err(errs, file, "out of memory");
		return NULL;
	}
	c->file = strdup(file);
	/* Every stage runs even after problems, so --check-config lists them all. */
	bcn_sections_top_table(c, sections, base_fields, top);
	bcn_cfg_fill(top, root, c, "$", errs);
	json_decref(root);
	check_rules(c, sections, errs);
	bcn_sections_build(c, sections, errs);
	if (errs->n != before) {
		bcn_config_free(c);
		return NULL;
	}
	return c;
}

void bcn_config_free(struct bcn_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->ninstances; i++)
		bcn_instance_conf_free(c->instances[i].section->fields, c->instances[i].conf);
	free(c->instances);
	bcn_cfg_free(base_fields, c);
	for (size_t i = 0; i < c->nsection_keys; i++)
		json_decref(c->section_json[i]);
	free(c->file);
	free(c);
}
