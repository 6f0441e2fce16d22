/*
 * timing.c - see timing.h.
 */
#include "base/timing.h"

#include <event2/event.h>
#include <sodium.h>
#include <time.h>

uint64_t bcn_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t bcn_now_ms(void)
{
	return bcn_now_us() / 1000u;
}

struct timeval bcn_tv_ms(uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	return tv;
}

int bcn_timer_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = bcn_tv_ms(ms);
	return evtimer_add(ev, &tv);
}

uint64_t bcn_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms)
{
	uint64_t ms = base_ms ? base_ms : 1;

	for (unsigned i = 0; i < attempt && ms < max_ms; i++)
		ms *= 2;
	if (ms > max_ms)
		ms = max_ms;
	return ms * (80 + randombytes_uniform(41)) / 100;
}
