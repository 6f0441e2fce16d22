/*
 * proxy_conf.c - the checks of the "proxies" section (SPEC "Local proxies")
 * that its table in config.c cannot express: the two listen forms, the policy
 * names, two proxies on one address. Kept apart from config.c so the proxy
 * issue's rules live in one small file; the policy names are spelled here
 * because config/ sits below store/ (pick.h) and may not include it.
 */
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const proxy_policies[] = {
	"round_robin", "least_conn", "random", "weighted", "hash",
};

static bool known_policy(const char *p)
{
	for (size_t i = 0; i < sizeof(proxy_policies) / sizeof(proxy_policies[0]); i++) {
		if (strcmp(p, proxy_policies[i]) == 0)
			return true;
	}
	return false;
}

/* "host:port" with a numeric port 1..65535 ("[::1]:9001" for IPv6), or
 * "unix:/absolute/path" short enough for sun_path. */
static void check_proxy_listen(const char *l, const char *path, struct bcn_cfg_errs *errs)
{
	const char *colon;
	char *end;
	long port;

	if (strncmp(l, "unix:", 5) == 0) {
		if (l[5] != '/')
			bcn_cfg_err(errs, path, "expected \"unix:/absolute/path\", got \"%.60s\"", l);
		else if (strlen(l + 5) >= 108)
			bcn_cfg_err(errs, path, "too long for a Unix socket (at most 107 bytes)");
		return;
	}
	colon = strrchr(l, ':');
	if (!colon || colon == l) {
		bcn_cfg_err(errs, path, "expected \"host:port\" or \"unix:/path\", got \"%.60s\"", l);
		return;
	}
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 1 || port > 65535)
		bcn_cfg_err(errs, path, "expected a port from 1 to 65535 in \"%.60s\"", l);
}

static void watch_service(struct bcn_config *c, const char *svc, const char *path,
			  struct bcn_cfg_errs *errs)
{
	char **v;

	if (bcn_strlist_has(&c->watch.services, svc))
		return;
	v = realloc(c->watch.services.v, (c->watch.services.n + 1) * sizeof(*v));
	if (v)
		c->watch.services.v = v;
	if (!v || !(v[c->watch.services.n] = strdup(svc))) {
		bcn_cfg_err(errs, path, "out of memory");
		return;
	}
	c->watch.services.n++;
}

void bcn_config_check_proxies(struct bcn_config *c, bool have_registry, struct bcn_cfg_errs *errs)
{
	struct bcn_proxy_conf *px = c->proxies.v;
	char path[64];

	for (size_t i = 0; i < c->proxies.n; i++) {
		struct bcn_proxy_conf *p = &px[i];
		/* Fields that failed conversion may be NULL: already reported. */
		if (p->listen && p->listen[0]) {
			snprintf(path, sizeof(path), "$.proxies[%zu].listen", i);
			check_proxy_listen(p->listen, path, errs);
			for (size_t j = 0; j < i; j++) {
				if (px[j].listen && strcmp(px[j].listen, p->listen) == 0)
					bcn_cfg_err(errs, path, "\"%.60s\" is already the listener of "
						    "proxies[%zu]", p->listen, j);
			}
		}
		if (p->policy && !known_policy(p->policy)) {
			snprintf(path, sizeof(path), "$.proxies[%zu].policy", i);
			bcn_cfg_err(errs, path, "unknown policy \"%.40s\" (use round_robin, least_conn, "
				    "random, weighted or hash)", p->policy);
		}
		/* A proxied service is discovered like a watched one; a static
		 * service needs no registry and is known without it. */
		if (have_registry && p->service && p->service[0]) {
			snprintf(path, sizeof(path), "$.proxies[%zu].service", i);
			watch_service(c, p->service, path, errs);
		}
	}
}
