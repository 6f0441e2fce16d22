/*
 * wait.h - the one way a reader waits for a change (after Redis blocked.c).
 *
 * A reader parks on a named queue with the index it last saw; whoever
 * changes the data signals that queue with the new index. Signals are only
 * collected: a queue is marked ready and one deferred event delivers every
 * ready queue on the next loop turn, so a reader is never called from inside
 * the call that changed the data, and a burst of 10 000 changes wakes each
 * reader once. A signal reaches only the queue it names: a reader is never
 * woken for something it did not ask about.
 *
 * Queues are named by (space, name): the owner of the data picks the spaces
 * (the cache: the service list, one service, one KV key, a KV prefix read
 * recursively; the secret store: one secret). A queue exists only while
 * someone waits on it, so signalling a name nobody waits for is one hash
 * lookup and nothing else. A change of key K reaches every waiting prefix of
 * K with bcn_wait_signal_prefixes, one pass over K.
 *
 * Index semantics: a waiter parked with index i is woken by the first
 * delivery after its queue was signalled with an index greater than i. Data
 * indexes only grow, so "greater" is "changed since you looked".
 *
 * Single-threaded, on the loop of the set's event_base. The socket API's
 * blocking reads use it; templates, DNS and proxies subscribe the same way.
 */
#ifndef BCN_WAIT_H
#define BCN_WAIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct bcn_waits; /* a set of named queues sharing one deferred delivery */
struct bcn_wait;  /* one parked reader: the handle park returns */

/* Called once, on the loop, when the reader's queue moved past its index. */
typedef void (*bcn_wait_cb)(void *arg);

#define BCN_WAIT_SPACES 8

/* A set delivering on base (NULL: only on bcn_waits_deliver, for tests).
 * NULL when out of memory. */
struct bcn_waits *bcn_waits_new(struct event_base *base);
/* Free the set; parked readers are dropped without being called. NULL-safe. */
void bcn_waits_free(struct bcn_waits *ws);

/*
 * Park a reader on queue (space, name) having seen `index`. cb(arg) runs
 * once, from the delivery event, after a signal of that queue with a higher
 * index (also one that came before this call while someone else waited
 * there). Returns the handle for bcn_wait_cancel; NULL when out of memory or
 * space is out of range (the reader should be answered at once then).
 */
struct bcn_wait *bcn_wait_park(struct bcn_waits *ws, unsigned space, const char *name,
			       uint64_t index, bcn_wait_cb cb, void *arg);
/* Unpark: cb will not run. NULL-safe; not after cb ran (the handle is gone). */
void bcn_wait_cancel(struct bcn_wait *w);

/* Queue (space, name) moved to `index`: its readers that saw less wake on
 * the next delivery. Nothing happens when nobody waits there. */
void bcn_wait_signal(struct bcn_waits *ws, unsigned space, const char *name, uint64_t index);
/* Signal every queue of space whose name is a prefix of key (key itself
 * included): what a change of key means to recursive readers. */
void bcn_wait_signal_prefixes(struct bcn_waits *ws, unsigned space, const char *key,
			      uint64_t index);
/* Signal every queue of space (a change too broad to name its keys). */
void bcn_wait_signal_all(struct bcn_waits *ws, unsigned space, uint64_t index);

/* Queues of space with readers (0: a signal there cannot wake anyone). */
size_t bcn_waits_queues(const struct bcn_waits *ws, unsigned space);
/* Readers parked in the whole set. */
size_t bcn_waits_parked(const struct bcn_waits *ws);

/* Deliver what is ready now (sets without a base, tests). The delivery
 * event calls this; signals sent by woken readers wait for the next one. */
void bcn_waits_deliver(struct bcn_waits *ws);

#endif
