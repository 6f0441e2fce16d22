/*
 * wait.c - see wait.h.
 *
 * Queues live in one chained hash table keyed by (space, name), created when
 * the first reader parks and freed when the last one leaves, so the table
 * holds what readers wait for, never what the data holds. The hash is
 * FNV-1a taken byte by byte: walking a key once yields the hash of each of
 * its prefixes in turn, which makes "signal every waiting prefix of K" one
 * pass over K (bounded by the longest waiting name) instead of one hash per
 * prefix. Ready queues sit on a list until the delivery event runs; waking
 * moves a queue's due readers to a local list first, because a callback may
 * cancel other readers, park new ones or free the queue it came from.
 */
#include "store/wait.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "base/hash.h"

TAILQ_HEAD(waitlist, bcn_wait);
TAILQ_HEAD(qlist, queue);

struct queue {
	struct queue *hnext;       /* hash chain */
	TAILQ_ENTRY(queue) rlink;  /* on rlist while signalled and not yet delivered */
	struct qlist *rlist;
	struct waitlist waiters;
	uint64_t hash;
	uint64_t index;            /* highest index signalled while the queue lived */
	unsigned space;
	size_t len;
	char name[];
};

struct bcn_wait {
	TAILQ_ENTRY(bcn_wait) link;
	struct waitlist *list;     /* its queue's list, or a delivery's local one */
	struct queue *q;           /* NULL once picked for delivery */
	struct bcn_waits *ws;
	uint64_t index;
	bcn_wait_cb cb;
	void *arg;
};

struct bcn_waits {
	struct event *ev;
	struct queue **buckets;
	size_t nbuckets, nqueues, parked;
	size_t per_space[BCN_WAIT_SPACES];
	size_t maxlen[BCN_WAIT_SPACES]; /* longest name that waited (an upper bound) */
	struct qlist ready;
};

static uint64_t hash_name(unsigned space, const char *name, size_t len)
{
	uint64_t h = bcn_fnv1a_step(BCN_FNV_START, (unsigned char)space);
	for (size_t i = 0; i < len; i++)
		h = bcn_fnv1a_step(h, (unsigned char)name[i]);
	return h;
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	bcn_waits_deliver(arg);
}

struct bcn_waits *bcn_waits_new(struct event_base *base)
{
	struct bcn_waits *ws = calloc(1, sizeof(*ws));

	if (!ws)
		return NULL;
	TAILQ_INIT(&ws->ready);
	ws->nbuckets = 16;
	ws->buckets = calloc(ws->nbuckets, sizeof(*ws->buckets));
	if (!ws->buckets)
		goto fail;
	if (base && !(ws->ev = event_new(base, -1, 0, deliver_cb, ws)))
		goto fail;
	return ws;
fail:
	bcn_waits_free(ws);
	return NULL;
}

static struct queue *lookup(const struct bcn_waits *ws, uint64_t h, unsigned space,
			    const char *name, size_t len)
{
	for (struct queue *q = ws->buckets[h & (ws->nbuckets - 1)]; q; q = q->hnext) {
		if (q->hash == h && q->space == space && q->len == len && memcmp(q->name, name, len) == 0)
			return q;
	}
	return NULL;
}

static void grow(struct bcn_waits *ws)
{
	size_t n = ws->nbuckets * 2;
	struct queue **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < ws->nbuckets; i++) {
		struct queue *q = ws->buckets[i], *next;
		for (; q; q = next) {
			next = q->hnext;
			q->hnext = b[q->hash & (n - 1)];
			b[q->hash & (n - 1)] = q;
		}
	}
	free(ws->buckets);
	ws->buckets = b;
	ws->nbuckets = n;
}

static void queue_free(struct bcn_waits *ws, struct queue *q)
{
	struct queue **pp = &ws->buckets[q->hash & (ws->nbuckets - 1)];

	while (*pp != q)
		pp = &(*pp)->hnext;
	*pp = q->hnext;
	if (q->rlist)
		TAILQ_REMOVE(q->rlist, q, rlink);
	ws->nqueues--;
	if (--ws->per_space[q->space] == 0)
		ws->maxlen[q->space] = 0;
	free(q);
}

void bcn_waits_free(struct bcn_waits *ws)
{
	if (!ws)
		return;
	for (size_t i = 0; ws->buckets && i < ws->nbuckets; i++) {
		struct queue *q = ws->buckets[i], *next;
		for (; q; q = next) {
			struct bcn_wait *w;
			next = q->hnext;
			while ((w = TAILQ_FIRST(&q->waiters)) != NULL) {
				TAILQ_REMOVE(&q->waiters, w, link);
				free(w);
			}
			free(q);
		}
	}
	free(ws->buckets);
	if (ws->ev)
		event_free(ws->ev);
	free(ws);
}

static void make_ready(struct bcn_waits *ws, struct queue *q)
{
	if (q->rlist)
		return;
	TAILQ_INSERT_TAIL(&ws->ready, q, rlink);
	q->rlist = &ws->ready;
	if (ws->ev)
		event_active(ws->ev, EV_TIMEOUT, 0);
}

static void mark(struct bcn_waits *ws, struct queue *q, uint64_t index)
{
	if (index <= q->index)
		return; /* nothing its readers have not been told */
	q->index = index;
	make_ready(ws, q);
}

struct bcn_wait *bcn_wait_park(struct bcn_waits *ws, unsigned space, const char *name,
			       uint64_t index, bcn_wait_cb cb, void *arg)
{
	size_t len = strlen(name);
	uint64_t h = hash_name(space, name, len);
	struct queue *q;
	struct bcn_wait *w;

	if (space >= BCN_WAIT_SPACES)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	q = lookup(ws, h, space, name, len);
	if (!q) {
		q = calloc(1, sizeof(*q) + len + 1);
		if (!q) {
			free(w);
			return NULL;
		}
		memcpy(q->name, name, len + 1);
		q->len = len;
		q->hash = h;
		q->space = space;
		TAILQ_INIT(&q->waiters);
		q->hnext = ws->buckets[h & (ws->nbuckets - 1)];
		ws->buckets[h & (ws->nbuckets - 1)] = q;
		ws->per_space[space]++;
		if (len > ws->maxlen[space])
			ws->maxlen[space] = len;
		if (++ws->nqueues > ws->nbuckets)
			grow(ws);
	}
	w->ws = ws;
	w->q = q;
	w->list = &q->waiters;
	w->index = index;
	w->cb = cb;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&q->waiters, w, link);
	ws->parked++;
	if (q->index > index)
		make_ready(ws, q); /* moved already: wake on the next delivery */
	return w;
}

void bcn_wait_cancel(struct bcn_wait *w)
{
	struct queue *q;

	if (!w)
		return;
	q = w->q;
	TAILQ_REMOVE(w->list, w, link);
	w->ws->parked--;
	if (q && TAILQ_EMPTY(&q->waiters))
		queue_free(w->ws, q);
	free(w);
}

void bcn_wait_signal(struct bcn_waits *ws, unsigned space, const char *name, uint64_t index)
{
	size_t len;
	struct queue *q;

	if (space >= BCN_WAIT_SPACES || !ws->per_space[space])
		return;
	len = strlen(name);
	q = lookup(ws, hash_name(space, name, len), space, name, len);
	if (q)
		mark(ws, q, index);
}

void bcn_wait_signal_prefixes(struct bcn_waits *ws, unsigned space, const char *key,
			      uint64_t index)
{
	uint64_t h;
	size_t max;

	if (space >= BCN_WAIT_SPACES || !ws->per_space[space])
		return;
	h = bcn_fnv1a_step(BCN_FNV_START, (unsigned char)space);
	max = ws->maxlen[space];
	for (size_t i = 0;; i++) {
		struct queue *q = lookup(ws, h, space, key, i);
		if (q)
			mark(ws, q, index);
		if (i >= max || key[i] == '\0')
			break;
		h = bcn_fnv1a_step(h, (unsigned char)key[i]);
	}
}

void bcn_wait_signal_all(struct bcn_waits *ws, unsigned space, uint64_t index)
{
	if (space >= BCN_WAIT_SPACES || !ws->per_space[space])
		return;
	for (size_t i = 0; i < ws->nbuckets; i++) {
		for (struct queue *q = ws->buckets[i]; q; q = q->hnext) {
			if (q->space == space)
				mark(ws, q, index);
		}
	}
}

size_t bcn_waits_queues(const struct bcn_waits *ws, unsigned space)
{
	return space < BCN_WAIT_SPACES ? ws->per_space[space] : 0;
}

size_t bcn_waits_parked(const struct bcn_waits *ws)
{
	return ws ? ws->parked : 0;
}

void bcn_waits_deliver(struct bcn_waits *ws)
{
	struct qlist now = TAILQ_HEAD_INITIALIZER(now);
	struct queue *q;

	/* Only what was signalled before this delivery: signals sent by the
	 * readers woken here go to ws->ready, for the next one. */
	while ((q = TAILQ_FIRST(&ws->ready)) != NULL) {
		TAILQ_REMOVE(&ws->ready, q, rlink);
		TAILQ_INSERT_TAIL(&now, q, rlink);
		q->rlist = &now;
	}
	while ((q = TAILQ_FIRST(&now)) != NULL) {
		struct waitlist due = TAILQ_HEAD_INITIALIZER(due);
		struct bcn_wait *w, *next;

		TAILQ_REMOVE(&now, q, rlink);
		q->rlist = NULL;
		for (w = TAILQ_FIRST(&q->waiters); w; w = next) {
			next = TAILQ_NEXT(w, link);
			if (w->index >= q->index)
				continue; /* parked after it saw this change */
			TAILQ_REMOVE(&q->waiters, w, link);
			TAILQ_INSERT_TAIL(&due, w, link);
			w->list = &due;
			w->q = NULL;
		}
		if (TAILQ_EMPTY(&q->waiters))
			queue_free(ws, q);
		while ((w = TAILQ_FIRST(&due)) != NULL) {
			bcn_wait_cb cb = w->cb;
			void *arg = w->arg;

			TAILQ_REMOVE(&due, w, link);
			ws->parked--;
			free(w);
			cb(arg);
		}
	}
}
