/*
 * balance.c - which endpoint a proxy sends a new connection to: the
 * upstream table kept in line with the store, the policies, and outlier
 * ejection.
 *
 * round_robin, random, weighted and hash are store/pick.c's, so a proxy and
 * /v1/pick agree; least_conn is here because only the data path knows the
 * connection counts. Candidates are rebuilt per pick (O(n), no allocation
 * after the first): the passing endpoints minus the ejected ones and those
 * this connection already tried. Ejection is lazy: an ejected upstream
 * carries the time it may come back and no timer is needed.
 */
#include "proxy/proxy_internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "base/timing.h"

static const char *const policy_names[] = {
	"round_robin", "least_conn", "random", "weighted", "hash",
};

int px_policy_parse(const char *s, enum px_policy *out)
{
	for (unsigned i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++) {
		if (strcmp(s, policy_names[i]) == 0) {
			*out = (enum px_policy)i;
			return 0;
		}
	}
	return -1;
}

const char *px_policy_name(enum px_policy p)
{
	return policy_names[p];
}

bool px_ejected(const struct px_upstream *up, uint64_t now)
{
	return up->ejected_until_ms > now;
}

/* IP literals only: a name would need a resolver on the loop (not here yet). */
static void set_address(struct px_upstream *up)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&up->sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&up->sa;
	const char *a = up->ep->address;

	memset(&up->sa, 0, sizeof(up->sa));
	up->salen = 0;
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(up->ep->port);
		up->salen = sizeof(*s4);
	} else if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(up->ep->port);
		up->salen = sizeof(*s6);
	} else {
		char addr[80], id[80];
		bcn_log_printable(addr, sizeof(addr), a, strlen(a));
		bcn_log_printable(id, sizeof(id), up->ep->id, strlen(up->ep->id));
		bcn_warn("proxy", "%s: endpoint %s has address \"%s\", not an IP address; proxies "
			 "connect to IP addresses only, so it gets no connections",
			 up->p->listen, id, addr);
	}
}

static struct px_upstream *upstream_new(struct px_proxy *p, const struct bcn_endpoint *e)
{
	struct px_upstream *up = calloc(1, sizeof(*up));
	const char *err = NULL;
	struct bcn_endpoint_spec spec = {
		.id = e->id, .service = e->service, .address = e->address, .port = e->port,
		.weight = e->weight, .status = BCN_PASSING,
	};

	if (!up)
		return NULL;
	up->p = p;
	up->ep = bcn_endpoint_new(&spec, &err);
	if (!up->ep) {
		free(up);
		return NULL;
	}
	set_address(up);
	return up;
}

static bool same_target(const struct bcn_endpoint *a, const struct bcn_endpoint *b)
{
	return a->port == b->port && a->weight == b->weight && strcmp(a->address, b->address) == 0;
}

static void upstream_free(struct px_upstream *up)
{
	free(up->ep);
	free(up);
}

/* Remove ups[i] (order kept: the JSON lists them as discovered). */
static void drop_at(struct px_proxy *p, size_t i)
{
	upstream_free(p->ups[i]);
	memmove(&p->ups[i], &p->ups[i + 1], (p->nups - i - 1) * sizeof(p->ups[0]));
	p->nups--;
}

void px_upstream_release(struct px_upstream *up)
{
	struct px_proxy *p = up->p;

	if (up->listed || up->active)
		return;
	for (size_t i = 0; i < p->nups; i++) {
		if (p->ups[i] == up) {
			drop_at(p, i);
			return;
		}
	}
}

static int grow(struct px_proxy *p, size_t n)
{
	struct px_upstream **ups = realloc(p->ups, n * sizeof(*ups));
	struct px_upstream **cu;
	const struct bcn_endpoint **ce;

	if (!ups)
		return -1;
	p->ups = ups;
	if (!(cu = realloc(p->cand_up, n * sizeof(*cu))))
		return -1;
	p->cand_up = cu;
	if (!(ce = realloc(p->cand, n * sizeof(*ce))))
		return -1;
	p->cand = ce;
	return 0;
}

void px_sync(struct px_proxy *p)
{
	struct bcn_service *s = bcn_cache_find(p->ps->cache, p->service);
	const struct bcn_endpoint *const *eps = NULL;
	size_t n = 0;

	if (s)
		eps = bcn_service_passing(s, &n);
	for (size_t i = 0; i < p->nups; i++)
		p->ups[i]->listed = false;
	for (size_t k = 0; k < n; k++) {
		const struct bcn_endpoint *e = eps[k];
		struct px_upstream *found = NULL;

		if (p->tag[0] && !bcn_endpoint_has_tag(e, p->tag))
			continue;
		/* Matched by id; an endpoint that moved is a new upstream and
		 * the old one drains. Linear: a proxy's service is small. */
		for (size_t i = 0; i < p->nups && !found; i++) {
			struct px_upstream *up = p->ups[i];
			if (!up->listed && strcmp(up->ep->id, e->id) == 0 && same_target(up->ep, e))
				found = up;
		}
		if (!found) {
			if (grow(p, p->nups + 1) < 0 || !(found = upstream_new(p, e))) {
				bcn_error("proxy", "%s: out of memory for endpoint %s", p->listen, e->id);
				continue;
			}
			p->ups[p->nups++] = found;
		}
		found->listed = true;
	}
	for (size_t i = p->nups; i-- > 0;) {
		if (!p->ups[i]->listed && !p->ups[i]->active)
			drop_at(p, i);
	}
	/* The weighted sequence restarts with the new list. */
	bcn_pick_reset(&p->pick);
}

void px_upstreams_free(struct px_proxy *p)
{
	for (size_t i = 0; i < p->nups; i++)
		upstream_free(p->ups[i]);
	free(p->ups);
	free(p->cand_up);
	free(p->cand);
	bcn_pick_state_free(&p->pick);
	p->ups = p->cand_up = NULL;
	p->cand = NULL;
	p->nups = 0;
}

static bool tried(const struct px_conn *c, const struct px_upstream *up)
{
	for (unsigned i = 0; i < c->ntried; i++) {
		if (c->tried[i] == up)
			return true;
	}
	return false;
}

/* Fewest active connections per unit of weight (a/wa < b/wb as a*wb < b*wa);
 * the scan starts at a rotating offset, so ties go round robin. */
static size_t least_conn(struct px_proxy *p, size_t n)
{
	size_t start = (size_t)(p->rr++ % n), best = start;

	for (size_t k = 1; k < n; k++) {
		size_t i = (start + k) % n;
		uint64_t a = (uint64_t)p->cand_up[i]->active * p->cand_up[best]->ep->weight;
		uint64_t b = (uint64_t)p->cand_up[best]->active * p->cand_up[i]->ep->weight;
		if (a < b)
			best = i;
	}
	return best;
}

static size_t candidates(struct px_proxy *p, struct px_conn *c, bool with_ejected, uint64_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < p->nups; i++) {
		struct px_upstream *up = p->ups[i];
		if (!up->listed || !up->salen || tried(c, up) || (!with_ejected && px_ejected(up, now)))
			continue;
		p->cand_up[n] = up;
		p->cand[n++] = up->ep;
	}
	return n;
}

struct px_upstream *px_choose(struct px_proxy *p, struct px_conn *c)
{
	static const enum bcn_pick_policy map[] = {
		[PX_ROUND_ROBIN] = BCN_PICK_ROUND_ROBIN, [PX_RANDOM] = BCN_PICK_RANDOM,
		[PX_WEIGHTED] = BCN_PICK_WEIGHTED, [PX_HASH] = BCN_PICK_HASH,
	};
	uint64_t now = bcn_now_ms();
	size_t n = candidates(p, c, false, now);
	ssize_t i;

	/* Every usable one ejected (the others left discovery since): an
	 * ejected endpoint is better than refusing the client. */
	if (n == 0)
		n = candidates(p, c, true, now);
	if (n == 0)
		return NULL;
	if (p->policy == PX_LEAST_CONN)
		i = (ssize_t)least_conn(p, n);
	else
		i = bcn_pick(&p->pick, map[p->policy], p->cand, n, c->key);
	return i < 0 ? p->cand_up[0] : p->cand_up[i];
}

/* Another listed, usable, not ejected upstream exists: ejecting up leaves
 * the proxy something to send to. */
static bool others_usable(const struct px_upstream *up, uint64_t now)
{
	const struct px_proxy *p = up->p;

	for (size_t i = 0; i < p->nups; i++) {
		const struct px_upstream *o = p->ups[i];
		if (o != up && o->listed && o->salen && !px_ejected(o, now))
			return true;
	}
	return false;
}

void px_connect_failed(struct px_upstream *up)
{
	struct px_proxy *p = up->p;
	uint64_t now = bcn_now_ms();
	char id[80]; /* ids come from registries: printable only in logs */

	up->failures++;
	up->consecutive++;
	if (up->consecutive < p->consecutive_failures || px_ejected(up, now))
		return;
	if (!others_usable(up, now)) {
		bcn_log_printable(id, sizeof(id), up->ep->id, strlen(up->ep->id));
		if (bcn_complain_due(&p->complain, 60000, 5, "proxy", "proxy warnings"))
			bcn_warn("proxy", "%s: endpoint %s failed %u connects in a row; not ejected, "
				 "it is the last one", p->listen, id, up->consecutive);
		return;
	}
	up->ejected_until_ms = now + p->ejection_ms;
	up->ejections++;
	up->consecutive = 0;
	bcn_log_printable(id, sizeof(id), up->ep->id, strlen(up->ep->id));
	bcn_warn("proxy", "%s: endpoint %s (%s:%u) ejected for %llu ms after %u failed connects",
		 p->listen, id, up->ep->address, up->ep->port,
		 (unsigned long long)p->ejection_ms, p->consecutive_failures);
}

void px_connect_ok(struct px_upstream *up)
{
	up->consecutive = 0;
}
