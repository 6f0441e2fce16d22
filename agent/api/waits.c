/*
 * waits.c - blocking reads (?index=): a request whose index is current is
 * held on a store queue (store/wait.h) plus one timer (?wait, at most five
 * minutes), and answered by its route's handler once either fires. The
 * store decides who wakes (only readers of what changed, once per loop
 * turn); this file only keeps the parked requests, so that /metrics can
 * count them and shutdown can answer them all. A client that goes away
 * while parked is told by the server (bcn_hreq_on_abort): its wait ends
 * there, unanswered, and its connection slot is free at once.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "api/api_internal.h"
#include "base/timing.h"
#include "http/server.h"
#include "store/wait.h"

struct bcn_api_wait {
	LIST_ENTRY(bcn_api_wait) link;
	struct bcn_api *api;
	struct event *timer;
	struct bcn_wait *w;  /* NULL once the store woke us */
	struct bcn_req *rc;  /* a copy: the parked request outlives the router's frame */
};

/* Forget w; its request, returned, is the caller's. */
static struct bcn_req *wait_free(struct bcn_api_wait *w)
{
	struct bcn_req *rc = w->rc;

	LIST_REMOVE(w, link);
	w->api->nwaits--;
	event_free(w->timer);
	bcn_wait_cancel(w->w);
	free(w);
	return rc;
}

static void wait_end(struct bcn_api_wait *w)
{
	struct bcn_req *rc = wait_free(w);

	rc->q.has_index = false; /* answer now, whatever the index */
	rc->handler(rc);
	free(rc);
}

/* The client went away while parked. */
static void abort_cb(void *arg)
{
	free(wait_free(arg));
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	wait_end(arg);
}

static void wake_cb(void *arg)
{
	struct bcn_api_wait *w = arg;

	w->w = NULL; /* the store freed it */
	wait_end(w);
}

void bcn_api_park(struct bcn_req *rc, struct bcn_waits *ws, unsigned space, const char *name)
{
	struct bcn_api *api = rc->api;
	struct bcn_api_wait *w = calloc(1, sizeof(*w));
	struct bcn_req *copy = malloc(sizeof(*copy));
	uint64_t ms = rc->q.wait_ms ? rc->q.wait_ms : BCN_API_DEFAULT_WAIT_MS;

	if (!w || !copy || !ws)
		goto fail;
	*copy = *rc;
	w->api = api;
	w->rc = copy;
	w->timer = evtimer_new(api->base, timeout_cb, w);
	if (!w->timer)
		goto fail;
	w->w = bcn_wait_park(ws, space, name, rc->q.index, wake_cb, w);
	if (!w->w)
		goto fail;
	bcn_timer_ms(w->timer, ms);
	LIST_INSERT_HEAD(&api->waits, w, link);
	api->nwaits++;
	bcn_hreq_on_abort(rc->req, abort_cb, w);
	return;
fail:
	if (w && w->timer)
		event_free(w->timer);
	free(w);
	free(copy);
	rc->q.has_index = false;
	rc->handler(rc);
}

void bcn_api_release_waits(struct bcn_api *api)
{
	while (!LIST_EMPTY(&api->waits))
		wait_end(LIST_FIRST(&api->waits));
}
