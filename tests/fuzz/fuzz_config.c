/*
 * fuzz_config.c - the config loader: JSON text -> struct bcn_config, with
 * every plugin's config_map and cross-field check (agent/config/config.c,
 * cfgmap.c, cfgtext.c and each plugin's table), as `beacon --check-config`
 * and every start and reload run it.
 *
 * The loader takes a file name, so the input goes into a memfd and is read
 * back through /proc/self/fd. A load must either succeed with no problem
 * recorded or fail with at least one, each a non-empty sentence.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "plugin/plugin.h"
#include "fuzz_util.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_logs_on();
	setenv("FUZZ_A", "alpha", 1);
	setenv("PORT", "8080", 1);
	fd = memfd_create("beacon-config", MFD_CLOEXEC);
	if (fd < 0)
		fuzz_fail("memfd_create failed");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bcn_cfg_errs errs = { 0 };
	struct bcn_config *c;

	if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		fuzz_fail("cannot write the memfd");
	c = bcn_config_load(path, bcn_plugin_sections(), &errs);
	if (c && errs.n)
		fuzz_fail("a config loaded although %zu problem(s) were recorded", errs.n);
	if (!c && !errs.n)
		fuzz_fail("a config was refused without a problem recorded");
	for (size_t i = 0; i < errs.n; i++) {
		if (!errs.msg[i] || !errs.msg[i][0])
			fuzz_fail("problem %zu is empty", i);
	}
	bcn_config_free(c);
	bcn_cfg_errs_free(&errs);
	return 0;
}
