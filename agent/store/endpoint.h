/*
 * endpoint.h - one service instance as served on the socket (SPEC's ENDPOINT).
 *
 * An endpoint is immutable once built and lives in one allocation: the fields
 * a reader filters or picks on, and its JSON rendered once, so answering a
 * request copies prepared bytes instead of serialising again.
 */
#ifndef BCN_ENDPOINT_H
#define BCN_ENDPOINT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h" /* bcn_hash64 of endpoint ids */

enum bcn_status { BCN_PASSING = 0, BCN_WARNING = 1, BCN_CRITICAL = 2 };

struct bcn_endpoint {
	const char *id;
	const char *service;
	const char *address;
	const char *const *tags;
	const char *json;    /* {"id":...,"status":...}, no trailing newline */
	size_t json_len;
	uint64_t id_hash;    /* stable hash of id, for consistent hashing */
	uint32_t weight;     /* >= 1 */
	uint16_t port;
	uint16_t ntags;
	uint8_t status;      /* enum bcn_status */
	uint8_t src;         /* cache source that owns it */
};

/* Fields to build an endpoint from; strings are copied. meta may be NULL. */
struct bcn_endpoint_spec {
	const char *id;          /* NULL or "" = "<address>:<port>" */
	const char *service;
	const char *address;
	int64_t port;            /* 1..65535 */
	const char *const *tags;
	size_t ntags;
	json_t *meta;            /* object of string values, or NULL */
	int64_t weight;          /* 0 = 1 */
	enum bcn_status status;
};

/* Build an endpoint; NULL with *err set to a sentence when a field is invalid. Free with free(). */
struct bcn_endpoint *bcn_endpoint_new(const struct bcn_endpoint_spec *s, const char **err);

/*
 * Build an endpoint from ENDPOINT JSON as stored in a registry. `service` wins over
 * the JSON's own "service" when non-NULL. Unknown keys are ignored (forward
 * compatibility); wrong types are errors. NULL with *err set on failure.
 */
struct bcn_endpoint *bcn_endpoint_from_json(const json_t *obj, const char *service,
					    const char **err);

/* Same endpoint with another status (the original is not changed). */
struct bcn_endpoint *bcn_endpoint_with_status(const struct bcn_endpoint *e, enum bcn_status st);

const char *bcn_status_name(enum bcn_status st);
/* "passing", "warning", "critical" -> 0; -1 otherwise. */
int bcn_status_parse(const char *s, enum bcn_status *out);

int bcn_endpoint_has_tag(const struct bcn_endpoint *e, const char *tag);


#endif
