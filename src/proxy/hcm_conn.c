/* hcm_conn.c — the downstream connection's life: accept, reading with
 * backpressure, moving on to the next pipelined request, timeouts, and the
 * lingering close. The request/response logic is in hcm.c. */
#include <stdio.h>

#include "hcm.h"
#include "hcm_int.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

/* Move the connection on after a request: start the next pipelined one, or
 * close. It loops rather than recursing, because a request answered on the
 * spot (a local reply) finishes its stream inside kp_hcm_next_request, which
 * lands back here: a buffer of pipelined 404s must not become a stack of
 * frames. */
void kp_hcm_conn_continue(struct kp_dconn *dc)
{
	if (dc->dispatching) {
		dc->redispatch = 1;
		return;
	}
	dc->dispatching = 1;
	do {
		dc->redispatch = 0;
		if (dc->closing || dc->lingering || dc->stream)
			break;
		if (dc->want_close) {
			kp_hcm_conn_close_graceful(dc);
			break;
		}
		kp_hcm_next_request(dc);
	} while (dc->redispatch);
	dc->dispatching = 0;
	if (dc->closing || dc->lingering)
		return;
	if (!dc->stream && dc->peer_eof) {
		/* The client half-closed and every pipelined request is answered. */
		kp_hcm_conn_close(dc);
		return;
	}
	kp_hcm_conn_update_reading(dc);
	kp_hcm_conn_arm_timer(dc);
}

/* ---------------------------------------------------------- connections */

static void dc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct kp_dconn *dc = h->data;
	uint32_t want = dc->stream ? KP_BUF_SIZE : dc->hcm->limits.max_head_bytes + 1;
	int room = kp_rbuf_make_room(&dc->w->bufs, &dc->in, want);
	if (room <= 0) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = dc->in.data + dc->in.end;
	buf->len = (size_t)room;
}

static void dc_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct kp_dconn *dc = st->data;
	if (n == 0)
		return;
	if (n == UV_ENOBUFS) {
		uv_read_stop(st);
		dc->reading = 0;
		return;
	}
	if (n > 0) {
		dc->last_activity_ns = NOW(dc->w);
		kp_stat_add(dc->w->stats, HS(dc, downstream_cx_rx_bytes_total), (uint64_t)n);
		if (dc->lingering) {
			kp_rbuf_release(&dc->w->bufs, &dc->in);
			return;
		}
		dc->in.end += (uint32_t)n;
		struct kp_stream *s = dc->stream;
		if (!s) {
			kp_hcm_conn_continue(dc);
			return;
		}
		if (!s->req_done)
			kp_hcm_pump_request(s);
		if (!dc->closing)
			kp_hcm_conn_update_reading(dc);
		return;
	}
	/* EOF or error from the client. */
	uv_read_stop(st);
	dc->reading = 0;
	dc->peer_eof = 1;
	if (dc->lingering) {
		kp_hcm_conn_close(dc);
		return;
	}
	struct kp_stream *s = dc->stream;
	if (s && n == UV_EOF) {
		/* Half-close: answer what was asked, then close. The rest of
		 * the body may still sit in the buffer waiting for upstream;
		 * kp_hcm_pump_request notices if it really ends short. */
		if (s->req_done)
			return;
		if (s->u)
			kp_hcm_pump_request(s);
		else if (kp_hcm_request_truncated(s))
			kp_hcm_stream_abort(s, KP_RF_DC);
		return;
	}
	if (s) {
		kp_hcm_stream_abort(s, KP_RF_DC);
		return;
	}
	kp_hcm_conn_close(dc);
}

void kp_hcm_conn_update_reading(struct kp_dconn *dc)
{
	struct kp_stream *s = dc->stream;
	int want = !dc->closing && !dc->peer_eof;
	if (want && s && s->u && s->u->out.busy)
		want = 0; /* the buffer is pinned by a queued upstream write */
	if (want && dc->in.data && dc->in.end == dc->in.cap && dc->in.start == 0 &&
	    (s || dc->in.cap > dc->hcm->limits.max_head_bytes))
		want = 0; /* full: wait for the stream to consume */
	if (want && !s && dc->want_close)
		want = 0;
	if (want && !dc->reading) {
		if (uv_read_start((uv_stream_t *)&dc->tcp, dc_alloc, dc_read) == 0)
			dc->reading = 1;
	} else if (!want && dc->reading) {
		uv_read_stop((uv_stream_t *)&dc->tcp);
		dc->reading = 0;
	}
}

static void dc_freed(uv_handle_t *h)
{
	struct kp_dconn *dc = h->data;
	if (--dc->handles_open)
		return;
	struct kp_worker *w = dc->w;
	k_pool_put(&w->dconn_pool, dc);
	kp_worker_conn_gone(w);
}

void kp_hcm_conn_close(struct kp_dconn *dc)
{
	if (dc->closing)
		return;
	struct kp_worker *w = dc->w;
	if (dc->stream) {
		struct kp_stream *s = dc->stream;
		s->si.response_flags |= KP_RF_DC;
		dc->closing = 1; /* kp_hcm_stream_finish must not re-enter */
		kp_hcm_stream_finish(s);
	}
	dc->closing = 1;
	k_list_del(&dc->link);
	kp_stat_dec(w->stats, HS(dc, downstream_cx_active));
	kp_stat_inc(w->stats, HS(dc, downstream_cx_destroy));
	kp_stat_dec(w->stats, LS(dc, listener_downstream_cx_active));
	kp_stat_inc(w->stats, LS(dc, listener_downstream_cx_destroy));
	kp_rbuf_release(&w->bufs, &dc->in);
	uv_close((uv_handle_t *)&dc->tcp, dc_freed);
	uv_close((uv_handle_t *)&dc->timer, dc_freed);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct kp_dconn *dc = req->data;
	if (dc->closing)
		return;
	if (status < 0 || dc->peer_eof) {
		kp_hcm_conn_close(dc);
		return;
	}
	/* Lingering close: read and discard until the client closes (or the
	 * linger time passes) so unread input doesn't turn our close into a
	 * RST that destroys the response in flight. */
	dc->lingering = 1;
	dc->last_activity_ns = NOW(dc->w);
	kp_rbuf_release(&dc->w->bufs, &dc->in);
	if (!dc->reading && uv_read_start((uv_stream_t *)&dc->tcp, dc_alloc, dc_read) == 0)
		dc->reading = 1;
	kp_hcm_conn_arm_timer(dc);
}

void kp_hcm_conn_close_graceful(struct kp_dconn *dc)
{
	if (dc->closing || dc->lingering)
		return;
	if (dc->stream) {
		dc->want_close = 1;
		return;
	}
	dc->shutdown_req.data = dc;
	dc->lingering = 1; /* no more requests from here on */
	dc->linger_start_ns = NOW(dc->w);
	if (uv_shutdown(&dc->shutdown_req, (uv_stream_t *)&dc->tcp, shutdown_cb) < 0)
		kp_hcm_conn_close(dc);
}

static uint64_t ms_ns(uint64_t ms)
{
	return ms * 1000000ull;
}

/* Earliest deadline for this connection in its current state; 0: none.
 * *why says which one. */
enum dl_kind {
	DL_NONE,
	DL_IDLE,
	DL_HEADERS,
	DL_STREAM_IDLE,
	DL_ROUTE,
	DL_REQUEST,
	DL_LINGER,
	DL_MAX_DURATION,
};

static uint64_t dc_deadline(struct kp_dconn *dc, enum dl_kind *why)
{
	const struct kp_hcm_cfg *h = dc->hcm;
	uint64_t dl = 0;
	*why = DL_NONE;
#define CONSIDER(t, k)                                                                             \
	do {                                                                                       \
		uint64_t t_ = (t);                                                                 \
		if (t_ && (!dl || t_ < dl)) {                                                      \
			dl = t_;                                                                   \
			*why = (k);                                                                \
		}                                                                                  \
	} while (0)
	if (dc->lingering) {
		/* Absolute: a client that keeps sending must not keep us. */
		CONSIDER(dc->linger_start_ns + ms_ns(LINGER_MS), DL_LINGER);
		return dl;
	}
	if (h->max_connection_duration_ms && !dc->want_close)
		CONSIDER(dc->conn_start_ns + ms_ns(h->max_connection_duration_ms), DL_MAX_DURATION);
	struct kp_stream *s = dc->stream;
	if (s) {
		/* A route's idle_timeout overrides the connection manager's. */
		uint64_t idle = h->stream_idle_timeout_ms;
		if (s->route && s->route->idle_timeout_ms != KP_TIMEOUT_UNSET)
			idle = s->route->idle_timeout_ms;
		if (idle)
			CONSIDER(dc->last_activity_ns + ms_ns(idle), DL_STREAM_IDLE);
		if (s->route_deadline_ns && !s->resp_done)
			CONSIDER(s->route_deadline_ns, DL_ROUTE);
		if (h->request_timeout_ms && !s->resp_head_sent)
			CONSIDER(s->start_ns + ms_ns(h->request_timeout_ms), DL_REQUEST);
	} else if (dc->head_seen || kp_rbuf_len(&dc->in)) {
		if (h->stream_idle_timeout_ms)
			CONSIDER(dc->last_activity_ns + ms_ns(h->stream_idle_timeout_ms),
				 DL_STREAM_IDLE);
		if (h->request_headers_timeout_ms && dc->head_seen)
			CONSIDER(dc->head_start_ns + ms_ns(h->request_headers_timeout_ms),
				 DL_HEADERS);
	} else if (h->idle_timeout_ms) {
		CONSIDER(dc->last_activity_ns + ms_ns(h->idle_timeout_ms), DL_IDLE);
	}
#undef CONSIDER
	return dl;
}

static void dc_timer_cb(uv_timer_t *t);

/* Deadlines move on every request, but re-arming a libuv timer costs a
 * heap operation; so the timer is only moved earlier. When it fires early
 * the callback finds the real deadline and re-arms. */
void kp_hcm_conn_arm_timer(struct kp_dconn *dc)
{
	if (dc->closing)
		return;
	enum dl_kind why;
	uint64_t dl = dc_deadline(dc, &why);
	if (!dl || (dc->timer_due_ns && dc->timer_due_ns <= dl))
		return;
	uint64_t now = NOW(dc->w);
	uint64_t ms = dl > now ? (dl - now + 999999) / 1000000 : 0;
	dc->timer_due_ns = now + ms * 1000000ull;
	uv_timer_start(&dc->timer, dc_timer_cb, ms, 0);
}

static void dc_timer_cb(uv_timer_t *t)
{
	struct kp_dconn *dc = t->data;
	struct kp_worker *w = dc->w;
	enum dl_kind why;
	dc->timer_due_ns = 0;
	uint64_t dl = dc_deadline(dc, &why);
	if (!dl)
		return;
	if (dl > NOW(w)) {
		kp_hcm_conn_arm_timer(dc); /* activity moved the deadline */
		return;
	}
	struct kp_stream *s = dc->stream;
	char detail[256];
	switch (why) {
	case DL_NONE: return;
	case DL_LINGER: kp_hcm_conn_close(dc); return;
	case DL_MAX_DURATION:
		/* Finish the request in flight with "connection: close". */
		dc->want_close = 1;
		if (!s)
			kp_hcm_conn_close_graceful(dc);
		else
			kp_hcm_conn_arm_timer(dc);
		return;
	case DL_IDLE:
		kp_stat_inc(w->stats, HS(dc, downstream_cx_idle_timeout));
		kp_hcm_conn_close_graceful(dc);
		return;
	case DL_HEADERS:
	case DL_STREAM_IDLE:
		if (!s) {
			/* A partial head that stopped arriving. */
			kp_stat_inc(w->stats, why == DL_HEADERS
						      ? HS(dc, downstream_rq_header_timeout)
						      : HS(dc, downstream_rq_idle_timeout));
			s = kp_hcm_stream_new(dc);
			if (!s) {
				kp_hcm_conn_close(dc);
				return;
			}
			s->req_done = 1;
			dc->in.start = dc->in.end;
			dc->want_close = 1;
			kp_hcm_local_reply(s, 408, why == DL_HEADERS ? 0 : KP_RF_SI,
					   "request timeout\n",
					   "request headers not received in time");
			return;
		}
		kp_stat_inc(w->stats, HS(dc, downstream_rq_idle_timeout));
		snprintf(detail, sizeof(detail),
			 "stream idle timeout: no bytes in either direction for %llu ms",
			 (unsigned long long)dc->hcm->stream_idle_timeout_ms);
		kp_hcm_local_reply(s, s->req_done ? 504 : 408, KP_RF_SI, "stream timeout\n",
				   detail);
		return;
	case DL_ROUTE:
		kp_stat_inc(w->stats, CS(s, upstream_rq_timeout));
		snprintf(detail, sizeof(detail),
			 "upstream request timeout: no complete response from %s within %llu ms "
			 "(route timeout, cluster %s)",
			 s->si.upstream_host ? s->si.upstream_host : "any host",
			 (unsigned long long)s->route->timeout_ms, s->cl ? s->cl->cfg->name : "-");
		kp_hcm_local_reply(s, 504, KP_RF_UT, "upstream request timeout\n", detail);
		return;
	case DL_REQUEST:
		kp_stat_inc(w->stats, HS(dc, downstream_rq_timeout));
		snprintf(detail, sizeof(detail),
			 "request timeout: the request was not answered within %llu ms "
			 "(request_timeout)",
			 (unsigned long long)dc->hcm->request_timeout_ms);
		kp_hcm_local_reply(s, 408, KP_RF_DT, "request timeout\n", detail);
		return;
	}
}

static void reject_closed(uv_handle_t *h)
{
	struct kp_worker *w = h->data;
	w->reject_busy = 0;
}

/* Out of memory for a connection: take it and close it at once. libuv
 * stops watching a listener whose pending connection is never accepted,
 * so leaving it would stop this worker accepting for good. */
static void reject_connection(uv_stream_t *server, struct kp_worker *w)
{
	if (w->reject_busy)
		return;
	w->reject_busy = 1;
	uv_tcp_init(&w->loop, &w->reject);
	w->reject.data = w;
	uv_accept(server, (uv_stream_t *)&w->reject);
	uv_close((uv_handle_t *)&w->reject, reject_closed);
}

void kp_hcm_on_accept(uv_stream_t *server, int status)
{
	struct kp_listen *l = server->data;
	struct kp_worker *w = l->w;
	if (status < 0 || w->draining || w->stopping)
		return;
	struct kp_dconn *dc = k_pool_get(&w->dconn_pool);
	if (!dc) {
		reject_connection(server, w);
		return;
	}
	memset(dc, 0, sizeof(*dc));
	dc->w = w;
	dc->lcfg = l->cfg;
	dc->hcm = &l->cfg->hcm;
	uv_tcp_init(&w->loop, &dc->tcp);
	uv_timer_init(&w->loop, &dc->timer);
	dc->handles_open = 2;
	dc->tcp.data = dc->timer.data = dc;
	k_list_init(&dc->link);
	if (uv_accept(server, (uv_stream_t *)&dc->tcp) < 0) {
		dc->closing = 1;
		uv_close((uv_handle_t *)&dc->tcp, dc_freed);
		uv_close((uv_handle_t *)&dc->timer, dc_freed);
		__atomic_add_fetch(
			&w->n_conns, 1,
			__ATOMIC_RELAXED); /* dc_freed's kp_worker_conn_gone balances this */
		return;
	}
	uv_tcp_nodelay(&dc->tcp, 1);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(&dc->tcp, (struct sockaddr *)&ss, &len) == 0)
		kp_sockaddr_str((struct sockaddr *)&ss, dc->remote, sizeof(dc->remote));
	len = sizeof(ss);
	if (uv_tcp_getsockname(&dc->tcp, (struct sockaddr *)&ss, &len) == 0)
		kp_sockaddr_str((struct sockaddr *)&ss, dc->local, sizeof(dc->local));
	k_list_add_tail(&w->conns, &dc->link);
	__atomic_add_fetch(&w->n_conns, 1, __ATOMIC_RELAXED);
	dc->conn_start_ns = dc->last_activity_ns = NOW(w);
	kp_stat_inc(w->stats, LS(dc, listener_downstream_cx_total));
	kp_stat_inc(w->stats, LS(dc, listener_downstream_cx_active));
	kp_stat_inc(w->stats, HS(dc, downstream_cx_total));
	kp_stat_inc(w->stats, HS(dc, downstream_cx_active));
	kp_stat_inc(w->stats, HS(dc, downstream_cx_http1_total));
	kp_hcm_conn_update_reading(dc);
	kp_hcm_conn_arm_timer(dc);
}

void kp_hcm_drain(struct kp_worker *w)
{
	struct k_list *it = w->conns.next;
	while (it != &w->conns) {
		struct kp_dconn *dc = k_list_entry(it, struct kp_dconn, link);
		it = it->next;
		if (dc->stream) {
			dc->want_close = 1;
		} else {
			kp_stat_inc(w->stats, HS(dc, downstream_cx_drain_close));
			kp_hcm_conn_close_graceful(dc);
		}
	}
}

void kp_hcm_close_all(struct kp_worker *w)
{
	while (!k_list_empty(&w->conns)) {
		struct kp_dconn *dc = k_list_first(&w->conns, struct kp_dconn, link);
		kp_hcm_conn_close(dc);
	}
}
