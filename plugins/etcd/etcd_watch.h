/*
 * etcd_watch.h - one watch of etcd_watch.c, shared with the parser of its
 * stream (etcd_watch_parse.c). Not for use outside these two files.
 */
#ifndef BCN_ETCD_WATCH_H
#define BCN_ETCD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd.h"

#define STREAM_MAX ((size_t)64 << 20)  /* one watch response larger than this: read again */

enum after_stop { AFTER_NOTHING, AFTER_RESYNC, AFTER_RETRY, AFTER_REAUTH };

struct etcd_watch {
	struct bcn_watch base;     /* first: name, kind, synced/fresh, last_error */
	struct etcd_ctx *ctx;
	char *key, *end;           /* the range: [key, end) */
	size_t key_len, end_len;
	struct etcd_req *req;      /* range page or watch stream */
	bool streaming;
	int64_t revision;          /* what the cache reflects */
	unsigned attempt;
	int64_t page;              /* keys per range request; shrinks when an answer is too large */
	struct event *retry_ev;
	uint64_t events;

	/* The range being read. */
	int64_t range_rev;
	char *next_key;
	size_t next_key_len;
	struct bcn_endpoint **eps;
	char **keys, **vals;
	size_t *lens, n, cap;

	/* The stream being parsed. */
	char *buf;
	size_t len, cap_buf, pos, start;
	int depth;
	bool in_str, esc;
	enum after_stop after;
	char why[200];
};

/* Forget a partly read stream (a new stream starts). */
void etcd_watch_parser_reset(struct etcd_watch *w);
/* The stream's on_data (curl's write callback: no request may be started or
 * cancelled from here). Non-zero stops the stream; w->after says why. */
int etcd_watch_on_data(const char *data, size_t n, void *arg);

#endif
