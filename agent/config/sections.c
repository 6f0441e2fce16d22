/*
 * sections.c - the sources' sections of the config file, for config.c. The
 * caller describes them (struct bcn_cfg_section, from each plugin's
 * descriptor), so no backend is named here: each section key gets a raw JSON
 * row in the top-level table, and each section present (or always made)
 * becomes one instance, filled by the section's own table and checked by its
 * own callbacks. Keys several backends share ("registry", "registries") pick
 * the section by the object's "backend" value. Messages and JSON paths are
 * those --check-config has always printed.
 */
#include "config/sections.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The section that owns `key` (the first one, for a key backends share), or
 * NULL when key is only a list form or unknown. */
static const struct bcn_cfg_section *section_of(const struct bcn_cfg_section *sections, const char *key)
{
	for (const struct bcn_cfg_section *s = sections; s && s->key; s++)
		if (strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

static json_t *section_json(const struct bcn_config *c, const char *key)
{
	for (size_t i = 0; key && i < c->nsection_keys; i++)
		if (strcmp(c->section_key[i], key) == 0)
			return c->section_json[i];
	return NULL;
}

static void add_section_key(struct bcn_config *c, const char *key)
{
	if (!key || c->nsection_keys == BCN_CFG_MAX_SECTION_KEYS)
		return;
	for (size_t i = 0; i < c->nsection_keys; i++)
		if (strcmp(c->section_key[i], key) == 0)
			return;
	c->section_key[c->nsection_keys++] = key;
}

void bcn_sections_top_table(struct bcn_config *c, const struct bcn_cfg_section *sections,
			    const struct bcn_cfg_field *base, struct bcn_cfg_field *top)
{
	size_t n = 0;

	for (const struct bcn_cfg_section *s = sections; s && s->key; s++) {
		add_section_key(c, s->key);
		add_section_key(c, s->list_key);
	}
	for (const struct bcn_cfg_field *f = base; f->key; f++)
		top[n++] = *f;
	for (size_t i = 0; i < c->nsection_keys; i++)
		top[n++] = (struct bcn_cfg_field){
			.key = c->section_key[i],
			.type = BCN_CFG_JSON,
			.offset = offsetof(struct bcn_config, section_json) + i * sizeof(json_t *),
		};
	top[n] = (struct bcn_cfg_field)BCN_ROW_END;
}

/*
 * Fill one instance from obj (minus `strip_key`, the selector such as
 * "backend" that belongs to the core), then run the section's own checks.
 */
static void add_instance(struct bcn_config *c, const struct bcn_cfg_section *sec, json_t *obj,
			 const char *strip_key, const char *path, struct bcn_cfg_errs *errs)
{
	struct bcn_instance_conf *ic, *v;
	json_t *copy = NULL;

	v = realloc(c->instances, (c->ninstances + 1) * sizeof(*v));
	if (!v) {
		bcn_cfg_err(errs, path, "out of memory");
		return;
	}
	c->instances = v;
	ic = &c->instances[c->ninstances];
	memset(ic, 0, sizeof(*ic));
	ic->plugin = sec->plugin;
	ic->section = sec;
	snprintf(ic->path, sizeof(ic->path), "%s", path);
	ic->conf = calloc(1, sec->size ? sec->size : 1);
	if (!ic->conf) {
		bcn_cfg_err(errs, path, "out of memory");
		return;
	}
	c->ninstances++;
	if (obj && strip_key) {
		copy = json_copy(obj);
		if (copy)
			json_object_del(copy, strip_key);
		obj = copy;
	}
	size_t before = errs->n;
	if (sec->fields)
		bcn_cfg_fill(sec->fields, obj, ic->conf, path, errs);
	if (errs->n == before && sec->check)
		sec->check(ic->conf, path, errs);
	if (errs->n == before && sec->check_service && c->service)
		sec->check_service(ic->conf, c->service, path, errs);
	json_decref(copy);
}

/* The backends sharing `key`, as `"a", "b"` (compiled in) and `"a" or "b"`
 * (the examples a missing "backend" is told about). */
static void backend_names(const struct bcn_cfg_section *sections, const char *key, char *list,
			  char *examples, size_t len)
{
	size_t n = 0, total = 0;

	list[0] = examples[0] = '\0';
	for (const struct bcn_cfg_section *s = sections; s->key; s++)
		total += s->list_key && strcmp(s->key, key) == 0;
	for (const struct bcn_cfg_section *s = sections; s->key; s++) {
		size_t l = strlen(list), e = strlen(examples);

		if (!s->list_key || strcmp(s->key, key) != 0)
			continue;
		snprintf(list + l, len - l, "%s%s", n ? ", " : "", s->name);
		snprintf(examples + e, len - e, "%s\"%s\"", n == 0 ? "" : n + 1 == total ? " or " : ", ",
			 s->name);
		n++;
	}
}

/* One object of a key backends share: its "backend" value picks the section. */
static void add_backend(struct bcn_config *c, const struct bcn_cfg_section *sections, const char *key,
			json_t *obj, const char *path, struct bcn_cfg_errs *errs)
{
	char bpath[64], names[256], examples[256];
	const struct bcn_cfg_section *sec = NULL;
	json_t *b;

	if (!json_is_object(obj)) {
		bcn_cfg_err(errs, path, "expected an object with a \"backend\" key");
		return;
	}
	snprintf(bpath, sizeof(bpath), "%s.backend", path);
	backend_names(sections, key, names, examples, sizeof(names));
	b = json_object_get(obj, "backend");
	if (!json_is_string(b)) {
		if (examples[0])
			bcn_cfg_err(errs, bpath, "missing required key (a %s backend such as %s)", key, examples);
		else
			bcn_cfg_err(errs, bpath, "missing required key (a %s backend; none is compiled in)", key);
		return;
	}
	for (const struct bcn_cfg_section *s = sections; s->key && !sec; s++)
		if (s->list_key && strcmp(s->key, key) == 0 && strcmp(s->name, json_string_value(b)) == 0)
			sec = s;
	if (!sec) {
		bcn_cfg_err(errs, bpath, "unknown %s backend \"%.40s\" (compiled in: %s)", key,
			    json_string_value(b), names[0] ? names : "none");
		return;
	}
	add_instance(c, sec, obj, "backend", path, errs);
}

/* "registry": {...} and/or "registries": [...] (both is refused in check_rules). */
static void add_backends(struct bcn_config *c, const struct bcn_cfg_section *sections,
			 const struct bcn_cfg_section *sec, struct bcn_cfg_errs *errs)
{
	json_t *one = section_json(c, sec->key), *list = section_json(c, sec->list_key), *r;
	char path[48], ipath[sizeof(path) + 24];
	size_t i;

	bcn_cfg_path_key(path, sizeof(path), "$", sec->key);
	if (one)
		add_backend(c, sections, sec->key, one, path, errs);
	if (!list)
		return;
	bcn_cfg_path_key(path, sizeof(path), "$", sec->list_key);
	if (!json_is_array(list) || json_array_size(list) == 0)
		bcn_cfg_err(errs, path, "expected a non-empty array of %s objects", sec->key);
	else if (json_array_size(list) > 16)
		bcn_cfg_err(errs, path, "at most 16 %s are supported", sec->list_key);
	else
		json_array_foreach(list, i, r) {
			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
			add_backend(c, sections, sec->key, r, ipath, errs);
		}
}

bool bcn_sections_have_registry(const struct bcn_config *c, const struct bcn_cfg_section *sections,
				const char **need)
{
	bool have = false;

	*need = "registry backend";
	for (const struct bcn_cfg_section *s = sections; s && s->key; s++) {
		if (!s->list_key)
			continue;
		*need = s->key;
		have |= section_json(c, s->key) || section_json(c, s->list_key);
	}
	return have;
}

void bcn_sections_check(const struct bcn_config *c, const struct bcn_cfg_section *sections,
			struct bcn_cfg_errs *errs)
{
	for (const struct bcn_cfg_section *s = sections; s && s->key; s++) {
		char path[48];

		if (!s->list_key || section_of(sections, s->key) != s ||
		    !section_json(c, s->key) || !section_json(c, s->list_key))
			continue;
		bcn_cfg_path_key(path, sizeof(path), "$", s->list_key);
		bcn_cfg_err(errs, path, "give either \"%s\" or \"%s\", not both", s->key, s->list_key);
	}
}

void bcn_sections_build(struct bcn_config *c, const struct bcn_cfg_section *sections,
			struct bcn_cfg_errs *errs)
{
	for (size_t k = 0; k < c->nsection_keys; k++) {
		const struct bcn_cfg_section *s = section_of(sections, c->section_key[k]);
		char path[48];

		if (!s) /* a list form, read with its key */
			continue;
		bcn_cfg_path_key(path, sizeof(path), "$", s->key);
		if (s->list_key)
			add_backends(c, sections, s, errs);
		else if (c->section_json[k] || s->always)
			add_instance(c, s, c->section_json[k], NULL, path, errs);
	}
}
