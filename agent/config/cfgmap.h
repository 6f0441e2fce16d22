/*
 * cfgmap.h - table-driven JSON config parsing (after Fluent Bit's config_map).
 *
 * Every config object is described once by a NULL-terminated table of fields:
 * key, type, offset into the C struct it fills, default, limits. One function
 * walks a jansson object against such a table, expands ${VAR} in strings,
 * converts, range-checks, and records every problem with its JSON path
 * ("$.service.check.interval: ..."), so `--check-config` can print them all.
 * Unknown keys are errors. Nothing is parsed key by key by hand.
 * (bcn_expand_env lives in expand.c, the duration functions in duration.c.)
 */
#ifndef BCN_CFGMAP_H
#define BCN_CFGMAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bcn_cfg_type {
	BCN_CFG_STR,      /* char *            ("" when absent without default) */
	BCN_CFG_INT,      /* int64_t, range [min, max]; a string like "${PORT}" that expands to digits is accepted */
	BCN_CFG_BOOL,     /* bool */
	BCN_CFG_DURATION, /* uint64_t milliseconds, from "500ms", "10s", "1h30m"; range [min, max] in ms */
	BCN_CFG_MODE,     /* unsigned int, an octal permission string "0660" */
	BCN_CFG_STRLIST,  /* struct bcn_strlist */
	BCN_CFG_STRMAP,   /* json_t * object whose values are all strings (after expansion); NULL when absent */
	BCN_CFG_OBJECT,   /* a struct embedded at offset, filled from `sub` */
	BCN_CFG_OBJPTR,   /* a pointer at offset to a calloc'd struct of sub_size filled from `sub`; NULL when absent */
	BCN_CFG_OBJLIST,  /* struct bcn_objlist of sub_size elements, each filled from `sub` */
	BCN_CFG_JSON,     /* json_t * kept as is (a new reference; strings NOT expanded); NULL when absent */
};

#define BCN_CFG_REQUIRED 0x1 /* absent key is an error */
#define BCN_CFG_NONEMPTY 0x2 /* STR must not be empty, lists must have an element */
/* Read once at start: on reload the running value is kept (a flagged OBJECT
 * row covers all its members) and a change is logged as needing a restart. */
#define BCN_CFG_RESTART 0x4

struct bcn_cfg_field {
	const char *key;
	enum bcn_cfg_type type;
	size_t offset;
	const char *def;                  /* default as it would be written in the JSON string form, or NULL */
	unsigned flags;
	int64_t min, max;                 /* INT and DURATION (ms) limits; both 0 means unlimited */
	const struct bcn_cfg_field *sub;  /* OBJECT, OBJPTR, OBJLIST */
	size_t sub_size;                  /* OBJPTR, OBJLIST element size */
	const char *desc;                 /* one line, for docs and errors */
};

/*
 * One row macro per type, so a table reads as the config does. Limits of
 * durations are written with the unit macros (BCN_S(10), not 10000); defaults
 * are written as in the config file ("10s", "[\"a\"]"). Arguments: the struct
 * the table fills, its member, the JSON key, then the type's own (default,
 * limits, sub-table), the flags and a one-line description.
 */
#define BCN_MS(n) ((int64_t)(n))
#define BCN_S(n) (BCN_MS(n) * 1000)
#define BCN_MIN(n) (BCN_S(n) * 60)
#define BCN_H(n) (BCN_MIN(n) * 60)
#define BCN_DAYS(n) (BCN_H(n) * 24)

#define BCN_ROW_(t, st, m, k, fl, d) \
	.key = (k), .type = BCN_CFG_##t, .offset = offsetof(st, m), .flags = (fl), .desc = (d)
#define BCN_ROW_STR(st, m, k, def_, fl, d) { BCN_ROW_(STR, st, m, k, fl, d), .def = (def_) }
#define BCN_ROW_BOOL(st, m, k, def_, fl, d) { BCN_ROW_(BOOL, st, m, k, fl, d), .def = (def_) }
#define BCN_ROW_MODE(st, m, k, def_, fl, d) { BCN_ROW_(MODE, st, m, k, fl, d), .def = (def_) }
#define BCN_ROW_INT(st, m, k, def_, lo, hi, fl, d) \
	{ BCN_ROW_(INT, st, m, k, fl, d), .def = (def_), .min = (lo), .max = (hi) }
#define BCN_ROW_DURATION(st, m, k, def_, lo, hi, fl, d) \
	{ BCN_ROW_(DURATION, st, m, k, fl, d), .def = (def_), .min = (lo), .max = (hi) }
#define BCN_ROW_STRLIST(st, m, k, def_, fl, d) { BCN_ROW_(STRLIST, st, m, k, fl, d), .def = (def_) }
#define BCN_ROW_STRMAP(st, m, k, fl, d) { BCN_ROW_(STRMAP, st, m, k, fl, d) }
#define BCN_ROW_JSON(st, m, k, fl, d) { BCN_ROW_(JSON, st, m, k, fl, d) }
#define BCN_ROW_OBJECT(st, m, k, sub_, fl, d) { BCN_ROW_(OBJECT, st, m, k, fl, d), .sub = (sub_) }
#define BCN_ROW_OBJPTR(st, m, k, sub_, sub_st, fl, d) \
	{ BCN_ROW_(OBJPTR, st, m, k, fl, d), .sub = (sub_), .sub_size = sizeof(sub_st) }
#define BCN_ROW_OBJLIST(st, m, k, sub_, sub_st, fl, d) \
	{ BCN_ROW_(OBJLIST, st, m, k, fl, d), .sub = (sub_), .sub_size = sizeof(sub_st) }
#define BCN_ROW_END { .key = NULL }

struct bcn_strlist {
	char **v;
	size_t n;
};

struct bcn_objlist {
	void *v;   /* n elements of the table's sub_size, contiguous */
	size_t n;
};

/* True when the list holds `s`. */
bool bcn_strlist_has(const struct bcn_strlist *l, const char *s);

/* Collected problems, each "JSON-path: sentence". Warnings (valid, but
 * probably not what was meant) are kept apart and never make a config
 * invalid: --check-config prints them, the agent logs them at start. */
struct bcn_cfg_errs {
	char **msg;
	size_t n;
	char **warn;
	size_t nwarn;
};

/* Record one problem at `path`. printf-style. */
void bcn_cfg_err(struct bcn_cfg_errs *e, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Record one warning at `path`. printf-style. */
void bcn_cfg_warn(struct bcn_cfg_errs *e, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void bcn_cfg_errs_free(struct bcn_cfg_errs *e);

/*
 * Fill `out` from the JSON object `obj` (NULL means {} so defaults apply) using
 * `table`. `path` is the JSON path of obj ("$" at top level). Problems are
 * appended to errs. Returns the number of problems added (0 = success). `out`
 * is always left in a state bcn_cfg_free() can release.
 */
size_t bcn_cfg_fill(const struct bcn_cfg_field *table, json_t *obj, void *out,
		    const char *path, struct bcn_cfg_errs *errs);

/* The JSON path of `key` under `parent`: "$.a.b", or "$.a[\"legacy-db\"]" for a
 * key that is not an identifier. Truncated to len. */
void bcn_cfg_path_key(char *out, size_t len, const char *parent, const char *key);

/* Release everything bcn_cfg_fill allocated inside `out` (not `out` itself). NULL-safe. */
void bcn_cfg_free(const struct bcn_cfg_field *table, void *out);

/*
 * The reload step for restart-only keys. `running` and `next` were filled
 * from the same table: every row flagged BCN_CFG_RESTART is swapped, so
 * `next` carries on with the running value and `running` (about to be freed)
 * holds the new one. The keys whose values differed are written to `changed`
 * as "ttl, tls" (nested ones as "socket.path"). Returns how many differed.
 */
size_t bcn_cfg_keep_restart(const struct bcn_cfg_field *table, void *running, void *next,
			    char *changed, size_t len);

/*
 * Expand ${VAR} and ${VAR:-default} from the environment; "$$" is a literal '$'.
 * An unset variable without a default expands to "" (as in a shell). Returns a
 * malloc'd string, or NULL with *err set to a static sentence on a syntax error.
 */
char *bcn_expand_env(const char *in, const char **err);

/* Parse a Go-style duration ("500ms", "10s", "5m", "1h30m", "1.5s"; "0" alone
 * is allowed) into milliseconds. Returns 0, or -1 when malformed or overflowing. */
int bcn_duration_parse(const char *s, uint64_t *ms);

/* Format milliseconds as a duration string ("1h30m", "500ms") into buf. */
void bcn_duration_format(uint64_t ms, char *buf, size_t len);

/* Load a JSON file; on a parse error, record "FILE:LINE:COLUMN: sentence". NULL on failure. */
json_t *bcn_cfg_load_file(const char *file, struct bcn_cfg_errs *errs);

#endif
