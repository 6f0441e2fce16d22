/*
 * timing.h - the monotonic clock, millisecond timers and retry delays, shared
 * by the core and the backends (every backend retries with the same capped,
 * jittered backoff). One clock for everything that measures an interval or an
 * expiry: CLOCK_MONOTONIC, so that a wall-clock step never expires a secret
 * early or makes an uptime negative.
 */
#ifndef BCN_TIMING_H
#define BCN_TIMING_H

#include <stdint.h>
#include <sys/time.h>

struct event;

/* CLOCK_MONOTONIC now, in milliseconds / microseconds (any fixed origin). */
uint64_t bcn_now_ms(void);
uint64_t bcn_now_us(void);

/* ms milliseconds as a struct timeval. */
struct timeval bcn_tv_ms(uint64_t ms);

/* Arm a timer event (evtimer_add) to fire ms milliseconds from now. 0 or -1. */
int bcn_timer_ms(struct event *ev, uint64_t ms);

/*
 * The delay before retry number `attempt` (0 for the first retry after a
 * failure): base_ms doubled per attempt, capped at max_ms, then spread by
 * +-20% so that agents which lost a backend together do not all come back at
 * the same moment.
 */
uint64_t bcn_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms);

#endif
