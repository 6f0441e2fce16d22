/*
 * loop.h - the agent's one event loop, run with interrupt mitigation.
 *
 * Blocking in epoll_wait costs whoever wakes us: on a loaded machine (and
 * much more in a VM, where a wake-up is an inter-processor interrupt and a
 * VM exit) the application that sent the bytes pays a few microseconds of
 * its own CPU per wake-up. So, as NAPI does for network cards, the loop
 * stops blocking under load: when a turn of the loop handled two or more
 * events, it naps briefly instead of blocking (a timer of its own: nobody
 * has to wake it), then runs everything that became ready, and goes on so
 * while each such round finds two or more; then it blocks again. One
 * connection at a time (a lone client, an idle agent) never enters the
 * mode, so its latency is unchanged; under load an event waits at most one
 * nap (20 us, plus a timer slack the loop sets to 10 us).
 *
 * The outputs that move bytes (proxies) count their work with
 * bcn_loop_work(); everything else runs as on a plain event_base_dispatch.
 * BCN_LOOP_NAP_US=0 in the environment turns the mode off (for comparison).
 */
#ifndef BCN_LOOP_H
#define BCN_LOOP_H

struct event_base;

extern unsigned long bcn_loop_works;

/* One callback moved data. */
static inline void bcn_loop_work(void)
{
	bcn_loop_works++;
}

/* Run base until event_base_loopexit/loopbreak or until it has no events:
 * event_base_dispatch with the mitigation above. 0, or -1 on an error. */
int bcn_loop_run(struct event_base *base);

#endif
