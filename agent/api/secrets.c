/*
 * secrets.c - GET /v1/secrets/{name} (SPEC "Local API").
 *
 * Kept apart from the other routes because it is the one route whose answer is secret:
 * the caller's identity is the kernel's (SO_PEERCRED on the Unix socket, the
 * TCP listener never routes here), it is checked before anything else is
 * revealed or parked, and the body goes from the store's guarded arena into
 * the request's output buffer in one copy (secrets/store.h says how that copy is
 * wiped). Refusals are logged with name, uid and pid, never with a value.
 * The secret store is the one in the API's context; a blocking read parks
 * on the secret's queue in the store's wait set.
 */
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "base/log.h"
#include "http/server.h"
#include "secrets/store.h"

static void set_headers(struct bcn_req *rc, uint64_t index, bool stale)
{
	bcn_api_set_index(rc, index, stale);
	/* Nothing between the app and us should keep a copy. */
	bcn_hreq_header(rc->req, "Cache-Control", "no-store");
}

static int error(struct bcn_req *rc, int code, uint64_t index, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int error(struct bcn_req *rc, int code, uint64_t index, const char *fmt, ...)
{
	char msg[400];
	json_t *o;
	char *s;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	n = bcn_utf8_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A name from the URL may hold any bytes: keep the body JSON. */
	o = json_pack("{so}", "error", bcn_json_text(msg, n));
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	evbuffer_add_printf(bcn_hreq_body(rc->req), "%s\n", s ? s : "{}");
	free(s);
	json_decref(o);
	set_headers(rc, index, false);
	return code;
}

/* The answer's status; 0 when the request was parked instead. */
static int answer(struct bcn_req *rc)
{
	struct bcn_secrets *store = rc->api->secrets;
	struct bcn_hreq *req = rc->req;
	const char *name = rc->name;
	struct bcn_secret *sec = bcn_secrets_find(store, name);
	uid_t uid = (uid_t)-1;
	pid_t pid = 0;
	uint64_t idx;

	if (!sec)
		return error(rc, 404, bcn_secrets_index(store),
			     "secret \"%.*s\" is not configured (see vault.secrets)",
			     (int)bcn_utf8_cut(name, strlen(name), 100), name);
	idx = bcn_secret_index(sec);
	if (bcn_hreq_peer(req, &uid, &pid) < 0) {
		bcn_warn("api", "refused secret %s: the caller's uid is unknown (not a Unix socket peer)",
			 bcn_secret_name(sec));
		return error(rc, 403, idx, "the caller's identity is unknown");
	}
	if (!bcn_secret_allows(sec, uid)) {
		bcn_warn("api", "refused secret %s to uid %u (pid %ld): not in its allow_uids",
			 bcn_secret_name(sec), (unsigned)uid, (long)pid);
		return error(rc, 403, idx, "uid %u may not read secret \"%s\" (see its allow_uids)",
			     (unsigned)uid, bcn_secret_name(sec));
	}
	if (bcn_api_should_park(rc, idx)) {
		bcn_api_park(rc, bcn_secrets_waits(store), BCN_SECRETS_Q, name);
		return 0;
	}
	if (!bcn_secret_loaded(sec)) {
		if (bcn_secret_ended(sec))
			return error(rc, 503, idx, "secret \"%s\" is unavailable: its lease ended and Vault "
				     "could not be reached to renew it", bcn_secret_name(sec));
		return error(rc, 503, idx, "secret \"%s\" has not been read from Vault yet",
			     bcn_secret_name(sec));
	}
	if (bcn_secret_render(sec, bcn_hreq_body(req)) < 0)
		return error(rc, 500, idx, "secret \"%s\" could not be rendered", bcn_secret_name(sec));
	set_headers(rc, idx, bcn_secret_stale(sec));
	return 200;
}

void bcn_api_secret(struct bcn_req *rc)
{
	int code = answer(rc);

	if (code)
		bcn_api_finish(rc, code);
}
