/*
 * dns.h - the DNS interface (SPEC.md "DNS"): UDP and TCP listeners on the
 * agent's loop answering from the store (dns/answer.h). The agent creates it
 * from the "dns" config section, hands it a reloaded section on SIGHUP,
 * asks it for /metrics lines and its /v1/self entry, and frees it at stop.
 */
#ifndef BCN_DNS_H
#define BCN_DNS_H

#include <jansson.h>
#include <stddef.h>

struct event_base;
struct evbuffer;
struct bcn_cache;
struct bcn_dns_conf;
struct bcn_dns;

/* Bind conf->listen (UDP and TCP) and serve. NULL with err set (one
 * sentence) when the address cannot be bound or memory runs out. */
struct bcn_dns *bcn_dns_new(struct event_base *base, struct bcn_cache *cache,
			    const struct bcn_dns_conf *conf, char *err, size_t errlen);
/* Close the listeners and every connection. NULL-safe. */
void bcn_dns_free(struct bcn_dns *d);
/* Apply a reloaded section (domain, ttl, limits; the listen address needs a
 * restart: returns -1 when it differs, and keeps serving the old one). */
int bcn_dns_reload(struct bcn_dns *d, const struct bcn_dns_conf *conf);
/* beacon_dns_* Prometheus lines. */
void bcn_dns_metrics(const struct bcn_dns *d, struct evbuffer *out);
/* {"listen":..., "domain":..., "tcp_connections":n} for /v1/self. */
json_t *bcn_dns_self(const struct bcn_dns *d);

#endif
