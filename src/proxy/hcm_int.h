/* hcm_int.h — what hcm.c (requests and responses) and hcm_conn.c
 * (connection lifecycle) share. Not for other modules: they use hcm.h. */
#ifndef KP_HCM_INT_H
#define KP_HCM_INT_H

#include "hcm.h"

#define HS(dc, f)   ((dc)->hcm->stats + (f))	/* http.<stat_prefix>.* slot */
#define LS(dc, f)   ((dc)->lcfg->stats + (f))	/* listener.<address>.* slot */
#define CS(s, f)    ((s)->cl->cfg->stats + (f)) /* cluster.<name>.* slot */
#define ARENA_LIMIT (1u << 20)			/* per-request arena */
/* The loop's cached clock (updated once per loop iteration, ms resolution):
 * timeouts and log durations are in ms, and reading the clock per event
 * showed in profiles. */
#define NOW(w)	  ((uint64_t)uv_now(&(w)->loop) * 1000000ull)
#define LINGER_MS 2000 /* how long a closing connection drains input */

/* ---- streams (hcm.c) ---- */

/* A stream for the request starting in dc's buffer; counted as a request.
 * NULL when out of memory. */
struct kp_stream *kp_hcm_stream_new(struct kp_dconn *dc);
/* The response is out (or the stream was aborted): account, log, free,
 * and move the connection on. Exactly once per stream; s is gone after. */
void kp_hcm_stream_finish(struct kp_stream *s);
/* The response cannot be completed: finish s with flags and close the
 * connection, the only signal left once a response has started. */
void kp_hcm_stream_abort(struct kp_stream *s, uint32_t flags);
/* Answer from the proxy itself; detail goes out as x-kite-error. */
void kp_hcm_local_reply(struct kp_stream *s, int status, uint32_t flags, const char *body,
			const char *detail);
/* Parse and start the next request if its head is in dc's buffer. */
void kp_hcm_next_request(struct kp_dconn *dc);
/* Move request bytes from the downstream buffer to the upstream. */
void kp_hcm_pump_request(struct kp_stream *s);
/* The client closed its side and the buffered bytes can't finish the body. */
int kp_hcm_request_truncated(const struct kp_stream *s);

/* ---- connections (hcm_conn.c) ---- */

/* After a request: start the next pipelined one, or close. */
void kp_hcm_conn_continue(struct kp_dconn *dc);
/* Start or stop reading from the client as buffer and backpressure allow. */
void kp_hcm_conn_update_reading(struct kp_dconn *dc);
/* Close now (finishing any stream as DC). Once per connection. */
void kp_hcm_conn_close(struct kp_dconn *dc);
/* FIN, then drain input for up to LINGER_MS before closing. */
void kp_hcm_conn_close_graceful(struct kp_dconn *dc);
/* Make the connection's timer fire no later than its next deadline. */
void kp_hcm_conn_arm_timer(struct kp_dconn *dc);

#endif
