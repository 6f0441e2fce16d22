/*
 * render_cmd.c - `beacon render TEMPLATE [--data FILE] [--escape E]`: render
 * a template once to stdout, to try it out.
 *
 * With --data the JSON file is the root context and no agent is needed.
 * Without it the data model (SPEC.md "Templates") is fetched from the
 * running agent over its socket, name by name, through the same routes a
 * user would call (/v1/endpoints, /v1/kv, /v1/secrets, /v1/self): only what
 * the template names, with the caller's own rights (a secret the caller may
 * not read is an error, as with `beacon secret`). It lives here rather than
 * in cli/ because it needs the engine (cli/ stands on base/ only); it uses
 * cli/'s one request function, which sits lower. main.c dispatches to it.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/render_cmd.h"
#include "template/files.h"
#include "cli/cli.h"
#include "base/timing.h"
#include "base/zalloc.h"

struct fetch {
	const char *sock;
	json_t *data;
	int rc;              /* 0, or the exit code of the first failure */
	bool self_done, services_done;
};

/* GET path; 0 and *body on 200, 1 (a sentence printed) otherwise; 404 is
 * "absent" when absent_ok (*body NULL). */
static int get(struct fetch *f, const char *path, bool absent_ok, json_t **body)
{
	long st = bcn_cli_call(f->sock, "GET", path, body);

	if (st == 200)
		return 0;
	if (st == 404 && absent_ok) {
		json_decref(*body);
		*body = NULL;
		return 0;
	}
	if (st > 0) {
		const char *msg = json_string_value(json_object_get(*body, "error"));
		fprintf(stderr, "beacon: %s: %s\n", path, msg ? msg : "the agent answered with an error");
	}
	json_decref(*body);
	*body = NULL;
	return 1;
}

static json_t *child(json_t *o, const char *key)
{
	json_t *c = json_object_get(o, key);

	if (!c) {
		c = json_object();
		json_object_set_new(o, key, c);
	}
	return c;
}

static char *path_of(const char *route, const char *arg, size_t len)
{
	char *name = strndup(arg, len), *esc, *p = NULL;

	/* KV keys keep their slashes (/v1/kv/config/web/color). */
	esc = name ? (strcmp(route, "kv") == 0 ? strdup(name) : curl_easy_escape(NULL, name, 0)) : NULL;
	if (esc && asprintf(&p, "/v1/%s/%s", route, esc) < 0)
		p = NULL;
	if (esc && strcmp(route, "kv") == 0)
		free(esc);
	else
		curl_free(esc);
	free(name);
	return p;
}

static void add_name(void *arg, const char *name)
{
	struct fetch *f = arg;
	const char *a;
	size_t alen;
	json_t *body = NULL;
	char *path = NULL, *key;

	if (f->rc)
		return;
	switch (bcn_tmpl_ref(name, &a, &alen)) {
	case BCN_REF_NODE: case BCN_REF_SELF:
		if (f->self_done)
			return;
		f->self_done = true;
		if ((f->rc = get(f, "/v1/self", false, &body)))
			return;
		json_object_set(f->data, "node", json_object_get(body, "node"));
		json_t *svc = json_object_get(body, "service");
		if (json_is_object(svc)) {
			json_t *self = json_deep_copy(svc);
			json_object_set(self, "service", json_object_get(svc, "name"));
			json_object_del(self, "name");
			json_object_del(self, "check");
			json_object_del(self, "drained");
			json_object_set_new(f->data, "self", self);
		}
		break;
	case BCN_REF_SERVICES: {
		json_t *list = json_array(), *v;
		const char *sname;
		if (f->services_done)
			return;
		f->services_done = true;
		if ((f->rc = get(f, "/v1/services", false, &body)))
			return;
		json_object_foreach(json_object_get(body, "services"), sname, v) {
			json_t *eps = NULL;
			path = path_of("endpoints", sname, strlen(sname));
			if (!path || (f->rc = get(f, path, true, &eps)))
				break;
			free(path);
			path = NULL;
			json_array_append_new(list, json_pack("{sssO}", "name", sname, "endpoints",
				eps ? json_object_get(eps, "endpoints") : json_array()));
			json_decref(eps);
		}
		json_object_set_new(f->data, "services", list);
		break;
	}
	case BCN_REF_SERVICE:
		path = path_of("endpoints", a, alen);
		if (!path || (f->rc = get(f, path, true, &body)))
			break;
		key = strndup(a, alen);
		json_object_set(child(f->data, "service"), key,
				body ? json_object_get(body, "endpoints") : json_array());
		free(key);
		break;
	case BCN_REF_KEY:
		path = path_of("kv", a, alen);
		if (!path || (f->rc = get(f, path, true, &body)) || !body)
			break;
		key = strndup(a, alen);
		json_object_set(child(f->data, "key"), key, json_object_get(body, "value"));
		free(key);
		break;
	case BCN_REF_SECRET:
		path = path_of("secrets", a, alen);
		if (!path || (f->rc = get(f, path, false, &body)))
			break;
		key = strndup(a, alen);
		json_object_set(child(f->data, "secret"), key, json_object_get(body, "data"));
		free(key);
		break;
	case BCN_REF_NONE:
		break;
	}
	free(path);
	json_decref(body);
}

int bcn_render_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "escape", required_argument, NULL, 'e' },
		{ "socket", required_argument, NULL, 's' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *data_file = NULL, *sock = getenv("BEACON_SOCKET");
	enum bcn_mst_escape esc = BCN_MST_ESC_NONE;
	struct bcn_mst_error err;
	struct bcn_mst_out out = { 0 };
	struct bcn_mst *t;
	json_error_t jerr;
	json_t *data = NULL;
	char msg[256];
	int c, rc = 1;
	long repeat = 0;
	uint64_t t0;

	if (!sock || !sock[0])
		sock = BCN_CLI_DEFAULT_SOCKET;
	/* getopt names argv[0] in its messages ("beacon render: unrecognized option"). */
	argv[0] = (char *)"beacon render";
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:e:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': data_file = optarg; break;
		case 's': sock = optarg; break;
		case 'r': /* for bench/bench_templates.py: render N times, time it */
			repeat = strtol(optarg, NULL, 10);
			if (repeat < 1 || repeat > 1000000)
				return bcn_cli_usage_error("render", "--repeat takes 1 to 1000000");
			break;
		case 'h': return bcn_cli_help("render");
		case 'e':
			if (!bcn_mst_escape_parse(optarg, &esc))
				return bcn_cli_usage_error("render", "--escape takes none, html or json");
			break;
		default: return bcn_cli_usage_error("render", NULL);
		}
	}
	if (optind + 1 != argc)
		return bcn_cli_usage_error("render", "render takes one TEMPLATE file");
	t = bcn_tmpl_parse_file(argv[optind], &err);
	if (!t) {
		if (err.line)
			fprintf(stderr, "beacon: %s:%u:%u: %s\n", err.file, err.line, err.col, err.msg);
		else
			fprintf(stderr, "beacon: %s\n", err.msg);
		return 2;
	}
	if (data_file) {
		data = json_load_file(data_file, JSON_DECODE_ANY, &jerr);
		if (!data) {
			fprintf(stderr, "beacon: %s:%d:%d: %s\n", data_file, jerr.line, jerr.column, jerr.text);
			rc = 2;
			goto out;
		}
	} else {
		struct fetch f = { .sock = sock, .data = json_object() };
		curl_global_init(CURL_GLOBAL_DEFAULT);
		bcn_mst_names(t, add_name, &f);
		curl_global_cleanup();
		data = f.data;
		if (f.rc)
			goto out;
	}
	t0 = bcn_now_us();
	for (long i = 0; i < (repeat ? repeat : 1); i++) {
		out.len = 0;
		if (bcn_mst_render(t, data, esc, &out, msg, sizeof(msg)) < 0) {
			fprintf(stderr, "beacon: %s: %s\n", argv[optind], msg);
			goto out;
		}
	}
	if (repeat)
		fprintf(stderr, "rendered %ld times in %.3f ms (%.3f ms each, %zu bytes)\n", repeat,
			(double)(bcn_now_us() - t0) / 1e3, (double)(bcn_now_us() - t0) / 1e3 / (double)repeat,
			out.len);
	rc = fwrite(out.p, 1, out.len, stdout) == out.len && fflush(stdout) == 0 ? 0 : 1;
out:
	bcn_mst_out_free(&out);
	json_decref(data);
	bcn_mst_free(t);
	return rc;
}
