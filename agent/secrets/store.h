/*
 * store.h - the secret store: what /v1/secrets/{name} serves, kept
 * encrypted at rest. Used by the core (which owns the store), the socket API
 * and the plugin reporting API (plugin/report.c); plugins never include it:
 * they see only the sealing half (seal.h) and the bcn_report_secret_*() calls.
 *
 * A secrets plugin (Vault) declares its secrets in the one store; the socket
 * API finds a secret by name in that store. Each secret's data (a JSON object) is
 * serialised straight into guarded memory, encrypted with
 * XChaCha20-Poly1305 under a random key, and only the ciphertext stays. The
 * key lives in sodium_malloc'd memory that is PROT_NONE except for the
 * instant it is used; plaintext only ever exists in one guarded scratch
 * arena (also PROT_NONE while empty), for as long as it takes to build one
 * answer or one request, and is wiped right after (seal.c). A secret's index
 * moves on every change of data or version and signals its wait queue, so
 * blocking reads wake up (store.c, store/wait.h).
 *
 * The same key seals the plugin's credentials (Vault token, AppRole
 * secret_id, Kubernetes JWT): bcn_secrets_seal() / bcn_secrets_unseal(), in
 * seal.h.
 *
 * Everything runs on the agent's loop thread; nothing here blocks.
 */
#ifndef BCN_SECRETS_STORE_H
#define BCN_SECRETS_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "secrets/seal.h"
#include "store/wait.h"

struct event_base;
struct evbuffer;
struct bcn_secret;       /* one named secret in it */

/* Create a store whose deferred wake-ups run on base (NULL: only on
 * bcn_secrets_flush, for tests). Locks memory as far as the limits allow
 * (warns once when they do not). NULL on failure (logged). */
struct bcn_secrets *bcn_secrets_new(struct event_base *base);
/* Wipe and free everything; waiters are dropped without being called. NULL-safe. */
void bcn_secrets_free(struct bcn_secrets *s);

/* Declare secret `name`, readable by the peer uids given (copied). NULL when
 * out of memory or when the store already has that name. */
struct bcn_secret *bcn_secrets_add(struct bcn_secrets *s, const char *name, const uid_t *uids,
				   size_t nuids);
/* Replace who may read it (reload). 0 or -1 (out of memory: unchanged). */
int bcn_secret_set_uids(struct bcn_secret *sec, const uid_t *uids, size_t nuids);

/*
 * Store new data: `data` (a JSON object, typically straight from a parsed
 * Vault answer) is serialised into guarded memory, compared with what is
 * stored, and encrypted. version is what answers show; expires_at_ms is the
 * CLOCK_MONOTONIC time (bcn_now_ms) the data stops being valid, 0
 * for none. A negative version means "count": the store shows 1 for the
 * first data and adds one on every change (sources without versions: KV v1,
 * leases). Returns 1 when data or version changed (index bumped, readers
 * woken), 0 when unchanged (the expiry is still updated), -1 on error
 * (logged, nothing changed).
 */
int bcn_secret_put(struct bcn_secret *sec, const json_t *data, int64_t version,
		   uint64_t expires_at_ms);
/* New expiry for the same data (a renewed lease). Does not move the index. */
void bcn_secret_set_expiry(struct bcn_secret *sec, uint64_t expires_at_ms);
/* The source could not refresh it: answers say stale. Does not move the index. */
void bcn_secret_set_stale(struct bcn_secret *sec, bool stale);
/* Forget the data (its lease ended): the index moves, reads get 503. */
void bcn_secret_drop(struct bcn_secret *sec);

const char *bcn_secret_name(const struct bcn_secret *sec);
bool bcn_secret_loaded(const struct bcn_secret *sec);  /* has data that has not expired */
bool bcn_secret_ended(const struct bcn_secret *sec);   /* had data whose lease ended */
bool bcn_secret_stale(const struct bcn_secret *sec);
int64_t bcn_secret_version(const struct bcn_secret *sec);
uint64_t bcn_secret_index(const struct bcn_secret *sec);
bool bcn_secret_allows(const struct bcn_secret *sec, uid_t uid);

/* The secret of that name in store s (NULL-safe), or NULL. */
struct bcn_secret *bcn_secrets_find(const struct bcn_secrets *s, const char *name);
/* The store's highest index (1 for a NULL store): for answers about no secret. */
uint64_t bcn_secrets_index(const struct bcn_secrets *s);

/* Append the SPEC answer {"name","data","version","expires_in","stale"} and a
 * newline to out. The plaintext is assembled in the guarded arena and wiped
 * once evbuffer_add has copied it (the copy lives in libevent memory, which
 * the zero-on-free allocator wipes when the answer has been sent).
 * 0, or -1 when not loaded or on error. */
int bcn_secret_render(struct bcn_secret *sec, struct evbuffer *out);

/* Blocking reads: park on secret `name` having seen index (queue
 * BCN_SECRETS_Q of the store's wait set); cb runs once after its index
 * moved, never from inside this call. NULL when the secret is unknown or
 * out of memory. Cancel with bcn_wait_cancel; bcn_secrets_free drops
 * waiters without calling them. */
#define BCN_SECRETS_Q 0
struct bcn_wait *bcn_secrets_wait(struct bcn_secrets *s, const char *name, uint64_t index,
				  bcn_wait_cb cb, void *arg);
/* The store's wait set, to park on (BCN_SECRETS_Q, name) directly. */
struct bcn_waits *bcn_secrets_waits(struct bcn_secrets *s);
/* Run pending wake-ups now (stores without a base, tests). */
void bcn_secrets_flush(struct bcn_secrets *s);

#endif
