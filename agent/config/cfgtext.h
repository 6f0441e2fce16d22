/*
 * cfgtext.h - the wording of config problems, shared by cfgmap.c and the
 * cross-field rules (see cfgtext.c). Internal to the config code.
 */
#ifndef BCN_CFGTEXT_H
#define BCN_CFGTEXT_H

#include <jansson.h>
#include <stddef.h>

#include "config/cfgmap.h"

#define BCN_CFG_PATH_LEN 512  /* longer paths are cut, never overflowed */
#define BCN_CFG_QUOTE_LEN 256 /* a quoted value: 40 characters escaped (6 bytes at most each), quotes, "..." */
#define BCN_CFG_DESC_LEN 384  /* "a string <quote> (expanded to <quote>)" */

/* s as a JSON string literal in buf, cut after 40 characters (UTF-8 aware); returns buf. */
const char *bcn_cfg_quote(const char *s, char *buf, size_t len);
/* What v is, for "expected X, got <this>": "a string \"x\"", "a number 3", "an array"... */
const char *bcn_cfg_describe(const json_t *v, char *buf, size_t len);
/* A string value as found, plus what ${VAR} expansion made of it when that differs. */
const char *bcn_cfg_describe_expanded(const json_t *raw, const char *expanded, char *buf, size_t len);
/* out (BCN_CFG_PATH_LEN bytes) = parent.key, or parent["key"] when key is no identifier. */
void bcn_cfg_path_key_at(char *out, const char *parent, const char *key);
/* out (BCN_CFG_PATH_LEN bytes) = parent[i]. */
void bcn_cfg_path_index(char *out, const char *parent, size_t i);
/* The table key closest to an unknown key (a likely typo), or NULL. */
const char *bcn_cfg_suggest(const struct bcn_cfg_field *table, const char *key);

#endif
