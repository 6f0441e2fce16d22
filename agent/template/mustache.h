/*
 * mustache.h - a Mustache engine: the official spec's core modules
 * (interpolation, sections, inverted sections, comments, partials, set
 * delimiters) over jansson values.
 *
 * A template is parsed once into a flat array of nodes (a section knows
 * where its children end), with every syntax error reported by line and
 * column; rendering walks that array into one growing buffer and allocates
 * nothing per node. Partials are read at parse time through a loader the
 * caller gives (files beside the template for the agent), already indented
 * for a standalone partial tag as the spec says ("each line of the partial
 * is indented before rendering"), and kept by (name, indentation), so a
 * recursive partial is parsed once.
 *
 * The engine depends on base/ and jansson only, so `beacon render --data`
 * (cli/) can use it without the store. Where the spec leaves a choice we do
 * what pystache (the reference of our differential test) does: a section
 * is false for false, null, missing, "", 0, [] and {}; numbers print as
 * Python prints them. true/false interpolate as "true"/"false" and an
 * object or list as compact JSON (pystache would print Python's repr).
 */
#ifndef BCN_MUSTACHE_H
#define BCN_MUSTACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum bcn_mst_escape {
	BCN_MST_ESC_NONE,  /* {{x}} inserts as is (our default, for config files) */
	BCN_MST_ESC_HTML,  /* the spec's behaviour: & < > " as entities */
	BCN_MST_ESC_JSON,  /* for values inside a JSON string: \" \\ \n \u00XX */
};

/* "none", "html", "json" -> *out; false for anything else. */
bool bcn_mst_escape_parse(const char *s, enum bcn_mst_escape *out);

/* Where parsing failed: the file (template or partial), line and column (1-based). */
struct bcn_mst_error {
	char file[128];
	unsigned line, col;
	char msg[160];
};

/*
 * Reads partial `name` for the parser: a new bcn_zmalloc'd (or malloc'd)
 * buffer of *len bytes, or NULL when it does not exist (the spec renders a
 * missing partial as empty). `file` gets a name for error messages.
 */
typedef char *(*bcn_mst_loader)(void *arg, const char *name, size_t *len, char *file,
				size_t filelen);

struct bcn_mst;

/* Parse text (len bytes, NUL not needed). `file` names it in errors.
 * NULL on a syntax error (filled in *err) or out of memory. */
struct bcn_mst *bcn_mst_parse(const char *text, size_t len, const char *file, bcn_mst_loader load,
			      void *load_arg, struct bcn_mst_error *err);
void bcn_mst_free(struct bcn_mst *t); /* NULL-safe */

/* Every name the template (and its partials) looks up, each once, in the
 * order they first appear, dotted as written ("service.web", "."): what
 * the data model has to provide. */
void bcn_mst_names(const struct bcn_mst *t, void (*fn)(void *arg, const char *name), void *arg);

/* A growing output buffer. Grows by copying into a new block and wiping the
 * old one (bcn_zrealloc), so a rendered secret leaves no copy behind. */
struct bcn_mst_out {
	char *p;
	size_t len, cap;
	size_t max;     /* 0: BCN_MST_MAX_OUT */
};
#define BCN_MST_MAX_OUT ((size_t)256 << 20)
/* Wipe and free the buffer; out is left empty and reusable. NULL-safe. */
void bcn_mst_out_free(struct bcn_mst_out *o);

/*
 * Render t with `data` as the root context, appending to out (which keeps
 * a NUL after len). 0 on success; -1 with a sentence in err when the output
 * would pass out->max, sections nest deeper than BCN_MST_MAX_DEPTH, or memory
 * runs out (out then holds a partial result the caller discards).
 */
#define BCN_MST_MAX_DEPTH 256
int bcn_mst_render(const struct bcn_mst *t, json_t *data, enum bcn_mst_escape esc,
		   struct bcn_mst_out *out, char *err, size_t errlen);

#endif
