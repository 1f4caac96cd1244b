/* hcm.h — Envoy's http_connection_manager for HTTP/1.1 downstreams, with
 * the router: accepts connections, parses requests, matches routes, forwards
 * to an upstream connection from the pool and streams both bodies with
 * backpressure.
 *
 * Buffer discipline (what makes it zero-copy and bounded): each direction
 * has one read buffer, owned by the side that reads it (downstream: the
 * kp_dconn; upstream: the kp_uconn). Payload spans are written to the other
 * side straight out of that buffer. While such a write is queued in the
 * kernel-blocked state, the buffer is pinned and reading from that side
 * stops; when the write completes, the buffer is compacted and reading
 * resumes. So a connection holds at most one buffer per direction, and a
 * slow reader on one side slows the writer on the other instead of growing
 * memory. */
#ifndef KP_HCM_H
#define KP_HCM_H

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "k_arena.h"
#include "k_list.h"
#include "stream_info.h"
#include "upstream.h"

struct kp_worker;
struct kp_stream;

struct kp_dconn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shutdown_req;
	struct k_list link; /* worker->conns */
	struct kp_worker *w;
	const struct kp_listener_cfg *lcfg;
	const struct kp_hcm_cfg *hcm;
	struct kp_rbuf in;
	struct kp_stream *stream; /* the request being served, HTTP/1: one */
	uint32_t head_seen;	  /* bytes of a partial head already scanned */
	uint32_t n_requests;
	uint64_t last_activity_ns;
	uint64_t conn_start_ns;
	uint64_t timer_due_ns; /* when dc->timer fires; 0: not armed */
	char remote[64], local[64];
	struct kp_wq out;	  /* response bytes (and local replies) */
	uv_write_t cont_req;	  /* "100 Continue" */
	uint64_t head_start_ns;	  /* first byte of a partial head */
	uint64_t linger_start_ns; /* FIN sent */
	uint8_t dispatching;	  /* dc_continue is on the stack */
	uint8_t redispatch;	  /* ... and must run once more */
	unsigned reading : 1;
	unsigned closing : 1;	 /* uv_close issued */
	unsigned lingering : 1;	 /* FIN sent, draining input before close */
	unsigned want_close : 1; /* close once the current response is out */
	unsigned peer_eof : 1;
	unsigned cont_busy : 1;
	uint8_t handles_open;
};

struct kp_stream {
	struct kp_dconn *dc;
	struct k_arena arena;
	struct k_h1_msg req;
	struct k_h1_msg resp;
	struct k_h1_body_dec req_body, resp_body;
	struct kp_stream_info si;
	const struct kp_route *route;
	struct kp_cluster_rt *cl;
	struct kp_pending pending;
	struct kp_uconn *u;
	char *up_head; /* request head for upstream, in the arena */
	uint32_t up_head_len;
	uint32_t resp_seen; /* bytes of a partial response head already scanned */
	char *down_head;    /* response head for downstream */
	uint32_t down_head_len;
	uint64_t route_deadline_ns; /* 0: none */
	uint64_t start_ns;
	enum { KP_OUT_LENGTH, KP_OUT_CHUNKED, KP_OUT_RAW_CLOSE, KP_OUT_NONE } down_framing;
	unsigned up_head_sent : 1;
	unsigned req_done : 1;	     /* whole request body read from downstream */
	unsigned req_sent : 1;	     /* ... and written to upstream */
	unsigned resp_head_done : 1; /* upstream response head parsed */
	unsigned resp_head_sent : 1; /* downstream response head queued */
	unsigned resp_done : 1;	     /* whole response queued downstream */
	unsigned local_reply : 1;
	unsigned retried : 1;
	unsigned up_eof : 1; /* upstream closed (ends a close-delimited body) */
	unsigned finished : 1;
	unsigned down_close_delimited : 1; /* HTTP/1.0 client, unknown length */
	char first_block[3072];		   /* the arena's first block */
};

/* Accept callback for a listener handle owned by worker w. */
void kp_hcm_on_accept(uv_stream_t *server, int status);
/* Worker is draining: close idle connections now, others after their
 * current response. */
void kp_hcm_drain(struct kp_worker *w);
/* Worker stops: close every connection now. */
void kp_hcm_close_all(struct kp_worker *w);

#endif
