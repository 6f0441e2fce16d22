/*
 * sections.h - config.c's helper for the sources' sections (sections.c): the
 * top-level rows they add, the rules between them, and their instances.
 * Internal to agent/config; callers use bcn_config_load.
 */
#ifndef BCN_CONFIG_SECTIONS_H
#define BCN_CONFIG_SECTIONS_H

#include "config/config.h"

/* `base` (the core's rows), then one raw JSON row per section key, into top:
 * room for the base rows + BCN_CFG_MAX_SECTION_KEYS + 1. Records the keys in c. */
void bcn_sections_top_table(struct bcn_config *c, const struct bcn_cfg_section *sections,
			    const struct bcn_cfg_field *base, struct bcn_cfg_field *top);

/* Whether a registry ("registry"/"registries": the keys backends share) is
 * configured; *need is that key, for the messages of the rules needing one. */
bool bcn_sections_have_registry(const struct bcn_config *c, const struct bcn_cfg_section *sections,
				const char **need);

/* The rules between sections: a shared key in both forms is refused. */
void bcn_sections_check(const struct bcn_config *c, const struct bcn_cfg_section *sections,
			struct bcn_cfg_errs *errs);

/* One instance per section present (or always made), in the order the
 * sections' keys first appear; problems under each instance's JSON path. */
void bcn_sections_build(struct bcn_config *c, const struct bcn_cfg_section *sections,
			struct bcn_cfg_errs *errs);

#endif
