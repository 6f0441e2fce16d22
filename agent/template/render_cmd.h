/*
 * render_cmd.h - `beacon render` (render_cmd.c), dispatched by main.c.
 */
#ifndef BCN_RENDER_CMD_H
#define BCN_RENDER_CMD_H

/* argv[0] is "render". Returns the exit code: 0, 1 (agent unreachable,
 * render failed), 2 (usage, template or data file error). */
int bcn_render_cmd(int argc, char **argv);

#endif
