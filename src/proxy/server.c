/* server.c — the main thread: binds listeners, starts workers and the
 * admin server, keeps server.* gauges, and runs shutdown and drain. */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "k_log.h"
#include "server.h"
#include "worker.h"

uint64_t kp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t kp_server_stat(const struct kp_server *s, uint32_t slot)
{
	uint64_t v = kp_stat_get(s->stats, slot);
	for (uint32_t i = 0; i < s->n_workers; i++)
		v += kp_stat_get(kp_worker_stats(s->workers[i]), slot);
	return v;
}

int kp_server_ready(const struct kp_server *s)
{
	return s->n_workers == s->opts.concurrency && s->state == KP_STATE_LIVE;
}

static int bind_socket(const struct sockaddr *sa, socklen_t len, char *err, size_t errlen,
		       const char *what)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	int one = 1;
	/* SO_REUSEPORT gives each worker its own accept queue: the kernel
	 * spreads connections, no lock or thundering herd between workers. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, len) < 0)
		goto fail;
	return fd;
fail:;
	char a[64];
	kp_sockaddr_str(sa, a, sizeof(a));
	snprintf(err, errlen, "cannot bind %s %s: %s", what, a, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void update_server_stats(struct kp_server *s)
{
	uint32_t b = s->config->server_stats;
	kp_stat_set(s->stats, b + live, s->state == KP_STATE_LIVE);
	kp_stat_set(s->stats, b + state, (uint64_t)s->state);
	kp_stat_set(s->stats, b + uptime, (uint64_t)(time(NULL) - s->start_time));
	kp_stat_set(s->stats, b + concurrency, s->opts.concurrency);
	struct mallinfo2 mi = mallinfo2();
	kp_stat_set(s->stats, b + memory_allocated, mi.uordblks + mi.hblkhd);
	kp_stat_set(s->stats, b + memory_physical_size, mi.arena + mi.hblkhd);
	uint64_t conns = 0;
	for (uint32_t i = 0; i < s->n_workers; i++)
		conns += kp_worker_active(s->workers[i]);
	kp_stat_set(s->stats, b + total_connections, conns);
}

static void stats_timer_cb(uv_timer_t *t)
{
	update_server_stats(t->data);
}

static void finish_shutdown(struct kp_server *s)
{
	for (uint32_t i = 0; i < s->n_workers; i++)
		kp_worker_stop(s->workers[i]);
	if (s->admin) {
		kp_admin_close(s->admin);
		s->admin = NULL;
	}
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->drain_timer, NULL);
	uv_close((uv_handle_t *)&s->stats_timer, NULL);
}

static void drain_timer_cb(uv_timer_t *t)
{
	struct kp_server *s = t->data;
	uint64_t active = 0;
	for (uint32_t i = 0; i < s->n_workers; i++)
		active += kp_worker_active(s->workers[i]);
	uint64_t waited_ms = (kp_now_ns() - s->drain_start_ns) / 1000000;
	if (active == 0 || waited_ms >= (uint64_t)s->opts.drain_time_s * 1000) {
		if (active)
			k_warn("drain time (%us) over with %llu connections open; closing them",
			       s->opts.drain_time_s, (unsigned long long)active);
		else
			k_info("drained: all connections closed");
		uv_timer_stop(t);
		finish_shutdown(s);
	}
}

void kp_server_shutdown(struct kp_server *s, int drain)
{
	if (s->shutting_down >= (drain ? 1 : 2))
		return;
	if (!drain) {
		s->shutting_down = 2;
		s->state = KP_STATE_DRAINING;
		k_info("shutting down");
		uv_timer_stop(&s->drain_timer);
		finish_shutdown(s);
		return;
	}
	s->shutting_down = 1;
	s->state = KP_STATE_DRAINING;
	s->drain_start_ns = kp_now_ns();
	k_info("draining: listeners closed, waiting up to %us for in-flight requests",
	       s->opts.drain_time_s);
	for (uint32_t i = 0; i < s->n_workers; i++)
		kp_worker_drain(s->workers[i]);
	uv_timer_start(&s->drain_timer, drain_timer_cb, 20, 50);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct kp_server *s = h->data;
	k_info("received %s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	/* SIGTERM drains (what Kubernetes sends before SIGKILL); a second
	 * signal or SIGINT stops at once. */
	kp_server_shutdown(s, signum == SIGTERM && !s->shutting_down);
}

int kp_server_run(struct kp_server *s, struct kp_config *cfg)
{
	char err[512];
	s->loop = uv_default_loop();
	s->config = cfg;
	s->state = KP_STATE_INITIALIZING;
	s->start_time = time(NULL);
	s->start_ns = kp_now_ns();
	s->stats = calloc(cfg->stats.n ? cfg->stats.n : 1, sizeof(uint64_t));
	s->workers = calloc(s->opts.concurrency, sizeof(*s->workers));
	int *fds = calloc((size_t)s->opts.concurrency * (cfg->n_listeners + 1), sizeof(int));
	/* Signals first: a SIGTERM that arrives while listeners are already
	 * accepting must drain, not kill with the default action. It is
	 * handled once the loop runs. */
	uv_signal_init(s->loop, &s->sigterm);
	uv_signal_init(s->loop, &s->sigint);
	s->sigterm.data = s->sigint.data = s;
	uv_signal_start(&s->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&s->sigint, signal_cb, SIGINT);
	uv_timer_init(s->loop, &s->drain_timer);
	uv_timer_init(s->loop, &s->stats_timer);
	s->drain_timer.data = s->stats_timer.data = s;

	if (!s->stats || !s->workers || !fds) {
		k_error("out of memory");
		return 1;
	}
	/* Bind every worker's socket before any worker runs, so a taken port
	 * fails startup with a clear message instead of a half-up proxy. A
	 * listener on port 0 gets its port from the first bind. */
	for (uint32_t l = 0; l < cfg->n_listeners; l++) {
		struct kp_listener_cfg *lc = &cfg->listeners[l];
		for (uint32_t w = 0; w < s->opts.concurrency; w++) {
			int fd = bind_socket((struct sockaddr *)&lc->addr, lc->addrlen, err,
					     sizeof(err), "listener");
			if (fd < 0) {
				k_error("listener '%s': %s", lc->name, err);
				return 1;
			}
			fds[w * cfg->n_listeners + l] = fd;
			if (w == 0) {
				socklen_t len = sizeof(lc->addr);
				getsockname(fd, (struct sockaddr *)&lc->addr, &len);
				kp_sockaddr_str((struct sockaddr *)&lc->addr, lc->addr_str,
						sizeof(lc->addr_str));
			}
		}
	}
	if (cfg->has_admin) {
		if (kp_admin_start(s, (struct sockaddr *)&cfg->admin_addr, &s->admin, err,
				   sizeof(err))) {
			k_error("admin: %s", err);
			return 1;
		}
	}
	for (uint32_t w = 0; w < s->opts.concurrency; w++) {
		if (kp_worker_start(s, w, cfg, &fds[w * cfg->n_listeners], &s->workers[w], err,
				    sizeof(err))) {
			k_error("%s", err);
			return 1;
		}
		s->n_workers++;
	}
	free(fds);
	uv_timer_start(&s->stats_timer, stats_timer_cb, 0, 1000);
	s->state = KP_STATE_LIVE;
	/* Decoding the bootstrap left free heap pages behind; a sidecar's
	 * idle footprint is a feature, so hand them back now. */
	malloc_trim(0);
	for (uint32_t l = 0; l < cfg->n_listeners; l++)
		k_info("listener '%s' on %s", cfg->listeners[l].name, cfg->listeners[l].addr_str);
	if (s->admin)
		k_info("admin on %s", kp_admin_address(s->admin));
	k_info("kite-proxy live: %u workers, %u listeners, %u clusters", s->n_workers,
	       cfg->n_listeners, cfg->n_clusters);
	uv_run(s->loop, UV_RUN_DEFAULT);

	for (uint32_t w = 0; w < s->n_workers; w++)
		kp_worker_join(s->workers[w]);
	for (uint32_t w = 0; w < s->n_workers; w++) {
		free((void *)kp_worker_stats(s->workers[w]));
		free(s->workers[w]);
	}
	free(s->workers);
	free(s->stats);
	uv_loop_close(s->loop);
	k_info("exit");
	return s->exit_code;
}
