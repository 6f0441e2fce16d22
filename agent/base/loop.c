/*
 * loop.c - the agent's event loop with interrupt mitigation (see loop.h).
 */
#include "base/loop.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

unsigned long bcn_loop_works;

/* A turn that moved data for this many connections means load. */
#define BUSY_WORKS 2
#define NAP_US_DEFAULT 20
/* The kernel stretches a sleep by the thread's timer slack, 50 us by default:
 * 10 us keeps a nap near what was asked, so an event waits less under load
 * (short A/B runs of the proxy bench: p99 lower in 4 of 4 rounds with 10 us,
 * 2 of 4 with 50 us; full make bench runs: at parity with HAProxy either way,
 * req/s unchanged). Every other timer of the loop is as punctual. */
#define NAP_SLACK_NS 10000

static long nap_us(void)
{
	const char *s = getenv("BCN_LOOP_NAP_US");
	char *end;
	long v;

	if (!s || !*s)
		return NAP_US_DEFAULT;
	v = strtol(s, &end, 10);
	return *end || v < 0 || v > 100000 ? NAP_US_DEFAULT : v;
}

static bool ended(struct event_base *base, int rc)
{
	return rc != 0 || event_base_got_exit(base) || event_base_got_break(base);
}

int bcn_loop_run(struct event_base *base)
{
	long nap = nap_us();
	struct timespec ts = { nap / 1000000, nap % 1000000 * 1000 };

	if (nap == 0)
		return event_base_dispatch(base) < 0 ? -1 : 0;
	prctl(PR_SET_TIMERSLACK, NAP_SLACK_NS, 0, 0, 0);
	for (;;) {
		unsigned long before = bcn_loop_works;
		int rc = event_base_loop(base, EVLOOP_ONCE);

		if (ended(base, rc))
			return rc < 0 ? -1 : 0;
		while (bcn_loop_works - before >= BUSY_WORKS) {
			nanosleep(&ts, NULL); /* a signal cuts it short: fine */
			before = bcn_loop_works;
			rc = event_base_loop(base, EVLOOP_NONBLOCK); /* until nothing is ready */
			if (ended(base, rc))
				return rc < 0 ? -1 : 0;
		}
	}
}
