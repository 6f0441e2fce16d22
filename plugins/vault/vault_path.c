/*
 * vault_path.c - where a configured secret is read: the path after /v1/ for
 * KV v1, KV v2 (data/ after the mount) and a version pin. Pure string work
 * on configured and Vault-given paths, apart from the reading and refreshing
 * in vault_secret.c so the rules can be read (and tested) on their own.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault.h"

/* "secret/web/db" with kv_version 2 is read as "secret/data/web/db". */
char *vault_read_path(const struct vault_secret_conf *c)
{
	const char *p = c->path;
	char *out;
	size_t n;

	while (*p == '/')
		p++;
	n = strlen(p) + 64;
	out = malloc(n);
	if (!out)
		return NULL;
	if (c->kv_version == 2 && !strstr(p, "/data/")) {
		const char *slash = strchr(p, '/');
		int mount = slash ? (int)(slash - p) : (int)strlen(p);
		snprintf(out, n, "%.*s/data/%s", mount, p, slash ? slash + 1 : "");
	} else {
		snprintf(out, n, "%s", p);
	}
	if (c->version > 0)
		snprintf(out + strlen(out), n - strlen(out), "?version=%lld", (long long)c->version);
	return out;
}

/*
 * kv_version 0, as the Vault CLI and Vault Agent's templates (consul-template
 * vault_common.go isKVv2 / addPrefixToVKVPath) do it: GET
 * sys/internal/ui/mounts/<path> names the mount ("secret/", "team/kv/") and
 * its options.version. On KV v2, data/ goes right after the mount path unless
 * the path already has it there; anything else is read as written (a KV v1
 * path may well contain "/data/"). The mount path Vault gives may carry a
 * namespace the path does not: its leading parts are dropped until it is a
 * prefix of the path, as the CLI does. NULL when no mount path fits.
 */
char *vault_kv_path(const char *p, const char *mount, bool v2, int64_t pin)
{
	size_t n = strlen(p) + strlen(mount) + 48, ml;
	char *out = malloc(n);

	if (!out)
		return NULL;
	while (*mount == '/')
		mount++;
	ml = strlen(mount);
	while (ml && mount[ml - 1] == '/')
		ml--;
	while (ml && !(strncmp(p, mount, ml) == 0 && (p[ml] == '/' || p[ml] == '\0'))) {
		const char *slash = memchr(mount, '/', ml);

		if (!slash) {
			ml = 0;
			break;
		}
		ml -= (size_t)(slash + 1 - mount);
		mount = slash + 1;
	}
	if (!ml) {
		free(out);
		return NULL;
	}
	if (!v2 || strncmp(p + ml, "/data/", 6) == 0 || strcmp(p + ml, "/data") == 0)
		snprintf(out, n, "%s", p);
	else
		snprintf(out, n, "%.*s/data%s%s", (int)ml, p, p[ml] ? "" : "/", p + ml);
	if (pin > 0)
		snprintf(out + strlen(out), n - strlen(out), "?version=%lld", (long long)pin);
	return out;
}
