/* upstream.c — load balancing, per-worker connection pools, circuit
 * breakers. See upstream.h. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include "k_log.h"
#include "stats.h"
#include "stream_info.h"
#include "upstream.h"
#include "worker.h"

#define CL_STAT(cl, f) ((cl)->cfg->stats + (f))

uint64_t *kp_upstream_stats(struct kp_cluster_rt *cl)
{
	return cl->w->stats;
}

int kp_cluster_rt_init(struct kp_cluster_rt *cl, struct kp_worker *w,
		       const struct kp_cluster_cfg *cfg)
{
	memset(cl, 0, sizeof(*cl));
	cl->cfg = cfg;
	cl->w = w;
	k_list_init(&cl->pending);
	if (cfg->n_endpoints) {
		cl->hosts = calloc(cfg->n_endpoints, sizeof(*cl->hosts));
		if (!cl->hosts)
			return K_ENOMEM;
	}
	for (uint32_t i = 0; i < cfg->n_endpoints; i++) {
		cl->hosts[i].ep = &cfg->endpoints[i];
		k_list_init(&cl->hosts[i].idle);
	}
	/* Workers start their round-robin at different hosts so that N workers
	 * with one request each do not all hit the first host. */
	cl->rr_next = cfg->n_endpoints ? w->id % cfg->n_endpoints : 0;
	kp_stat_set(w->stats, CL_STAT(cl, membership_total), w->id == 0 ? cfg->n_endpoints : 0);
	kp_stat_set(w->stats, CL_STAT(cl, membership_healthy), w->id == 0 ? cfg->n_endpoints : 0);
	return 0;
}

static void uconn_close(struct kp_uconn *u);

void kp_cluster_rt_close(struct kp_cluster_rt *cl)
{
	for (uint32_t i = 0; i < cl->cfg->n_endpoints; i++) {
		struct kp_host_rt *h = &cl->hosts[i];
		while (!k_list_empty(&h->idle)) {
			struct kp_uconn *u = k_list_first(&h->idle, struct kp_uconn, link);
			k_list_del(&u->link);
			kp_stat_inc(cl->w->stats, CL_STAT(cl, upstream_cx_destroy_local));
			uconn_close(u);
		}
	}
}

static struct kp_host_rt *pick_host(struct kp_cluster_rt *cl)
{
	uint32_t n = cl->cfg->n_endpoints;
	if (n == 1)
		return &cl->hosts[0];
	switch (cl->cfg->lb) {
	case KP_LB_RANDOM: return &cl->hosts[kp_worker_rand(cl->w) % n];
	case KP_LB_LEAST_REQUEST: {
		/* Power of two choices, as Envoy's default choice_count. */
		struct kp_host_rt *a = &cl->hosts[kp_worker_rand(cl->w) % n];
		struct kp_host_rt *b = &cl->hosts[kp_worker_rand(cl->w) % n];
		return b->n_active < a->n_active ? b : a;
	}
	case KP_LB_ROUND_ROBIN:
	default: break;
	}
	/* Weighted round robin: walk a virtual ring where each host appears
	 * `weight` times; equal weights degrade to plain round robin. */
	uint64_t total = 0;
	for (uint32_t i = 0; i < n; i++)
		total += cl->hosts[i].ep->weight;
	uint64_t pos = cl->rr_next++ % total;
	for (uint32_t i = 0; i < n; i++) {
		if (pos < cl->hosts[i].ep->weight)
			return &cl->hosts[i];
		pos -= cl->hosts[i].ep->weight;
	}
	return &cl->hosts[0];
}

static void uconn_freed(uv_handle_t *h)
{
	struct kp_uconn *u = h->data;
	/* Two handles (tcp, timer); the second close frees. */
	if (u->state != KP_U_CLOSING) {
		u->state = KP_U_CLOSING;
		return;
	}
	struct kp_cluster_rt *cl = u->cl;
	kp_rbuf_release(&cl->w->bufs, &u->in);
	k_pool_put(&cl->w->uconn_pool, u);
}

static void start_connect(struct kp_cluster_rt *cl, struct kp_host_rt *h, struct kp_pending *p);

/* A connection slot freed up: the oldest waiting stream gets a new one. */
static void serve_pending(struct kp_cluster_rt *cl)
{
	if (k_list_empty(&cl->pending) || cl->n_cx >= cl->cfg->max_connections || cl->w->stopping)
		return;
	struct kp_pending *p = k_list_first(&cl->pending, struct kp_pending, link);
	k_list_del(&p->link);
	cl->n_pending--;
	start_connect(cl, pick_host(cl), p);
}

static void uconn_close(struct kp_uconn *u)
{
	struct kp_cluster_rt *cl = u->cl;
	if (k_list_linked(&u->link))
		k_list_del(&u->link);
	if (u->state == KP_U_BUSY || u->state == KP_U_CONNECTING)
		u->host->n_active--;
	u->state = KP_U_IDLE; /* uconn_freed counts two closes from here */
	u->stream = NULL;
	if (u->pending) {
		u->pending->connecting = NULL;
		u->pending = NULL;
	}
	cl->n_cx--;
	kp_stat_dec(cl->w->stats, CL_STAT(cl, upstream_cx_active));
	kp_stat_inc(cl->w->stats, CL_STAT(cl, upstream_cx_destroy));
	uv_close((uv_handle_t *)&u->tcp, uconn_freed);
	uv_close((uv_handle_t *)&u->timer, uconn_freed);
	serve_pending(cl);
}

static void connect_timeout_cb(uv_timer_t *t)
{
	struct kp_uconn *u = t->data;
	struct kp_cluster_rt *cl = u->cl;
	struct kp_stream *s = u->stream; /* NULL if the stream already left */
	char detail[160];
	snprintf(detail, sizeof(detail),
		 "upstream connect timeout: %s did not accept within %llu ms (cluster %s)",
		 u->host->ep->name, (unsigned long long)cl->cfg->connect_timeout_ms, cl->cfg->name);
	kp_stat_inc(cl->w->stats, CL_STAT(cl, upstream_cx_connect_timeout));
	kp_stat_inc(cl->w->stats, CL_STAT(cl, upstream_cx_connect_fail));
	const struct kp_endpoint *ep = u->host->ep;
	uconn_close(u); /* the pending connect_cb sees u->stream == NULL */
	if (s)
		kp_stream_upstream_failed(s, ep, KP_RF_UF, 503, detail);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct kp_uconn *u = req->data;
	if (status == UV_ECANCELED || u->state != KP_U_CONNECTING)
		return; /* closed by timeout or shutdown */
	struct kp_cluster_rt *cl = u->cl;
	struct kp_stream *s = u->stream;
	uv_timer_stop(&u->timer);
	if (status < 0) {
		char detail[160];
		snprintf(detail, sizeof(detail), "upstream connect error to %s: %s (cluster %s)",
			 u->host->ep->name, uv_strerror(status), cl->cfg->name);
		kp_stat_inc(cl->w->stats, CL_STAT(cl, upstream_cx_connect_fail));
		const struct kp_endpoint *ep = u->host->ep;
		uconn_close(u);
		if (s)
			kp_stream_upstream_failed(s, ep, KP_RF_UF, 503, detail);
		return;
	}
	uv_tcp_nodelay(&u->tcp, 1);
	u->state = KP_U_BUSY;
	kp_uconn_set_reading(u, 1);
	if (u->pending) {
		u->pending->connecting = NULL;
		u->pending = NULL;
	}
	if (!s) {
		/* Its stream ended while we connected: keep the connection. */
		u->requests--; /* release counts a request it never served */
		kp_upstream_release(u, 1);
		return;
	}
	kp_stream_upstream_ready(s, u);
}

static void start_connect(struct kp_cluster_rt *cl, struct kp_host_rt *h, struct kp_pending *p)
{
	struct kp_worker *w = cl->w;
	struct kp_stream *s = p->stream;
	struct kp_uconn *u = k_pool_get(&w->uconn_pool);
	if (!u) {
		kp_stream_upstream_failed(s, h->ep, KP_RF_UF, 503,
					  "out of memory for an upstream connection");
		return;
	}
	memset(u, 0, sizeof(*u));
	u->cl = cl;
	u->host = h;
	u->stream = s;
	u->pending = p;
	p->connecting = u;
	u->state = KP_U_CONNECTING;
	k_list_init(&u->link);
	uv_tcp_init(&w->loop, &u->tcp);
	uv_timer_init(&w->loop, &u->timer);
	u->tcp.data = u->timer.data = u->connect_req.data = u;
	cl->n_cx++;
	h->n_active++;
	kp_stat_inc(w->stats, CL_STAT(cl, upstream_cx_total));
	kp_stat_inc(w->stats, CL_STAT(cl, upstream_cx_http1_total));
	kp_stat_inc(w->stats, CL_STAT(cl, upstream_cx_active));
	int rc = uv_tcp_connect(&u->connect_req, &u->tcp, (const struct sockaddr *)&h->ep->addr,
				connect_cb);
	if (rc < 0) {
		char detail[160];
		snprintf(detail, sizeof(detail), "upstream connect error to %s: %s (cluster %s)",
			 h->ep->name, uv_strerror(rc), cl->cfg->name);
		kp_stat_inc(w->stats, CL_STAT(cl, upstream_cx_connect_fail));
		uconn_close(u);
		kp_stream_upstream_failed(s, h->ep, KP_RF_UF, 503, detail);
		return;
	}
	if (cl->cfg->connect_timeout_ms)
		uv_timer_start(&u->timer, connect_timeout_cb, cl->cfg->connect_timeout_ms, 0);
}

/* Take an idle connection to h (most recently used first: its TCP state is
 * warmest) and give it to p's stream. */
static int socket_quiet(struct kp_uconn *u);

static int take_idle(struct kp_host_rt *h, struct kp_pending *p)
{
	struct kp_uconn *u = NULL;
	while (!k_list_empty(&h->idle)) {
		u = k_list_entry(h->idle.prev, struct kp_uconn, link);
		k_list_del(&u->link);
		/* Pooled in this same loop iteration: epoll has not had a
		 * chance to report a FIN or stray bytes, so look. */
		if (u->idle_iter != u->cl->w->iter || socket_quiet(u))
			break;
		kp_stat_inc(u->cl->w->stats, CL_STAT(u->cl, upstream_cx_destroy_remote));
		uconn_close(u);
		u = NULL;
	}
	if (!u)
		return 0;
	/* The idle timer keeps running: it checks the state when it fires,
	 * which saves two timer-heap operations per request. */
	u->state = KP_U_BUSY;
	u->stream = p->stream;
	u->reused = 1;
	h->n_active++;
	kp_stream_upstream_ready(p->stream, u);
	return 1;
}

void kp_upstream_acquire(struct kp_cluster_rt *cl, struct kp_pending *p)
{
	struct kp_stream *s = p->stream;
	struct kp_worker *w = cl->w;
	char detail[200];
	if (cl->cfg->n_endpoints == 0) {
		kp_stat_inc(w->stats, CL_STAT(cl, upstream_cx_none_healthy));
		snprintf(detail, sizeof(detail), "no healthy upstream: cluster %s has no endpoints",
			 cl->cfg->name);
		kp_stream_upstream_failed(s, NULL, KP_RF_UH, 503, detail);
		return;
	}
	if (!p->counted) {
		if (cl->n_rq_active >= cl->cfg->max_requests) {
			kp_stat_inc(w->stats, CL_STAT(cl, upstream_rq_pending_overflow));
			snprintf(detail, sizeof(detail),
				 "upstream overflow: cluster %s has %u active requests (circuit "
				 "breaker max_requests)",
				 cl->cfg->name, cl->n_rq_active);
			kp_stream_upstream_failed(s, NULL, KP_RF_UO, 503, detail);
			return;
		}
		cl->n_rq_active++;
		p->counted = 1;
	}
	struct kp_host_rt *h = pick_host(cl);
	if (take_idle(h, p))
		return;
	if (cl->n_cx >= cl->cfg->max_connections) {
		/* At the limit, an idle connection to another host beats
		 * waiting for a busy one to finish. */
		for (uint32_t i = 0; i < cl->cfg->n_endpoints; i++)
			if (take_idle(&cl->hosts[i], p))
				return;
		kp_stat_inc(w->stats, CL_STAT(cl, upstream_cx_overflow));
		if (cl->n_pending >= cl->cfg->max_pending_requests) {
			kp_stat_inc(w->stats, CL_STAT(cl, upstream_rq_pending_overflow));
			snprintf(detail, sizeof(detail),
				 "upstream overflow: cluster %s has %u connections and %u pending "
				 "requests (circuit breaker limits)",
				 cl->cfg->name, cl->n_cx, cl->n_pending);
			kp_stream_upstream_failed(s, NULL, KP_RF_UO, 503, detail);
			return;
		}
		k_list_add_tail(&cl->pending, &p->link);
		cl->n_pending++;
		return;
	}
	start_connect(cl, h, p);
}

void kp_upstream_done(struct kp_cluster_rt *cl, struct kp_pending *p)
{
	if (k_list_linked(&p->link)) {
		k_list_del(&p->link);
		cl->n_pending--;
	}
	if (p->connecting) {
		struct kp_uconn *u = p->connecting;
		u->stream = NULL;
		u->pending = NULL;
		p->connecting = NULL;
		/* Normally connect_cb pools it; a stopping worker closes it so
		 * the loop can end without waiting for the connect. */
		if (cl->w->stopping)
			uconn_close(u);
	}
	if (p->counted) {
		cl->n_rq_active--;
		p->counted = 0;
	}
}

static void u_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct kp_uconn *u = h->data;
	if (u->state == KP_U_BUSY && u->stream) {
		kp_stream_upstream_alloc(u->stream, u, buf);
		return;
	}
	/* Idle: any byte is an error, so don't spend a pooled buffer on it. */
	static __thread char sink[64];
	buf->base = sink;
	buf->len = sizeof(sink);
}

static void u_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct kp_uconn *u = st->data;
	if (n == 0)
		return;
	if (u->state == KP_U_BUSY && u->stream) {
		kp_stream_upstream_read(u->stream, u, n);
		return;
	}
	if (u->state != KP_U_IDLE)
		return;
	/* EOF, error, or unsolicited bytes: the server is done with it. */
	k_list_del(&u->link);
	kp_stat_inc(u->cl->w->stats, CL_STAT(u->cl, upstream_cx_destroy_remote));
	uconn_close(u);
}

void kp_uconn_set_reading(struct kp_uconn *u, int on)
{
	if (on && !u->reading) {
		if (uv_read_start((uv_stream_t *)&u->tcp, u_alloc, u_read) == 0)
			u->reading = 1;
	} else if (!on && u->reading) {
		uv_read_stop((uv_stream_t *)&u->tcp);
		u->reading = 0;
	}
}

static void idle_timeout_cb(uv_timer_t *t)
{
	struct kp_uconn *u = t->data;
	if (u->state != KP_U_IDLE)
		return; /* busy again; the next release re-arms */
	uint64_t idle_ms = uv_now(&u->cl->w->loop) - u->idle_since_ms;
	if (idle_ms < u->cl->cfg->idle_timeout_ms) {
		uv_timer_start(&u->timer, idle_timeout_cb, u->cl->cfg->idle_timeout_ms - idle_ms,
			       0);
		return;
	}
	k_list_del(&u->link);
	kp_stat_inc(u->cl->w->stats, CL_STAT(u->cl, upstream_cx_idle_timeout));
	kp_stat_inc(u->cl->w->stats, CL_STAT(u->cl, upstream_cx_destroy_local));
	uconn_close(u);
}

/* Nothing unread on the socket: no FIN, no bytes the server sent after its
 * response. */
static int socket_quiet(struct kp_uconn *u)
{
	uv_os_fd_t fd;
	char c;
	if (uv_fileno((uv_handle_t *)&u->tcp, &fd) != 0)
		return 0;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void kp_upstream_release(struct kp_uconn *u, int reusable)
{
	struct kp_cluster_rt *cl = u->cl;
	struct kp_worker *w = cl->w;
	u->requests++;
	if (reusable && (w->draining || w->stopping || kp_rbuf_len(&u->in) != 0 ||
			 (cl->cfg->max_requests_per_connection &&
			  u->requests >= cl->cfg->max_requests_per_connection)))
		reusable = 0;
	if (!reusable) {
		kp_stat_inc(w->stats, CL_STAT(cl, upstream_cx_destroy_local));
		uconn_close(u);
		return;
	}
	/* Reads were paused (backpressure) or the connection goes straight to
	 * a waiting request: libuv could not have told us about a FIN or
	 * stray bytes, so look before reuse. */
	if (reusable && (!u->reading || !k_list_empty(&cl->pending)) && !socket_quiet(u))
		reusable = 0;
	if (!reusable) {
		kp_stat_inc(w->stats, CL_STAT(cl, upstream_cx_destroy_remote));
		uconn_close(u);
		return;
	}
	u->host->n_active--;
	u->stream = NULL;
	kp_rbuf_release(&w->bufs, &u->in);
	if (!k_list_empty(&cl->pending)) {
		/* Hand the connection straight to the oldest waiting stream. */
		struct kp_pending *p = k_list_first(&cl->pending, struct kp_pending, link);
		k_list_del(&p->link);
		cl->n_pending--;
		struct kp_stream *s = p->stream;
		u->state = KP_U_BUSY;
		u->stream = s;
		u->reused = 1;
		u->host->n_active++;
		kp_uconn_set_reading(u, 1);
		kp_stream_upstream_ready(s, u);
		return;
	}
	u->state = KP_U_IDLE;
	u->idle_iter = w->iter;
	k_list_add_tail(&u->host->idle, &u->link);
	kp_uconn_set_reading(u, 1); /* watches for the server closing it */
	u->idle_since_ms = uv_now(&w->loop);
	if (cl->cfg->idle_timeout_ms && !uv_is_active((uv_handle_t *)&u->timer))
		uv_timer_start(&u->timer, idle_timeout_cb, cl->cfg->idle_timeout_ms, 0);
}
