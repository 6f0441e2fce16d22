/*
 * mustache_internal.h - the parsed form of a template, shared by the parser
 * (mustache_parse.c) and the renderer (mustache_render.c) only.
 *
 * A template is one flat array of nodes in source order; a section node
 * records the index just past its children, so rendering is a loop over an
 * index range and skipping a false section is one assignment. Text nodes
 * and names point into the template's own copy of its source (a name is
 * NUL-terminated in place: the byte after it belongs to the tag, never to text).
 *
 * Slots: every {{#section}} lists the distinct first parts of the names its
 * own body looks up (its direct children, and those of {{^inverted}}
 * sections in it, which push nothing), and each such node knows its slot.
 * When the section pushes an object the renderer walks that object's keys
 * once and fills all its slots, instead of searching the object again for
 * every name of every item: over a list of 100 000 endpoints that search was
 * most of the render time.
 */
#ifndef BCN_MUSTACHE_INTERNAL_H
#define BCN_MUSTACHE_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "template/mustache.h"

enum mst_type {
	MST_TEXT,      /* literal bytes */
	MST_VAR,       /* {{name}}: escaped as the render asks */
	MST_RAW,       /* {{{name}}} / {{&name}}: never escaped */
	MST_SECTION,   /* {{#name}} ... {{/name}} */
	MST_INVERTED,  /* {{^name}} ... {{/name}} */
	MST_PARTIAL,   /* {{>name}}: another parsed template (NULL: missing, renders empty) */
};

#define MST_MAX_SLOTS 16          /* names past this many are looked up as before */

struct mst_node {
	uint8_t type;
	uint8_t slot;             /* names: 1 + slot in the enclosing section's list; 0 none */
	uint8_t nslot;            /* MST_SECTION: how many slots its body uses */
	uint32_t slot0;           /* MST_SECTION: its first entry in bcn_mst.slots */
	uint32_t end;             /* sections: index past the last child */
	const char *s;            /* text bytes, or the name (NUL-terminated, dotted as written) */
	size_t len;
	size_t first;             /* names: length of the part before the first dot */
	struct bcn_mst *partial;  /* MST_PARTIAL */
	unsigned line, col;       /* where the tag starts (error messages) */
};

/* Partials parsed for one root template, by (name, indentation). */
#define MST_MAX_PARTIALS 64
struct mst_shared {
	struct bcn_mst *partial[MST_MAX_PARTIALS];
	char *key[MST_MAX_PARTIALS];   /* name "\n" indentation */
	size_t n;
	json_t *names;                 /* object used as an ordered set */
};

/* A slot's name: the first part of a dotted name (not NUL-terminated). */
struct mst_slot {
	const char *name;
	size_t len;
};

struct bcn_mst {
	struct mst_node *nodes;
	size_t n, cap;
	struct mst_slot *slots;   /* every section's slot names, by slot0 */
	size_t nslots;
	char *src;                /* the (indented) source text nodes point into */
	size_t srclen;
	struct mst_shared *shared;
	int is_root;              /* owns shared */
};

#endif
