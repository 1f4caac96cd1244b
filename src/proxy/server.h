/* server.h — the main thread: owns the config snapshot, the workers, the
 * admin listener, signals and the drain sequence. Everything here runs on
 * the main thread's loop unless a function says otherwise. */
#ifndef KP_SERVER_H
#define KP_SERVER_H

#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "config.h"

struct kp_worker;
struct kp_admin;

enum kp_server_state {
	KP_STATE_LIVE = 0, /* Envoy's server.state values */
	KP_STATE_DRAINING = 1,
	KP_STATE_PRE_INITIALIZING = 2,
	KP_STATE_INITIALIZING = 3,
};

struct kp_options {
	const char *config_path;
	uint32_t concurrency;  /* workers; default: number of cores */
	uint32_t drain_time_s; /* --drain-time-s, default 600 as Envoy */
	const char *log_level;
	int mode_validate; /* --mode validate: compile the config and exit */
};

struct kp_server {
	uv_loop_t *loop;
	struct kp_options opts;
	struct kp_config *config; /* the main thread's reference */
	struct kp_worker **workers;
	uint32_t n_workers;
	uint64_t *stats; /* main-thread shard: server.* gauges */
	struct kp_admin *admin;
	enum kp_server_state state;
	time_t start_time;
	uint64_t start_ns;
	uint64_t drain_start_ns;
	uv_signal_t sigterm, sigint;
	uv_timer_t drain_timer;
	uv_timer_t stats_timer;
	int exit_code;
	int shutting_down;
};

/* Sum of one stat slot over every worker shard and the main shard. */
uint64_t kp_server_stat(const struct kp_server *s, uint32_t slot);

/* Begin shutdown. drain != 0: stop accepting, let in-flight requests
 * finish for up to opts.drain_time_s, then exit (SIGTERM). drain == 0:
 * close everything now (/quitquitquit, SIGINT). Idempotent. */
void kp_server_shutdown(struct kp_server *s, int drain);

/* True once every listener is bound and every worker runs. */
int kp_server_ready(const struct kp_server *s);

/* Bind, start workers and admin, serve until shutdown. Takes the config
 * reference. Returns the process exit code. */
int kp_server_run(struct kp_server *s, struct kp_config *cfg);

/* Monotonic clock in nanoseconds. */
uint64_t kp_now_ns(void);

#endif
