/*
 * listeners.c - the agent's two listeners: the local API socket and the TCP
 * probe listener (http.listen), their options from the config, and fitting
 * their connection limits to the open file limit. Apart from agent.c because
 * it is the one place that decides how many descriptors clients may hold,
 * at start and again on reload.
 */
#include <limits.h>
#include <string.h>
#include <sys/resource.h>

#include "agent.h"
#include "config/config.h"
#include "http/server.h"

/*
 * The TCP probe listener (http.listen) may face the network (a pod listens on
 * 0.0.0.0 for the kubelet), so a flood of idle or trickling connections must
 * not starve the liveness probe: each connection gets one request, which must
 * arrive within the deadline, and the bound is high enough that a flood has
 * to open connections faster than PROBE_MAX_CONNECTIONS per deadline to keep
 * a probe waiting.
 */
#define PROBE_MAX_CONNECTIONS 1024
#define PROBE_DEADLINE_MS 3000

/* Descriptors kept free for everything that is not a client connection: the
 * loop's own, backend connections and watches, health checks, the config
 * file on reload, logs. */
#define FD_RESERVE_BASE 64
#define FD_RESERVE_PER_BACKEND 16

static void socket_opts(const struct bcn_config *c, struct bcn_server_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->unix_path = c->socket.path;
	o->unix_mode = c->socket.mode;
	o->unix_gid = c->socket.gid;
	o->max_connections = (int)c->socket.max_connections;
	o->max_header_size = (long)c->socket.max_header_size;
	o->max_body_size = (long)c->socket.max_body_size;
	o->timeout_ms = c->socket.timeout_ms;
}

static void probe_opts(const struct bcn_config *c, struct bcn_server_opts *o, int max_connections)
{
	socket_opts(c, o);
	o->unix_path = NULL;
	o->tcp_listen = c->http ? c->http->listen : NULL;
	o->max_connections = max_connections;
	o->deadline_ms = PROBE_DEADLINE_MS;
	o->close_after_answer = true;
}

/*
 * Every open connection is a descriptor. Connection limits beyond
 * RLIMIT_NOFILE would end in accept() failing with EMFILE (which server.c
 * only absorbs by pausing), so they are lowered to what fits next to a
 * reserve; the probe listener gets what the socket leaves, at least a
 * quarter of the room. Logged when the result changes (start, reload).
 */
static void fit_fd_limit(struct bcn_agent *a, const struct bcn_config *c, int want_probe,
			 int *sock_max, int *probe_max)
{
	long want_sock = (long)c->socket.max_connections, reserve, room, sock, probe;

	*sock_max = (int)want_sock;
	*probe_max = want_probe;
	if (a->nofile <= 0)
		return;
	reserve = FD_RESERVE_BASE + FD_RESERVE_PER_BACKEND * (long)c->ninstances;
	if (reserve > a->nofile / 2)
		reserve = a->nofile / 2;
	room = a->nofile - reserve;
	if (want_sock + want_probe <= room) {
		a->fd_capped_sock = a->fd_capped_probe = 0;
		return;
	}
	probe = room - want_sock > room / 4 ? room - want_sock : room / 4;
	if (probe > want_probe)
		probe = want_probe;
	sock = room - probe < want_sock ? room - probe : want_sock;
	if (sock < 1)
		sock = 1;
	*sock_max = (int)sock;
	*probe_max = (int)probe;
	if (sock == a->fd_capped_sock && probe == a->fd_capped_probe)
		return;
	a->fd_capped_sock = (int)sock;
	a->fd_capped_probe = (int)probe;
	if (want_probe)
		bcn_warn("agent", "the open file limit (RLIMIT_NOFILE) is %ld: serving at most %ld "
			 "connections on the socket (socket.max_connections is %ld) and %ld on "
			 "http.listen (of %d), keeping %ld descriptors for the rest; raise LimitNOFILE "
			 "to lift this", a->nofile, sock, want_sock, probe, want_probe, reserve);
	else
		bcn_warn("agent", "the open file limit (RLIMIT_NOFILE) is %ld: serving at most %ld "
			 "connections on the socket (socket.max_connections is %ld), keeping %ld "
			 "descriptors for the rest; raise LimitNOFILE to lift this",
			 a->nofile, sock, want_sock, reserve);
}

int bcn_agent_listeners_start(struct bcn_agent *a)
{
	struct bcn_server_opts o;
	char err[256];
	int sock_max, probe_max;

	fit_fd_limit(a, a->cfg, a->cfg->http ? PROBE_MAX_CONNECTIONS : 0, &sock_max, &probe_max);
	socket_opts(a->cfg, &o);
	o.max_connections = sock_max;
	o.cb = bcn_api_handle;
	o.arg = &a->api;
	a->sock = bcn_server_new(a->base, &o, err, sizeof(err));
	if (!a->sock) {
		bcn_error("agent", "%s", err);
		return -1;
	}
	if (a->cfg->http) {
		probe_opts(a->cfg, &o, probe_max);
		o.cb = bcn_api_handle_probe;
		o.arg = &a->api;
		a->tcp = bcn_server_new(a->base, &o, err, sizeof(err));
		if (!a->tcp) {
			bcn_error("agent", "%s", err);
			return -1;
		}
	}
	bcn_info("agent", "serving the local API on %s%s%s", a->cfg->socket.path,
		 a->cfg->http ? " and probes on " : "", a->cfg->http ? a->cfg->http->listen : "");
	return 0;
}

void bcn_agent_listeners_reload(struct bcn_agent *a, const struct bcn_config *nc)
{
	struct bcn_server_opts o;
	int sock_max, probe_max;

	fit_fd_limit(a, nc, a->tcp ? PROBE_MAX_CONNECTIONS : 0, &sock_max, &probe_max);
	socket_opts(nc, &o);
	o.max_connections = sock_max;
	bcn_server_set_limits(a->sock, &o);
	if (a->tcp) {
		probe_opts(nc, &o, probe_max);
		bcn_server_set_limits(a->tcp, &o);
	}
}

/*
 * Serving many connections needs many descriptors, and the soft limit is
 * often 1024 (the default max_connections) while the hard one is far higher:
 * take the hard one, as systemd advises for daemons that need it. Returns the
 * limit now in force, or -1 when there is none.
 */
long bcn_agent_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur != rl.rlim_max && rl.rlim_max != RLIM_INFINITY) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)INT_MAX)
		return -1;
	return (long)rl.rlim_cur;
}
