/* worker.h — one worker thread: a libuv loop, its own SO_REUSEPORT
 * listening sockets, connections, upstream pools and stats shard. Workers
 * share nothing mutable; the main thread talks to them through uv_async. */
#ifndef KP_WORKER_H
#define KP_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "config.h"

struct kp_server;
struct kp_worker;

/* Create and start worker `id` with a reference to cfg, serving the bound,
 * not yet listening sockets listen_fds[i] for cfg->listeners[i] (it takes
 * ownership of them). Returns 0, or K_EIO/K_ENOMEM with err. */
int kp_worker_start(struct kp_server *srv, uint32_t id, struct kp_config *cfg,
		    const int *listen_fds, struct kp_worker **out, char *err, size_t errlen);

/* Ask the worker to stop accepting and close idle connections; active
 * requests finish and get "Connection: close". Thread-safe. */
void kp_worker_drain(struct kp_worker *w);
/* Ask the worker to close everything and exit its loop. Thread-safe. */
void kp_worker_stop(struct kp_worker *w);
/* Join the thread and free the worker. Main thread only, after stop. */
void kp_worker_join(struct kp_worker *w);

/* The worker's stats shard (read with kp_stat_get from any thread). */
const uint64_t *kp_worker_stats(const struct kp_worker *w);
/* Active downstream requests + connections; the drain waits for 0. */
uint64_t kp_worker_active(const struct kp_worker *w);

/* ---- worker internals, shared by worker.c, hcm.c and upstream.c ---- */
#include "buf.h"
#include "k_list.h"
#include "k_pool.h"

struct kp_cluster_rt;

struct kp_listen {
	uv_tcp_t tcp;
	struct kp_worker *w;
	const struct kp_listener_cfg *cfg;
	uint32_t index;
};

struct kp_log_buf {
	int fd;
	char *data;
	uint32_t len, cap;
};

struct kp_worker {
	uint32_t id;
	struct kp_server *srv;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t async;
	uv_timer_t tick;      /* 1 s: flush access logs, lazy timers */
	uv_prepare_t prepare; /* counts loop iterations */
	uint64_t iter;
	int cmd; /* pending command, atomic: KP_CMD_* bits */
	struct kp_config *cfg;
	uint64_t *stats;
	struct kp_listen *listens;
	uint32_t n_listens;
	struct kp_cluster_rt *clusters;
	struct kp_buf_pool bufs;
	struct k_pool dconn_pool, stream_pool, uconn_pool;
	struct k_list conns; /* all downstream connections */
	uint64_t n_conns;    /* atomic read by the main thread */
	uint64_t n_streams;
	struct k_h1_header *hdr_scratch; /* parse space: max max_headers of any listener */
	uint32_t hdr_scratch_cap;
	uv_tcp_t reject; /* accepts and drops connections when out of memory */
	int reject_busy;
	int draining;
	int stopping;
	uint64_t rng[2];	   /* request ids; per-worker, no locking */
	struct kp_log_buf logs[3]; /* stdout, stderr, one file (see access logs) */
	struct kp_log_buf *file_logs;
	uint32_t n_file_logs;
};

enum { KP_CMD_DRAIN = 1, KP_CMD_STOP = 2 };

/* Random 64 bits from the worker's generator (xorshift128+). */
uint64_t kp_worker_rand(struct kp_worker *w);
/* Append one access-log line; flushed on the tick, when large, and at exit. */
void kp_worker_log(struct kp_worker *w, int sink, const char *path, const char *line, size_t len);
/* A downstream connection closed: lets a draining worker finish. */
void kp_worker_conn_gone(struct kp_worker *w);
#endif
