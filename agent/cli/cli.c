/*
 * cli.c - `beacon endpoints|pick|kv|secret|status|drain|resume`.
 *
 * Short-lived processes, so a plain blocking libcurl easy handle over the
 * Unix socket is the right tool here (the event loop rule is for the agent).
 * Exit codes per SPEC: 0 ok, 1 runtime failure (unreachable, not found),
 * 2 usage. Errors are one sentence on stderr.
 */
#include "cli/cli.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/beacon/beacon.sock"

/*
 * Text from the agent comes from registries and configs that anyone with
 * write access there may fill: printed raw, an id holding "\x1b[31m" or a
 * newline would drive the terminal or forge output lines. Control
 * characters are shown escaped: \n, \r, \t, \xNN for the rest of C0 and
 * DEL, \u00NN for C1 (U+0080..U+009F). A single value (`kv KEY`,
 * `secret --field`) is printed as stored into a pipe or file, and keeps its
 * newlines and tabs on a terminal. JSON output only needs DEL and C1
 * escaped (jansson escapes C0 itself), as \u00NN, which keeps it JSON.
 */
enum esc { ESC_TEXT, ESC_VALUE, ESC_JSON };

static size_t put_esc(FILE *f, const char *s, enum esc mode)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = 0;

	for (; *p; p++) {
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			n += (size_t)fprintf(f, "\\u%04x", p[1]);
			p++;
		} else if (p[0] == 0x7f && mode == ESC_JSON) {
			n += (size_t)fprintf(f, "\\u007f");
		} else if ((p[0] >= 0x20 && p[0] != 0x7f) || mode == ESC_JSON ||
			   (mode == ESC_VALUE && (p[0] == '\n' || p[0] == '\t'))) {
			putc(p[0], f);
			n++;
		} else if (p[0] == '\n' || p[0] == '\r' || p[0] == '\t') {
			n += (size_t)fprintf(f, "\\%c", p[0] == '\n' ? 'n' : p[0] == '\r' ? 'r' : 't');
		} else {
			n += (size_t)fprintf(f, "\\x%02x", p[0]);
		}
	}
	return n;
}

/* s escaped as text, for one printf argument: valid until 16 more calls, or
 * until shown_release() at exit. */
static char *shown_ring[16];
static unsigned shown_next;

static const char *shown(const char *s)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return "?";
	put_esc(f, s, ESC_TEXT);
	if (fclose(f) != 0 || !out)
		return "?";
	free(shown_ring[shown_next]);
	shown_ring[shown_next] = out;
	shown_next = (shown_next + 1) % 16;
	return out;
}

static void shown_release(void)
{
	for (size_t i = 0; i < 16; i++) {
		free(shown_ring[i]);
		shown_ring[i] = NULL;
	}
}

/* One value as the user asked for it, then a newline. */
static void put_value(const char *s)
{
	if (isatty(STDOUT_FILENO))
		put_esc(stdout, s, ESC_VALUE);
	else
		fputs(s ? s : "", stdout);
	putchar('\n');
}

static void put_json(const json_t *j, size_t flags)
{
	char *s = json_dumps(j, flags);
	put_esc(stdout, s ? s : "{}", ESC_JSON);
	putchar('\n');
	free(s);
}

struct buf {
	char *data;
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t add = size * n;
	char *d = realloc(b->data, b->len + add + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, p, add);
	b->len += add;
	d[b->len] = '\0';
	b->data = d;
	return add;
}

static bool is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/*
 * One request to the agent. Returns the HTTP status, or -1 when the agent
 * could not be reached (message printed). *body receives the parsed JSON.
 */
long bcn_cli_call(const char *sock, const char *method, const char *path, json_t **body)
{
	CURL *c = curl_easy_init();
	struct buf b = { NULL, 0 };
	char url[2048];
	long status = -1;
	CURLcode rc;

	*body = NULL;
	if (!c) {
		fprintf(stderr, "beacon: out of memory\n");
		return -1;
	}
	snprintf(url, sizeof(url), "http://beacon%s", path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		fprintf(stderr, "beacon: cannot reach the agent at %s: %s (is it running? use --socket or BEACON_SOCKET)\n",
			sock, curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (b.data)
			*body = json_loads(b.data, 0, NULL);
		if (!*body) {
			fprintf(stderr, "beacon: the agent sent an answer that is not JSON (HTTP %ld)\n", status);
			status = -1;
		}
	}
	free(b.data);
	curl_easy_cleanup(c);
	return status;
}

/* Print the agent's error sentence; map to exit code 1. */
static int fail(long status, json_t *body)
{
	const char *msg = json_string_value(json_object_get(body, "error"));
	if (status >= 0)
		fprintf(stderr, "beacon: %s\n", msg ? shown(msg) : "the agent answered with an error");
	json_decref(body);
	return 1;
}

static void print_hostport(const char *addr, json_int_t port)
{
	if (strchr(addr, ':'))
		printf("[%s]:%lld\n", shown(addr), (long long)port);
	else
		printf("%s:%lld\n", shown(addr), (long long)port);
}

static char *escape(const char *s)
{
	return curl_easy_escape(NULL, s, 0);
}

static int cmd_endpoints(const char *sock, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tag", required_argument, NULL, 't' }, { "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *tag = NULL;
	bool all = false, as_json = false;
	char path[1024], *svc, *etag = NULL;
	json_t *body, *eps, *e;
	size_t i;
	long st;
	int ch;

	while ((ch = getopt_long(argc, argv, "t:ajh", opts, NULL)) != -1) {
		if (ch == 't') tag = optarg;
		else if (ch == 'a') all = true;
		else if (ch == 'j') as_json = true;
		else if (ch == 'h') return bcn_cli_help("endpoints");
		else return bcn_cli_usage_error("endpoints", NULL);
	}
	if (optind != argc - 1)
		return bcn_cli_usage_error("endpoints", "endpoints takes one SERVICE");
	svc = escape(argv[optind]);
	if (tag)
		etag = escape(tag);
	snprintf(path, sizeof(path), "/v1/endpoints/%s?%s%s%s", svc, all ? "status=any&" : "",
		 tag ? "tag=" : "", tag ? etag : "");
	curl_free(svc);
	curl_free(etag);
	st = bcn_cli_call(sock, "GET", path, &body);
	if (st != 200)
		return fail(st, body);
	if (as_json) {
		put_json(body, JSON_INDENT(2));
		json_decref(body);
		return 0;
	}
	if (json_is_true(json_object_get(body, "stale")))
		fprintf(stderr, "beacon: the registry is unreachable; this is the last known state\n");
	eps = json_object_get(body, "endpoints");
	json_array_foreach(eps, i, e) {
		const char *addr = json_string_value(json_object_get(e, "address"));
		json_int_t port = json_integer_value(json_object_get(e, "port"));
		char hp[300];
		json_t *tags = json_object_get(e, "tags"), *t;
		size_t k;
		if (strchr(addr ? addr : "", ':'))
			snprintf(hp, sizeof(hp), "[%s]:%lld", shown(addr), (long long)port);
		else
			snprintf(hp, sizeof(hp), "%s:%lld", addr ? shown(addr) : "?", (long long)port);
		printf("%-24s %-9s %-24s", hp, shown(json_string_value(json_object_get(e, "status"))),
		       shown(json_string_value(json_object_get(e, "id"))));
		json_array_foreach(tags, k, t)
			printf("%s%s", k ? "," : " ", shown(json_string_value(t)));
		printf("\n");
	}
	json_decref(body);
	return 0;
}

static int cmd_pick(const char *sock, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' }, { "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *policy = NULL, *key = NULL;
	char path[1024], *svc, *epol = NULL, *ekey = NULL;
	json_t *body;
	long st;
	int ch;

	while ((ch = getopt_long(argc, argv, "p:k:h", opts, NULL)) != -1) {
		if (ch == 'p') policy = optarg;
		else if (ch == 'k') key = optarg;
		else if (ch == 'h') return bcn_cli_help("pick");
		else return bcn_cli_usage_error("pick", NULL);
	}
	if (optind != argc - 1)
		return bcn_cli_usage_error("pick", "pick takes one SERVICE");
	svc = escape(argv[optind]);
	if (policy)
		epol = escape(policy);
	if (key)
		ekey = escape(key);
	snprintf(path, sizeof(path), "/v1/pick/%s?%s%s%s%s%s", svc, policy ? "policy=" : "",
		 policy ? epol : "", policy && key ? "&" : "", key ? "key=" : "", key ? ekey : "");
	curl_free(svc);
	curl_free(epol);
	curl_free(ekey);
	st = bcn_cli_call(sock, "GET", path, &body);
	if (st != 200)
		return fail(st, body);
	print_hostport(json_string_value(json_object_get(body, "address")) ?: "?",
		       json_integer_value(json_object_get(body, "port")));
	json_decref(body);
	return 0;
}

static int cmd_kv(const char *sock, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recurse", no_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	bool recurse = false;
	char path[2048], *key;
	json_t *body, *e;
	size_t i;
	long st;
	int ch;

	while ((ch = getopt_long(argc, argv, "rh", opts, NULL)) != -1) {
		if (ch == 'r') recurse = true;
		else if (ch == 'h') return bcn_cli_help("kv");
		else return bcn_cli_usage_error("kv", NULL);
	}
	if (optind != argc - 1)
		return bcn_cli_usage_error("kv", "kv takes one KEY");
	key = argv[optind];
	while (*key == '/')
		key++;
	/* Keep '/' readable in the path; escape everything else of each segment. */
	size_t off = (size_t)snprintf(path, sizeof(path), "/v1/kv/");
	for (const char *seg = key; off < sizeof(path);) {
		size_t n = strcspn(seg, "/");
		char *esc = curl_easy_escape(NULL, seg, (int)n);
		off += (size_t)snprintf(path + off, sizeof(path) - off, "%s%s", esc ? esc : "",
					seg[n] ? "/" : "");
		curl_free(esc);
		if (!seg[n])
			break;
		seg += n + 1;
	}
	if (recurse && off < sizeof(path))
		snprintf(path + off, sizeof(path) - off, "?recurse");
	st = bcn_cli_call(sock, "GET", path, &body);
	if (st != 200)
		return fail(st, body);
	if (recurse) {
		json_array_foreach(json_object_get(body, "entries"), i, e)
			printf("%s=%s\n", shown(json_string_value(json_object_get(e, "key"))),
			       shown(json_string_value(json_object_get(e, "value"))));
	} else {
		put_value(json_string_value(json_object_get(body, "value")));
	}
	json_decref(body);
	return 0;
}

static int cmd_secret(const char *sock, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "field", required_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *field = NULL;
	char path[1024], *name;
	json_t *body, *data, *v;
	long st;
	int ch;

	while ((ch = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		if (ch == 'f') field = optarg;
		else if (ch == 'h') return bcn_cli_help("secret");
		else return bcn_cli_usage_error("secret", NULL);
	}
	if (optind != argc - 1)
		return bcn_cli_usage_error("secret", "secret takes one NAME");
	name = escape(argv[optind]);
	snprintf(path, sizeof(path), "/v1/secrets/%s", name);
	curl_free(name);
	st = bcn_cli_call(sock, "GET", path, &body);
	if (st != 200)
		return fail(st, body);
	data = json_object_get(body, "data");
	if (field) {
		v = json_object_get(data, field);
		if (!v) {
			fprintf(stderr, "beacon: secret %s has no field \"%s\"\n", argv[optind], field);
			json_decref(body);
			return 1;
		}
		if (json_is_string(v))
			put_value(json_string_value(v));
		else
			put_json(v, JSON_ENCODE_ANY);
	} else {
		put_json(data, JSON_INDENT(2));
	}
	json_decref(body);
	return 0;
}

static int cmd_status(const char *sock)
{
	json_t *body, *svc, *b;
	long st = bcn_cli_call(sock, "GET", "/v1/self", &body);
	size_t i;

	if (st != 200)
		return fail(st, body);
	printf("agent: %s, node %s, version %s, up %llds\n",
	       json_is_true(json_object_get(body, "ready")) ? "ready" : "not ready",
	       shown(json_string_value(json_object_get(body, "node"))),
	       shown(json_string_value(json_object_get(body, "version"))),
	       (long long)json_integer_value(json_object_get(body, "uptime_seconds")));
	if (!json_is_true(json_object_get(body, "ready")))
		printf("not ready: %s\n", shown(json_string_value(json_object_get(body, "not_ready_reason"))));
	svc = json_object_get(body, "service");
	if (json_is_object(svc))
		printf("service: %s id %s at %s:%lld%s\n", shown(json_string_value(json_object_get(svc, "name"))),
		       shown(json_string_value(json_object_get(svc, "id"))),
		       shown(json_string_value(json_object_get(svc, "address"))),
		       (long long)json_integer_value(json_object_get(svc, "port")),
		       json_is_true(json_object_get(svc, "drained")) ? ", drained" : "");
	else
		printf("service: none registered (no service section)\n");
	json_array_foreach(json_object_get(body, "backends"), i, b) {
		const char *err = json_string_value(json_object_get(b, "error"));
		printf("backend %s (%s): %s%s%s%s\n", shown(json_string_value(json_object_get(b, "name"))),
		       shown(json_string_value(json_object_get(b, "kind"))),
		       shown(json_string_value(json_object_get(b, "state"))),
		       json_is_true(json_object_get(b, "stale")) ? ", stale" : "",
		       err && err[0] ? ", last error: " : "", err && err[0] ? shown(err) : "");
	}
	printf("discovery: %lld services, index %lld\n",
	       (long long)json_integer_value(json_object_get(body, "services")),
	       (long long)json_integer_value(json_object_get(body, "index")));
	json_decref(body);
	return 0;
}

static int cmd_drain(const char *sock, bool drain)
{
	json_t *body;
	long st = bcn_cli_call(sock, "POST", drain ? "/v1/self/drain" : "/v1/self/resume", &body);
	if (st != 200)
		return fail(st, body);
	printf(drain ? "drained: this instance is out of discovery\n"
		     : "resumed: this instance is back in discovery\n");
	json_decref(body);
	return 0;
}

/* `beacon help [COMMAND]`, also written `--help` / `-h` in the command's place. */
static int help_cmd(int argc, char **argv)
{
	char msg[128];

	if (argc < 2)
		return bcn_cli_help(NULL);
	if (bcn_cli_has_usage(argv[1]))
		return bcn_cli_help(argv[1]);
	snprintf(msg, sizeof(msg), "no help for \"%.40s\": not a command", argv[1]);
	return bcn_cli_usage_error(NULL, msg);
}

/* status, drain and resume take no arguments but --help; -1 means run the command. */
static int no_arguments(const char *cmd, int argc, char **argv)
{
	char msg[128];

	if (argc == 1)
		return -1;
	if (argc == 2 && is_help(argv[1]))
		return bcn_cli_help(cmd);
	snprintf(msg, sizeof(msg), "%s takes no arguments (got \"%.40s\")", cmd, argv[1]);
	return bcn_cli_usage_error(cmd, msg);
}

int bcn_cli_main(int argc, char **argv)
{
	const char *sock = getenv("BEACON_SOCKET");
	const char *cmd;
	char prog[32];
	int rc;

	if (!sock || !sock[0])
		sock = DEFAULT_SOCKET;
	/* --socket may stand anywhere (the last one wins); take it out before
	 * the command's own options are parsed. */
	for (int i = 0; i < argc;) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			sock = argv[i + 1];
			memmove(&argv[i], &argv[i + 2], (size_t)(argc - i - 2) * sizeof(*argv));
			argc -= 2;
		} else if (strncmp(argv[i], "--socket=", 9) == 0) {
			sock = argv[i] + 9;
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof(*argv));
			argc -= 1;
		} else if (strcmp(argv[i], "--") == 0) {
			break;
		} else {
			i++;
		}
	}
	if (argc < 1)
		return bcn_cli_usage_error(NULL, "missing command");
	cmd = argv[0];
	if (is_help(cmd) || strcmp(cmd, "help") == 0)
		return help_cmd(argc, argv);
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "drain") == 0 || strcmp(cmd, "resume") == 0) {
		rc = no_arguments(cmd, argc, argv);
		if (rc >= 0)
			return rc;
	}
	/* getopt names argv[0] in its messages ("beacon pick: option requires an argument"). */
	snprintf(prog, sizeof(prog), "beacon %.20s", cmd);
	argv[0] = prog;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	optind = 1;
	if (strcmp(cmd, "endpoints") == 0)
		rc = cmd_endpoints(sock, argc, argv);
	else if (strcmp(cmd, "pick") == 0)
		rc = cmd_pick(sock, argc, argv);
	else if (strcmp(cmd, "kv") == 0)
		rc = cmd_kv(sock, argc, argv);
	else if (strcmp(cmd, "secret") == 0)
		rc = cmd_secret(sock, argc, argv);
	else if (strcmp(cmd, "status") == 0)
		rc = cmd_status(sock);
	else if (strcmp(cmd, "drain") == 0 || strcmp(cmd, "resume") == 0)
		rc = cmd_drain(sock, cmd[0] == 'd');
	else {
		char msg[128];
		snprintf(msg, sizeof(msg), "unknown command \"%.40s\"", cmd);
		rc = bcn_cli_usage_error(NULL, msg);
	}
	curl_global_cleanup();
	shown_release();
	return rc;
}
