/*
 * files.h - reading a template and its partials from disk, and what a
 * template's names mean in the data model (SPEC.md "Templates"), shared by
 * the agent's renderer and `beacon render`.
 *
 * Partials are files beside the template: `{{> name}}` reads
 * `<folder>/name.mustache`. A partial name holding "/" or starting with "."
 * is treated as missing (so a template cannot reach outside its folder).
 */
#ifndef BCN_TEMPLATE_FILES_H
#define BCN_TEMPLATE_FILES_H

#include <stddef.h>

#include "template/mustache.h"

/* Largest template or partial file read. */
#define BCN_TMPL_MAX_FILE ((size_t)4 << 20)

/* Read path (at most BCN_TMPL_MAX_FILE). A new bcn_zmalloc'd NUL-terminated
 * buffer, *len set; NULL with a sentence in err. Blocking: only at load. */
char *bcn_tmpl_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* A bcn_mst_loader reading partials from the folder `arg` (a char *). */
char *bcn_tmpl_load_partial(void *arg, const char *name, size_t *len, char *file, size_t filelen);

/* Parse the template at path (its partials beside it). NULL with *err set. */
struct bcn_mst *bcn_tmpl_parse_file(const char *path, struct bcn_mst_error *err);

/* What a name a template uses asks of the data model. */
enum bcn_tmpl_ref {
	BCN_REF_NONE,      /* not a root name (e.g. a field inside a section) */
	BCN_REF_NODE,      /* node */
	BCN_REF_SELF,      /* self[.field] */
	BCN_REF_SERVICES,  /* services */
	BCN_REF_SERVICE,   /* service.<name>: arg = name */
	BCN_REF_KEY,       /* key.<key>: arg = key without its leading '/' */
	BCN_REF_SECRET,    /* secret.<name>[.field]: arg = name */
};
/* Classify name; arg/arglen point into name. */
enum bcn_tmpl_ref bcn_tmpl_ref(const char *name, const char **arg, size_t *arglen);

#endif
