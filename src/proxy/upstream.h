/* upstream.h — per-worker cluster state: load balancing, connection pools
 * and circuit breakers.
 *
 * The pool hands a connected kp_uconn to a stream (the connection manager
 * in hcm.c), which then owns its reads and writes until it calls
 * kp_upstream_release. Pooled idle connections are watched for EOF so a
 * closed one is never handed out knowingly. */
#ifndef KP_UPSTREAM_H
#define KP_UPSTREAM_H

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "k_list.h"

struct kp_worker;
struct kp_stream;

struct kp_host_rt {
	const struct kp_endpoint *ep;
	struct k_list idle; /* kp_uconn.link */
	uint32_t n_active;  /* connections serving a stream or connecting */
};

struct kp_cluster_rt {
	const struct kp_cluster_cfg *cfg;
	struct kp_worker *w;
	struct kp_host_rt *hosts;
	uint32_t rr_next;
	uint32_t n_cx;	       /* open: connecting + idle + busy */
	uint32_t n_rq_active;  /* streams holding or waiting for a connection */
	struct k_list pending; /* kp_stream waiting for a connection slot */
	uint32_t n_pending;
};

/* A stream's place in a cluster's wait queue (embedded in the stream). */
struct kp_pending {
	struct k_list link;
	struct kp_stream *stream;
	struct kp_uconn *connecting; /* a connection being made for it */
	unsigned counted : 1;	     /* holds one of the cluster's max_requests */
};

enum kp_uconn_state { KP_U_CONNECTING, KP_U_IDLE, KP_U_BUSY, KP_U_CLOSING };

struct kp_uconn {
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	uv_timer_t timer; /* connect timeout, then pooled idle timeout */
	struct kp_cluster_rt *cl;
	struct kp_host_rt *host;
	struct k_list link; /* in host->idle while idle */
	enum kp_uconn_state state;
	struct kp_stream *stream; /* owner while CONNECTING/BUSY */
	struct kp_rbuf in;
	struct kp_wq out;	    /* request bytes */
	struct kp_pending *pending; /* while CONNECTING for a stream */
	uint32_t requests;	    /* served on this connection */
	uint64_t idle_iter;	    /* worker loop iteration it was pooled in */
	uint64_t idle_since_ms;	    /* loop time it was pooled */
	unsigned reused : 1;
	unsigned reading : 1; /* uv_read_start is in effect */
};

/* Called back by the pool when a stream's request gets a connection or
 * cannot get one (defined in hcm.c). */
void kp_stream_upstream_ready(struct kp_stream *s, struct kp_uconn *u);
/* ep: the host tried, or NULL; flags: KP_RF_* (UF, UO, UH); detail: words for x-kite-error (static
 * or valid until return). */
void kp_stream_upstream_failed(struct kp_stream *s, const struct kp_endpoint *ep, uint32_t flags,
			       int status, const char *detail);

/* The upstream connection's bytes, delivered to its stream (hcm.c). A
 * connection keeps one read callback for its life (toggling reads costs
 * epoll_ctl calls per request); these are what it calls while BUSY. */
void kp_stream_upstream_alloc(struct kp_stream *s, struct kp_uconn *u, uv_buf_t *buf);
void kp_stream_upstream_read(struct kp_stream *s, struct kp_uconn *u, ssize_t n);
/* Pause or resume reads (backpressure); idempotent. */
void kp_uconn_set_reading(struct kp_uconn *u, int on);

/* Set up cl for cfg on worker w. Returns 0 or K_ENOMEM. */
int kp_cluster_rt_init(struct kp_cluster_rt *cl, struct kp_worker *w,
		       const struct kp_cluster_cfg *cfg);
/* Close every pooled connection; busy ones are closed by their streams. */
void kp_cluster_rt_close(struct kp_cluster_rt *cl);

/* Ask for a connection for stream p->stream; p must stay valid until the
 * answer, which comes through kp_stream_upstream_ready or _failed, possibly
 * before this returns. */
void kp_upstream_acquire(struct kp_cluster_rt *cl, struct kp_pending *p);
/* The stream is done with the cluster: leave the wait queue, let a
 * connection being made for it go to the pool, give back its max_requests
 * slot. Idempotent; call once the connection (if any) was released. */
void kp_upstream_done(struct kp_cluster_rt *cl, struct kp_pending *p);
/* Give the connection back. reusable: the exchange finished cleanly on a
 * keep-alive connection; otherwise it is closed. The stream must not touch
 * u afterwards. */
void kp_upstream_release(struct kp_uconn *u, int reusable);

/* The cluster's stats base, for the stream's accounting. */
uint64_t *kp_upstream_stats(struct kp_cluster_rt *cl);

#endif
