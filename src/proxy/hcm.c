/* hcm.c — HTTP/1.1 connection manager and router. See hcm.h for the
 * buffer discipline; this file is the state machine around it:
 *
 *   accept → read head → route → acquire upstream → pump request body
 *          → parse response head → pump response body → log → next request
 *
 * Every exit path runs through kp_hcm_stream_finish (exactly once per
 * stream) and every close through kp_hcm_conn_close (once per connection).
 * The connection's own life (accept, reads, timers, lingering close) is in
 * hcm_conn.c. */
#include <stdio.h>

#include "access_log.h"
#include "hcm.h"
#include "hcm_int.h"
#include "k_log.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

static const char CRLF[] = "\r\n";
static const char LAST_CHUNK[] = K_H1_LAST_CHUNK;
static const char CONTINUE_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void pump_response(struct kp_stream *s);
static void process_response(struct kp_stream *s);
static void up_update_reading(struct kp_stream *s);

/* ---------------------------------------------------------------- writes */

/* Write iov[0..n) to st: as much as the kernel takes now, the rest queued
 * on wq (wq->busy set). Returns 0 when all went out now, 1 when queued, or
 * a negative libuv error. */
static int write_iov(uv_stream_t *st, struct kp_wq *wq, uv_buf_t *iov, unsigned n, uv_write_cb cb,
		     uint64_t *written)
{
	int w = uv_try_write(st, iov, n);
	if (w == UV_EAGAIN || w == UV_ENOSYS)
		w = 0;
	if (w < 0)
		return w;
	*written += (uint64_t)w;
	size_t left = (size_t)w;
	unsigned i = 0;
	while (i < n && left >= iov[i].len)
		left -= iov[i++].len;
	if (i == n)
		return 0;
	iov[i].base += left;
	iov[i].len -= left;
	if (&wq->iov[0] != &iov[i])
		memmove(wq->iov, &iov[i], (n - i) * sizeof(uv_buf_t));
	int rc = uv_write(&wq->req, st, wq->iov, n - i, cb);
	if (rc < 0)
		return rc;
	for (unsigned j = 0; j < n - i; j++)
		*written += wq->iov[j].len;
	wq->busy = 1;
	return 1;
}

/* Append a framed payload span to an iovec batch. */
static unsigned frame_data(struct kp_wq *wq, unsigned niov, unsigned *nch, int chunked,
			   struct k_str d)
{
	if (chunked) {
		char *h = wq->chunk_hdr[(*nch)++];
		wq->iov[niov++] = uv_buf_init(h, (unsigned)k_h1_chunk_header(h, d.len));
		wq->iov[niov++] = uv_buf_init((char *)d.p, (unsigned)d.len);
		wq->iov[niov++] = uv_buf_init((char *)CRLF, 2);
	} else {
		wq->iov[niov++] = uv_buf_init((char *)d.p, (unsigned)d.len);
	}
	return niov;
}

/* ------------------------------------------------------------- streams */

struct kp_stream *kp_hcm_stream_new(struct kp_dconn *dc)
{
	struct kp_worker *w = dc->w;
	struct kp_stream *s = k_pool_get(&w->stream_pool);
	if (!s)
		return NULL;
	memset(s, 0, offsetof(struct kp_stream, first_block));
	k_arena_init(&s->arena, s->first_block, sizeof(s->first_block), ARENA_LIMIT);
	s->dc = dc;
	s->pending.stream = s;
	k_list_init(&s->pending.link);
	s->start_ns = NOW(w);
	if (dc->hcm->n_access_logs)
		clock_gettime(CLOCK_REALTIME, &s->si.start_real);
	s->si.start_ns = s->start_ns;
	s->si.downstream_remote = dc->remote;
	s->si.downstream_local = dc->local;
	s->si.protocol = "HTTP/1.1";
	s->si.req = &s->req;
	dc->stream = s;
	w->n_streams++;
	kp_stat_inc(w->stats, HS(dc, downstream_rq_total));
	kp_stat_inc(w->stats, HS(dc, downstream_rq_http1_total));
	kp_stat_inc(w->stats, HS(dc, downstream_rq_active));
	return s;
}

static void count_status(uint64_t *stats, uint32_t base_1xx, int status)
{
	int cls = status / 100;
	if (cls >= 1 && cls <= 5)
		kp_stat_inc(stats, base_1xx + (uint32_t)(cls - 1));
}

static void write_access_logs(struct kp_stream *s)
{
	struct kp_dconn *dc = s->dc;
	char line[4096];
	for (uint32_t i = 0; i < dc->hcm->n_access_logs; i++) {
		const struct kp_access_log_cfg *al = &dc->hcm->access_logs[i];
		size_t n = kp_access_log_render(al->fmt, &s->si, line, sizeof(line));
		kp_worker_log(dc->w, (int)al->sink, al->path, line, n);
	}
}

static void stream_release_upstream(struct kp_stream *s, int reusable)
{
	if (s->u) {
		struct kp_uconn *u = s->u;
		s->u = NULL;
		kp_stat_dec(s->dc->w->stats, CS(s, upstream_rq_active));
		kp_upstream_release(u, reusable);
	}
	if (s->cl)
		kp_upstream_done(s->cl, &s->pending);
}

/* The response is fully written (or the stream was aborted): account, log,
 * free, and move the connection on. */
void kp_hcm_stream_finish(struct kp_stream *s)
{
	struct kp_dconn *dc = s->dc;
	struct kp_worker *w = dc->w;
	if (s->finished)
		return;
	s->finished = 1;
	s->si.end_ns = NOW(w);
	int reusable = s->resp_head_done && s->resp.keep_alive && s->req_sent && s->resp_done &&
		       !s->local_reply && s->resp.body != K_H1_BODY_CLOSE;
	if (s->u && s->resp_done && !s->local_reply)
		kp_stat_inc(w->stats, CS(s, upstream_rq_completed));
	stream_release_upstream(s, reusable);
	kp_stat_inc(w->stats, HS(dc, downstream_rq_completed));
	kp_stat_dec(w->stats, HS(dc, downstream_rq_active));
	if (dc->hcm->n_access_logs)
		write_access_logs(s);
	if (!s->req_done)
		dc->want_close = 1; /* unread request body: the stream of bytes is lost */
	dc->stream = NULL;
	w->n_streams--;
	k_arena_free(&s->arena);
	k_pool_put(&w->stream_pool, s);

	if (dc->closing)
		return;
	dc->last_activity_ns = NOW(w);
	kp_hcm_conn_continue(dc);
}

/* Something broke after the response started (or the client left): the
 * only honest signal left is closing the connection. */
void kp_hcm_stream_abort(struct kp_stream *s, uint32_t flags)
{
	struct kp_dconn *dc = s->dc;
	s->si.response_flags |= flags;
	if (flags & KP_RF_DC)
		kp_stat_inc(dc->w->stats, HS(dc, downstream_rq_rx_reset));
	else
		kp_stat_inc(dc->w->stats, HS(dc, downstream_rq_tx_reset));
	dc->want_close = 1;
	s->resp_done = 0;
	kp_hcm_stream_finish(s);
	kp_hcm_conn_close(dc);
}

static void down_write_cb(uv_write_t *req, int status)
{
	struct kp_dconn *dc = K_CONTAINER_OF(req, struct kp_dconn, out.req);
	dc->out.busy = 0;
	struct kp_stream *s = dc->stream;
	if (dc->closing || !s)
		return; /* the stream was finished by kp_hcm_conn_close */
	if (status < 0) {
		kp_hcm_stream_abort(s, KP_RF_DC);
		return;
	}
	s->dc->last_activity_ns = NOW(s->dc->w);
	if (s->resp_done) {
		kp_hcm_stream_finish(s);
		return;
	}
	pump_response(s);
}

static void cont_write_cb(uv_write_t *req, int status)
{
	struct kp_dconn *dc = K_CONTAINER_OF(req, struct kp_dconn, cont_req);
	dc->cont_busy = 0;
}

/* Send a complete response generated here (errors, direct responses).
 * detail, when not NULL, goes out as x-kite-error and into the log's
 * response code details. */
void kp_hcm_local_reply(struct kp_stream *s, int status, uint32_t flags, const char *body,
			const char *detail)
{
	struct kp_dconn *dc = s->dc;
	s->si.response_flags |= flags;
	if (s->resp_head_sent) {
		kp_hcm_stream_abort(s, 0);
		return;
	}
	stream_release_upstream(s, 0);
	s->local_reply = 1;
	s->resp_head_sent = s->resp_done = 1;
	s->si.response_code = status;
	if (detail)
		s->si.details = k_arena_strndup(&s->arena, detail, strlen(detail));
	/* After a protocol error the byte stream can't be trusted; after an
	 * unread body or while draining the connection can't continue. */
	if (!s->req_done || dc->w->draining || (flags & KP_RF_DPE))
		dc->want_close = 1;
	size_t blen = body ? strlen(body) : 0;
	size_t dlen = detail ? strlen(detail) : 0;
	int no_body = status == 204 || status == 304 ||
		      (s->req.method.len == 4 && memcmp(s->req.method.p, "HEAD", 4) == 0);
	size_t cap = 256 + dlen + strlen(dc->hcm->server_name);
	char *h = k_arena_alloc(&s->arena, cap);
	if (!h) {
		kp_hcm_stream_abort(s, KP_RF_LR);
		return;
	}
	/* HEAD gets the length of the body it would have had; 204 and 304
	 * carry neither body nor length. */
	int n = snprintf(h, cap, "HTTP/1.1 %d %s\r\n", status, k_h1_reason(status));
	if (status != 204 && status != 304)
		n += snprintf(h + n, cap - (size_t)n, "content-length: %zu\r\n", blen);
	n += snprintf(h + n, cap - (size_t)n, "%sserver: %s\r\n",
		      blen && !no_body ? "content-type: text/plain\r\n" : "", dc->hcm->server_name);
	if (no_body)
		blen = 0;
	if (detail) {
		memcpy(h + n, "x-kite-error: ", 14);
		n += 14;
		/* A header value must not carry CR, LF or other controls. */
		for (size_t i = 0; i < dlen; i++) {
			unsigned char c = (unsigned char)detail[i];
			h[n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
		}
		h[n++] = '\r';
		h[n++] = '\n';
	}
	const char *conn = dc->want_close			    ? "connection: close\r\n"
			   : s->req.minor == 0 && s->req.method.len ? "connection: keep-alive\r\n"
								    : "";
	n += snprintf(h + n, cap - (size_t)n, "%s\r\n", conn);
	count_status(dc->w->stats, HS(dc, downstream_rq_1xx), status);
	s->si.bytes_sent = blen;
	uv_buf_t iov[2] = {uv_buf_init(h, (unsigned)n), uv_buf_init((char *)body, (unsigned)blen)};
	uint64_t written = 0;
	int rc = write_iov((uv_stream_t *)&dc->tcp, &dc->out, iov, blen ? 2 : 1, down_write_cb,
			   &written);
	kp_stat_add(dc->w->stats, HS(dc, downstream_cx_tx_bytes_total), written);
	if (rc < 0) {
		kp_hcm_stream_abort(s, KP_RF_DC);
		return;
	}
	if (rc == 0)
		kp_hcm_stream_finish(s);
}

/* -------------------------------------------------------- request side */

static int hdr_is(struct k_str name, const char *lit, size_t len)
{
	return name.len == len && k_str_ieq(name, (struct k_str){lit, len});
}
#define HDR_IS(name, lit) hdr_is((name), (lit), sizeof(lit) - 1)

/* Fields that describe one hop and are never forwarded (RFC 9110 §7.6.1),
 * plus the framing fields we regenerate. */
static int hop_by_hop(struct k_str n)
{
	switch (n.len) {
	case 2: return HDR_IS(n, "te");
	case 7: return HDR_IS(n, "upgrade") || HDR_IS(n, "trailer");
	case 10: return HDR_IS(n, "connection") || HDR_IS(n, "keep-alive");
	case 14: return HDR_IS(n, "content-length");
	case 16: return HDR_IS(n, "proxy-connection");
	case 17: return HDR_IS(n, "transfer-encoding");
	}
	return 0;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* Decimal without printf: heads are built per request. */
static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_hex(char *p, uint64_t v, int digits)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = digits - 1; i >= 0; i--)
		*p++ = hex[(v >> (4 * i)) & 0xf];
	return p;
}

static void gen_request_id(struct kp_worker *w, char out[37])
{
	uint64_t a = kp_worker_rand(w), b = kp_worker_rand(w);
	a = (a & ~0xf000ull) | 0x4000ull;	/* version 4 */
	b = (b & ~(3ull << 62)) | (2ull << 62); /* RFC 4122 variant */
	char *p = out;
	p = put_hex(p, a >> 32, 8);
	*p++ = '-';
	p = put_hex(p, a >> 16, 4);
	*p++ = '-';
	p = put_hex(p, a, 4);
	*p++ = '-';
	p = put_hex(p, b >> 48, 4);
	*p++ = '-';
	p = put_hex(p, b, 12);
	*p = '\0';
}

/* Address without port: "127.0.0.1:5000" -> "127.0.0.1", "[::1]:5" -> "::1". */
static struct k_str addr_host(const char *a)
{
	size_t n = strlen(a);
	if (a[0] == '[') {
		const char *e = strchr(a, ']');
		return (struct k_str){a + 1, e ? (size_t)(e - a - 1) : n - 1};
	}
	const char *c = strrchr(a, ':');
	return (struct k_str){a, c ? (size_t)(c - a) : n};
}

static int build_upstream_head(struct kp_stream *s, int absolute_form)
{
	struct kp_dconn *dc = s->dc;
	const struct kp_hcm_cfg *hcm = dc->hcm;
	const struct k_h1_msg *r = &s->req;
	/* Every field may grow by a space after the colon; the fields we add
	 * (host, x-request-id, x-forwarded-*, framing) fit in the rest. */
	size_t cap = r->head_len + 2 * (size_t)r->nheaders + s->si.authority.len + s->si.path.len +
		     strlen(dc->remote) + 512;
	char *head = k_arena_alloc(&s->arena, cap);
	if (!head)
		return K_ENOMEM;
	char *p = head;
	p = put(p, r->method.p, r->method.len);
	*p++ = ' ';
	p = put(p, s->si.path.p, s->si.path.len);
	p = PUT_LIT(p, " HTTP/1.1\r\n");
	int has_rid = 0, has_xfp = 0, has_cl = 0;
	struct k_str xff = {0};
	if (absolute_form || r->host_idx < 0) {
		p = PUT_LIT(p, "host: ");
		p = put(p, s->si.authority.p, s->si.authority.len);
		p = PUT_LIT(p, "\r\n");
	}
	for (uint32_t i = 0; i < r->nheaders; i++) {
		const struct k_h1_header *h = &r->headers[i];
		if (hop_by_hop(h->name)) {
			has_cl |= HDR_IS(h->name, "content-length");
			continue;
		}
		if ((int)i == r->host_idx) {
			if (absolute_form)
				continue;
		} else if (k_h1_connection_has(r, h->name)) {
			continue; /* named hop-by-hop by the client; never Host */
		}
		switch (h->name.len) {
		case 6:
			if (HDR_IS(h->name, "expect"))
				continue; /* answered here with 100 Continue */
			break;
		case 12:
			if (HDR_IS(h->name, "x-request-id")) {
				has_rid = 1;
				s->si.request_id = h->value;
			}
			break;
		case 15:
			if (HDR_IS(h->name, "x-forwarded-for")) {
				/* Folded into one field below, with our hop appended. */
				if (!xff.len)
					xff = h->value;
				continue;
			}
			break;
		case 17:
			if (HDR_IS(h->name, "x-forwarded-proto")) {
				if (hcm->use_remote_address)
					continue;
				has_xfp = 1;
			}
			break;
		}
		p = put(p, h->name.p, h->name.len);
		p = PUT_LIT(p, ": ");
		p = put(p, h->value.p, h->value.len);
		p = PUT_LIT(p, "\r\n");
	}
	if (!has_rid && hcm->generate_request_id) {
		char id[37];
		gen_request_id(dc->w, id);
		p = PUT_LIT(p, "x-request-id: ");
		s->si.request_id = (struct k_str){p, 36};
		p = put(p, id, 36);
		p = PUT_LIT(p, "\r\n");
	}
	struct k_str me = addr_host(dc->remote);
	if (xff.len || hcm->use_remote_address) {
		/* Several X-Forwarded-For fields are one list (RFC 9110 §5.3). */
		char *start = p + 17;
		p = PUT_LIT(p, "x-forwarded-for: ");
		int first = 1;
		for (uint32_t i = 0; i < r->nheaders; i++) {
			if (!HDR_IS(r->headers[i].name, "x-forwarded-for"))
				continue;
			if (!first)
				p = PUT_LIT(p, ", ");
			p = put(p, r->headers[i].value.p, r->headers[i].value.len);
			first = 0;
		}
		if (hcm->use_remote_address) {
			if (!first)
				p = PUT_LIT(p, ", ");
			p = put(p, me.p, me.len);
		}
		s->si.forwarded_for = (struct k_str){start, (size_t)(p - start)};
		p = PUT_LIT(p, "\r\n");
	}
	if (!has_xfp)
		p = PUT_LIT(p, "x-forwarded-proto: http\r\n");
	if (r->body == K_H1_BODY_CHUNKED) {
		p = PUT_LIT(p, "transfer-encoding: chunked\r\n");
	} else if (r->body == K_H1_BODY_LENGTH || has_cl) {
		p = PUT_LIT(p, "content-length: ");
		p = put_u64(p, r->content_length);
		p = PUT_LIT(p, "\r\n");
	}
	p = PUT_LIT(p, "\r\n");
	s->up_head = head;
	s->up_head_len = (uint32_t)(p - head);
	return 0;
}

/* The Upgrade field's value ("websocket"), or empty. */
static struct k_str upgrade_token(const struct k_h1_msg *r)
{
	for (uint32_t i = 0; i < r->nheaders; i++)
		if (k_str_ieq_lit(r->headers[i].name, "upgrade"))
			return r->headers[i].value;
	return (struct k_str){"", 0};
}

static void route_request(struct kp_stream *s)
{
	struct kp_dconn *dc = s->dc;
	struct kp_worker *w = dc->w;
	const struct k_h1_msg *r = &s->req;
	char detail[512];
	int absolute = 0;

	switch (r->target_form) {
	case K_H1_TARGET_ABSOLUTE:
		/* Forward-proxy form (HTTP_PROXY clients): route on the URI's
		 * authority, send origin-form upstream. */
		if (r->target.len > 5 && (r->target.p[4] == 's' || r->target.p[4] == 'S')) {
			kp_hcm_local_reply(
				s, 400, KP_RF_DPE, "Bad Request\n",
				"absolute-form request target: only http:// is proxied here "
				"(https needs CONNECT)");
			return;
		}
		s->si.authority = r->authority;
		s->si.path = r->path;
		if (!r->path.len) {
			s->si.path = K_STR_LIT("/");
		} else if (r->path.p[0] == '?') {
			char *p = k_arena_alloc(&s->arena, r->path.len + 1);
			if (!p) {
				kp_hcm_local_reply(
					s, 431, KP_RF_DPE, NULL,
					"request target too large for the per-request arena");
				return;
			}
			p[0] = '/';
			memcpy(p + 1, r->path.p, r->path.len);
			s->si.path = (struct k_str){p, r->path.len + 1};
		}
		absolute = 1;
		break;
	case K_H1_TARGET_AUTHORITY:
		dc->want_close = 1; /* a CONNECT client may already be sending tunnel bytes */
		kp_hcm_local_reply(
			s, 501, 0, "CONNECT is not enabled on this listener\n",
			"CONNECT is not enabled on this listener (no upgrade_configs for CONNECT)");
		return;
	default:
		s->si.path = r->target;
		if (r->host_idx >= 0)
			s->si.authority = r->headers[r->host_idx].value;
		break;
	}
	if (r->upgrade && !k_str_ieq_lit(upgrade_token(r), "h2c")) {
		/* As Envoy without upgrade_configs: refuse rather than forward
		 * a request whose client expects to switch protocols. h2c
		 * upgrades are optional for the client and simply not taken. */
		dc->want_close = 1;
		kp_hcm_local_reply(
			s, 403, 0, NULL,
			"protocol upgrade requested but upgrades are not enabled on this "
			"listener (upgrade_configs)");
		return;
	}
	if (!s->si.authority.len) {
		kp_hcm_local_reply(s, 400, KP_RF_DPE, "Bad Request\n",
				   "request has no Host (HTTP/1.0 without Host header)");
		return;
	}
	if (r->expect_continue && r->body != K_H1_BODY_NONE && r->minor == 1) {
		/* Answer Expect ourselves, as Envoy does: the client starts
		 * sending while we connect upstream. */
		uv_buf_t b = uv_buf_init((char *)CONTINUE_100, sizeof(CONTINUE_100) - 1);
		int n = dc->cont_busy ? (int)b.len : uv_try_write((uv_stream_t *)&dc->tcp, &b, 1);
		if (n == UV_EAGAIN)
			n = 0;
		if (n >= 0 && n < (int)b.len) {
			b.base += n;
			b.len -= (size_t)n;
			if (uv_write(&dc->cont_req, (uv_stream_t *)&dc->tcp, &b, 1,
				     cont_write_cb) == 0)
				dc->cont_busy = 1;
		}
	}

	const struct kp_vhost *vh = NULL;
	const struct kp_route *rt =
		kp_route_match(&dc->hcm->routes, s->si.authority, s->si.path, &vh);
	if (!rt) {
		kp_stat_inc(w->stats, HS(dc, no_route));
		snprintf(detail, sizeof(detail),
			 "no route: %s for host \"%.*s\" path \"%.*s\" in route config \"%s\"",
			 vh ? "no route matched" : "no virtual host matched",
			 (int)K_MIN(s->si.authority.len, 128), s->si.authority.p,
			 (int)K_MIN(s->si.path.len, 200), s->si.path.p,
			 dc->hcm->routes.name ? dc->hcm->routes.name : "");
		kp_hcm_local_reply(s, 404, KP_RF_NR, NULL, detail);
		return;
	}
	s->route = rt;
	s->si.route_name = rt->name;
	if (rt->kind == KP_ROUTE_DIRECT_RESPONSE) {
		kp_stat_inc(w->stats, HS(dc, rq_direct_response));
		s->local_reply = 1;
		kp_hcm_local_reply(s, rt->direct_status, 0, rt->direct_body, NULL);
		return;
	}
	s->cl = &w->clusters[rt->cluster];
	s->si.cluster_name = s->cl->cfg->name;
	if (build_upstream_head(s, absolute)) {
		kp_hcm_local_reply(s, 503, KP_RF_LR, "out of memory\n",
				   "request too large for the per-request arena");
		return;
	}
	if (s->req_done && rt->timeout_ms)
		s->route_deadline_ns = NOW(w) + rt->timeout_ms * 1000000ull;
	kp_hcm_conn_arm_timer(dc);
	kp_upstream_acquire(s->cl, &s->pending);
}

static void stream_begin(struct kp_dconn *dc, const struct k_h1_msg *msg, const char *head)
{
	struct kp_stream *s = kp_hcm_stream_new(dc);
	if (!s) {
		kp_hcm_conn_close(dc);
		return;
	}
	/* Keep the head in the stream's arena so the read buffer can move on
	 * (body bytes, pipelined requests) while spans stay valid. */
	char *copy = k_arena_alloc(&s->arena, msg->head_len);
	struct k_h1_header *hdrs = k_arena_alloc(&s->arena, (msg->nheaders + 1) * sizeof(*hdrs));
	if (!copy || !hdrs) {
		s->req_done = 0;
		kp_hcm_local_reply(s, 431, KP_RF_DPE, NULL,
				   "request headers exceed the per-request memory limit");
		return;
	}
	memcpy(copy, head, msg->head_len);
	s->req = *msg;
#define REBASE(str) ((str).p = (str).p ? copy + ((str).p - head) : NULL)
	REBASE(s->req.method);
	REBASE(s->req.target);
	REBASE(s->req.authority);
	REBASE(s->req.path);
	for (uint32_t i = 0; i < msg->nheaders; i++) {
		hdrs[i] = msg->headers[i];
		REBASE(hdrs[i].name);
		REBASE(hdrs[i].value);
	}
#undef REBASE
	s->req.headers = hdrs;
	s->si.protocol = msg->minor ? "HTTP/1.1" : "HTTP/1.0";
	dc->in.start += msg->head_len;
	dc->n_requests++;
	k_h1_body_init(&s->req_body, &s->req, &dc->hcm->limits);
	if (s->req.body == K_H1_BODY_NONE)
		s->req_done = 1;
	if (!s->req.keep_alive)
		dc->want_close = 1;
	route_request(s);
}

/* Parse and start the next request if its head is in the buffer. */
void kp_hcm_next_request(struct kp_dconn *dc)
{
	struct kp_worker *w = dc->w;
	if (dc->stream || dc->closing || dc->lingering || dc->want_close)
		return;
	uint32_t len = kp_rbuf_len(&dc->in);
	if (len == 0) {
		kp_rbuf_put_if_empty(&w->bufs, &dc->in);
		return;
	}
	struct k_h1_msg msg;
	struct k_h1_error err = {0};
	const char *head = dc->in.data + dc->in.start;
	int rc = k_h1_parse_request(head, len, dc->head_seen, &dc->hcm->limits, &msg,
				    w->hdr_scratch, w->hdr_scratch_cap, &err);
	if (rc == K_EAGAIN) {
		if (!dc->head_seen)
			dc->head_start_ns = NOW(w);
		dc->head_seen = len;
		kp_hcm_conn_arm_timer(dc); /* a partial head runs on the header/idle clock */
		return;
	}
	dc->head_seen = 0;
	if (rc < 0) {
		struct kp_stream *s = kp_hcm_stream_new(dc);
		kp_stat_inc(w->stats, HS(dc, downstream_cx_protocol_error));
		if (err.status == 431)
			kp_stat_inc(w->stats, HS(dc, downstream_rq_too_large));
		dc->in.start = dc->in.end; /* the byte stream can't be trusted past here */
		dc->want_close = 1;
		if (!s) {
			kp_hcm_conn_close(dc);
			return;
		}
		s->req_done = 1;
		char detail[256];
		snprintf(detail, sizeof(detail), "malformed request: %s (byte %u)",
			 err.reason ? err.reason : "invalid HTTP/1.1", err.offset);
		const char *body = err.status == 431   ? "Request Header Fields Too Large\n"
				   : err.status == 501 ? "Not Implemented\n"
				   : err.status == 505 ? "HTTP Version Not Supported\n"
						       : "Bad Request\n";
		kp_hcm_local_reply(s, err.status ? err.status : 400, KP_RF_DPE, body, detail);
		return;
	}
	stream_begin(dc, &msg, head);
}

static void up_write_cb(uv_write_t *req, int status)
{
	struct kp_uconn *u = K_CONTAINER_OF(req, struct kp_uconn, out.req);
	u->out.busy = 0;
	struct kp_stream *s = u->stream;
	if (!s || u->state != KP_U_BUSY || s->finished || s->u != u)
		return; /* released (and closed) while the write was queued */
	if (status < 0) {
		/* The upstream stopped reading; it may still have answered
		 * (e.g. 413 then close), so let the read side decide. */
		s->req_sent = 0;
		s->req_done = 1;
		s->dc->want_close = 1;
		up_update_reading(s);
		return;
	}
	if (s->req_done)
		s->req_sent = 1; /* that write carried the end of the request */
	struct kp_dconn *dc = s->dc;
	if (dc->in.start == dc->in.end)
		dc->in.start = dc->in.end = 0;
	kp_hcm_pump_request(s); /* may finish s */
	if (!dc->closing)
		kp_hcm_conn_update_reading(dc);
}

/* The client closed its side and the buffered bytes don't finish the
 * request body: it will never be complete. */
int kp_hcm_request_truncated(const struct kp_stream *s)
{
	const struct kp_dconn *dc = s->dc;
	return dc->peer_eof && !s->req_done && kp_rbuf_len(&dc->in) == 0 &&
	       !(s->u && s->u->out.busy);
}

/* Move request bytes (head, then body with framing) from the downstream
 * buffer to the upstream connection. */
void kp_hcm_pump_request(struct kp_stream *s)
{
	struct kp_dconn *dc = s->dc;
	for (;;) {
		if (!s->u || s->u->out.busy || s->req_sent || s->finished)
			break;
		struct kp_wq *wq = &s->u->out;
		unsigned niov = 0, nch = 0;
		int chunked = s->req.body == K_H1_BODY_CHUNKED;
		if (!s->up_head_sent) {
			wq->iov[niov++] = uv_buf_init(s->up_head, s->up_head_len);
			s->up_head_sent = 1;
		}
		while (!s->req_body.done && s->req.body != K_H1_BODY_NONE &&
		       niov + 4 <= KP_MAX_IOV && kp_rbuf_len(&dc->in)) {
			struct k_str d = {0};
			struct k_h1_error err = {0};
			int c = k_h1_body_decode(&s->req_body, dc->in.data + dc->in.start,
						 kp_rbuf_len(&dc->in), &d, &err);
			if (c < 0) {
				char detail[200];
				snprintf(detail, sizeof(detail), "malformed request body: %s",
					 err.reason);
				kp_stat_inc(dc->w->stats, HS(dc, downstream_cx_protocol_error));
				dc->in.start = dc->in.end;
				s->req_done = 1; /* nothing more will be read */
				dc->want_close = 1;
				kp_hcm_local_reply(s, err.status ? err.status : 400, KP_RF_DPE,
						   err.status == 431
							   ? "Request Header Fields Too Large\n"
							   : "Bad Request\n",
						   detail);
				return;
			}
			dc->in.start += (uint32_t)c;
			if (d.len) {
				s->si.bytes_received += d.len;
				niov = frame_data(wq, niov, &nch, chunked, d);
			}
			if (c == 0 && d.len == 0 && !s->req_body.done)
				break;
		}
		if (!s->req_done && (s->req.body == K_H1_BODY_NONE || s->req_body.done)) {
			s->req_done = 1;
			if (chunked)
				wq->iov[niov++] =
					uv_buf_init((char *)LAST_CHUNK, sizeof(LAST_CHUNK) - 1);
			if (s->route && s->route->timeout_ms)
				s->route_deadline_ns =
					NOW(dc->w) + s->route->timeout_ms * 1000000ull;
			kp_hcm_conn_arm_timer(dc);
		}
		if (niov == 0)
			break;
		uint64_t written = 0;
		int rc = write_iov((uv_stream_t *)&s->u->tcp, wq, wq->iov, niov, up_write_cb,
				   &written);
		kp_stat_add(dc->w->stats, CS(s, upstream_cx_tx_bytes_total), written);
		if (rc < 0) {
			s->req_done = 1;
			dc->want_close = 1;
			break; /* the read side will see the reset */
		}
		if (rc == 1)
			break;
		if (s->req_done)
			s->req_sent = 1;
	}
	if (dc->in.start == dc->in.end && !(s->u && s->u->out.busy))
		dc->in.start = dc->in.end = 0;
	if (!s->finished && kp_hcm_request_truncated(s)) {
		kp_hcm_stream_abort(s, KP_RF_DC);
		return;
	}
	kp_hcm_conn_update_reading(dc);
}

/* ------------------------------------------------------- response side */

void kp_stream_upstream_alloc(struct kp_stream *s, struct kp_uconn *u, uv_buf_t *buf)
{
	uint32_t want = !s->resp_head_done ? s->dc->hcm->limits.max_head_bytes + 1 : KP_BUF_SIZE;
	int room = kp_rbuf_make_room(&u->cl->w->bufs, &u->in, want);
	if (room <= 0) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = u->in.data + u->in.end;
	buf->len = (size_t)room;
}

static void up_failed_before_headers(struct kp_stream *s, const char *why)
{
	struct kp_uconn *u = s->u;
	struct kp_dconn *dc = s->dc;
	char detail[256];
	/* A pooled connection the server closed while idle: the request never
	 * reached it, so one transparent retry on a new connection is safe
	 * when we have not consumed any request body. */
	if (u->reused && !s->retried && s->req.body == K_H1_BODY_NONE && !s->finished) {
		s->retried = 1;
		s->up_head_sent = 0;
		s->req_sent = 0;
		s->up_eof = 0;
		s->resp_seen = 0;
		stream_release_upstream(s, 0);
		kp_upstream_acquire(s->cl, &s->pending);
		return;
	}
	kp_stat_inc(dc->w->stats, CS(s, upstream_rq_rx_reset));
	snprintf(detail, sizeof(detail), "upstream %s %s before response headers (cluster %s)",
		 u->host->ep->name, why, s->cl->cfg->name);
	kp_hcm_local_reply(
		s, 503, KP_RF_UC,
		"upstream connect error or disconnect/reset before headers. reset reason: "
		"connection termination\n",
		detail);
}

void kp_stream_upstream_read(struct kp_stream *s, struct kp_uconn *u, ssize_t n)
{
	if (n == UV_ENOBUFS) {
		kp_uconn_set_reading(u, 0);
		return;
	}
	if (n > 0) {
		u->in.end += (uint32_t)n;
		s->dc->last_activity_ns = NOW(s->dc->w);
		kp_stat_add(s->dc->w->stats, CS(s, upstream_cx_rx_bytes_total), (uint64_t)n);
		process_response(s);
		return;
	}
	/* EOF or error from upstream. */
	kp_uconn_set_reading(u, 0);
	s->up_eof = 1;
	if (!s->resp_head_done) {
		up_failed_before_headers(s, n == UV_EOF ? "closed the connection"
							: "reset the connection");
		return;
	}
	if (s->resp.body == K_H1_BODY_CLOSE) {
		pump_response(s);
		return;
	}
	if (!s->resp_done) {
		kp_stat_inc(s->dc->w->stats, CS(s, upstream_rq_rx_reset));
		if (!s->dc->out.busy) {
			kp_hcm_stream_abort(s, KP_RF_UC);
			return;
		}
		/* Flush what we have, then abort in pump_response. */
	}
}

static void up_update_reading(struct kp_stream *s)
{
	if (s->u)
		kp_uconn_set_reading(s->u, !s->dc->out.busy && !s->up_eof && !s->finished);
}

void kp_stream_upstream_ready(struct kp_stream *s, struct kp_uconn *u)
{
	struct kp_worker *w = s->dc->w;
	s->u = u;
	u->tcp.data = u;
	s->si.upstream_host = u->host->ep->name;
	s->si.upstream_start_ns = NOW(w);
	kp_stat_inc(w->stats, CS(s, upstream_rq_total));
	kp_stat_inc(w->stats, CS(s, upstream_rq_active));
	up_update_reading(s);
	kp_hcm_pump_request(s);
}

void kp_stream_upstream_failed(struct kp_stream *s, const struct kp_endpoint *ep, uint32_t flags,
			       int status, const char *detail)
{
	if (ep)
		s->si.upstream_host = ep->name; /* the host we tried, as Envoy logs it */
	const char *body = "upstream connect error or disconnect/reset before headers. reset "
			   "reason: connection failure\n";
	if (flags & KP_RF_UH)
		body = "no healthy upstream\n";
	else if (flags & KP_RF_UO)
		body = "upstream connect error or disconnect/reset before headers. reset reason: "
		       "overflow\n";
	kp_hcm_local_reply(s, status, flags, body, detail);
}

static int build_downstream_head(struct kp_stream *s)
{
	struct kp_dconn *dc = s->dc;
	const struct kp_hcm_cfg *hcm = dc->hcm;
	const struct k_h1_msg *r = &s->resp;
	/* Fields may grow by a space after the colon, the reason phrase is
	 * ours (at most 31 bytes), and we add server, framing, service time,
	 * request id and connection fields. */
	size_t cap = r->head_len + 2 * (size_t)r->nheaders + strlen(hcm->server_name) +
		     s->si.request_id.len + 512;
	char *head = k_arena_alloc(&s->arena, cap);
	if (!head)
		return K_ENOMEM;
	char *p = head;
	const char *reason = k_h1_reason(r->status);
	p = PUT_LIT(p, "HTTP/1.1 ");
	p = put_u64(p, (uint64_t)r->status);
	*p++ = ' ';
	if (*reason)
		p = put(p, reason, strlen(reason));
	else
		p = put(p, r->reason.p, r->reason.len);
	p = PUT_LIT(p, "\r\n");
	int is_head = s->req.method.len == 4 && memcmp(s->req.method.p, "HEAD", 4) == 0;
	int has_server = 0;
	for (uint32_t i = 0; i < r->nheaders; i++) {
		const struct k_h1_header *h = &r->headers[i];
		if (hop_by_hop(h->name)) {
			/* HEAD and 304 carry the length of the representation,
			 * not of this (empty) message: keep it. */
			if ((is_head || r->status == 304) && HDR_IS(h->name, "content-length"))
				goto copy;
			continue;
		}
		if (k_h1_connection_has(r, h->name))
			continue;
		if (h->name.len == 6 && HDR_IS(h->name, "server")) {
			if (hcm->server_header_mode == KP_SERVER_OVERWRITE)
				continue;
			has_server = 1;
		}
	copy:
		p = put(p, h->name.p, h->name.len);
		p = PUT_LIT(p, ": ");
		p = put(p, h->value.p, h->value.len);
		p = PUT_LIT(p, "\r\n");
	}
	switch (r->body) {
	case K_H1_BODY_NONE:
		s->down_framing = KP_OUT_NONE;
		if (!is_head && r->status != 304 && r->status != 204 && r->status >= 200)
			p = PUT_LIT(p, "content-length: 0\r\n");
		break;
	case K_H1_BODY_LENGTH:
		s->down_framing = KP_OUT_LENGTH;
		p = PUT_LIT(p, "content-length: ");
		p = put_u64(p, r->content_length);
		p = PUT_LIT(p, "\r\n");
		break;
	case K_H1_BODY_CHUNKED:
	case K_H1_BODY_CLOSE:
		if (s->req.minor >= 1) {
			s->down_framing = KP_OUT_CHUNKED;
			p = PUT_LIT(p, "transfer-encoding: chunked\r\n");
		} else {
			s->down_framing = KP_OUT_RAW_CLOSE;
			dc->want_close = 1;
		}
		break;
	}
	if (hcm->server_header_mode == KP_SERVER_OVERWRITE ||
	    (hcm->server_header_mode == KP_SERVER_APPEND_IF_ABSENT && !has_server)) {
		p = PUT_LIT(p, "server: ");
		p = put(p, hcm->server_name, strlen(hcm->server_name));
		p = PUT_LIT(p, "\r\n");
	}
	p = PUT_LIT(p, "x-envoy-upstream-service-time: ");
	p = put_u64(p, (s->si.upstream_headers_ns - s->si.upstream_start_ns) / 1000000);
	p = PUT_LIT(p, "\r\n");
	if (hcm->always_set_request_id_in_response && s->si.request_id.len &&
	    s->si.request_id.len < 64) {
		p = PUT_LIT(p, "x-request-id: ");
		p = put(p, s->si.request_id.p, s->si.request_id.len);
		p = PUT_LIT(p, "\r\n");
	}
	if (!s->req_done || dc->w->draining)
		dc->want_close = 1;
	if (dc->want_close)
		p = PUT_LIT(p, "connection: close\r\n");
	else if (s->req.minor == 0)
		p = PUT_LIT(p, "connection: keep-alive\r\n");
	p = PUT_LIT(p, "\r\n");
	s->down_head = head;
	s->down_head_len = (uint32_t)(p - head);
	return 0;
}

/* Copy the response head into the arena for the access log's %RESP(..)%:
 * the upstream buffer moves on, and the header array is per-worker scratch. */
static int keep_response_head(struct kp_stream *s, const char *head)
{
	struct k_h1_msg *m = &s->resp;
	char *copy = k_arena_alloc(&s->arena, m->head_len);
	struct k_h1_header *hdrs = k_arena_alloc(&s->arena, (m->nheaders + 1) * sizeof(*hdrs));
	if (!copy || !hdrs)
		return K_ENOMEM;
	memcpy(copy, head, m->head_len);
	for (uint32_t i = 0; i < m->nheaders; i++) {
		hdrs[i].name = (struct k_str){copy + (m->headers[i].name.p - head),
					      m->headers[i].name.len};
		hdrs[i].value = (struct k_str){copy + (m->headers[i].value.p - head),
					       m->headers[i].value.len};
	}
	m->headers = hdrs;
	m->reason = (struct k_str){NULL, 0};
	s->si.resp = m;
	return 0;
}

static void process_response(struct kp_stream *s)
{
	struct kp_uconn *u = s->u;
	struct kp_dconn *dc = s->dc;
	struct kp_worker *w = dc->w;
	while (!s->resp_head_done) {
		uint32_t len = kp_rbuf_len(&u->in);
		if (len == 0)
			return;
		unsigned flags = (s->req.method.len == 4 && memcmp(s->req.method.p, "HEAD", 4) == 0)
					 ? K_H1_REQ_HEAD
					 : 0;
		struct k_h1_error err = {0};
		int rc = k_h1_parse_response(u->in.data + u->in.start, len, s->resp_seen,
					     &dc->hcm->limits, flags, &s->resp, w->hdr_scratch,
					     w->hdr_scratch_cap, &err);
		if (rc == K_EAGAIN) {
			s->resp_seen = len;
			return;
		}
		s->resp_seen = 0;
		if (rc < 0 || s->resp.status == 101) {
			char detail[256];
			snprintf(detail, sizeof(detail),
				 "upstream %s sent an invalid response: %s (cluster %s)",
				 u->host->ep->name,
				 rc < 0 ? (err.reason ? err.reason : "malformed")
					: "unexpected 101 Switching Protocols",
				 s->cl->cfg->name);
			kp_stat_inc(w->stats, CS(s, upstream_cx_protocol_error));
			kp_hcm_local_reply(s, 502, KP_RF_UPE, "upstream sent an invalid response\n",
					   detail);
			return;
		}
		if (s->resp.status < 200) {
			u->in.start += (uint32_t)rc; /* 100 Continue: already answered locally */
			continue;
		}
		s->resp_head_done = 1;
		s->si.upstream_headers_ns = NOW(w);
		count_status(w->stats, CS(s, upstream_rq_1xx), s->resp.status);
		k_h1_body_init(&s->resp_body, &s->resp, &dc->hcm->limits);
		int brc = build_downstream_head(s); /* spans still point into u->in */
		if (!brc && dc->hcm->n_access_logs)
			brc = keep_response_head(s, u->in.data + u->in.start);
		u->in.start += (uint32_t)rc;
		if (brc) {
			kp_hcm_local_reply(s, 503, KP_RF_LR, "out of memory\n",
					   "response head too large for the per-request arena");
			return;
		}
	}
	pump_response(s);
}

/* Move response bytes from the upstream buffer to the downstream. */
static void pump_response(struct kp_stream *s)
{
	struct kp_dconn *dc = s->dc;
	for (;;) {
		struct kp_uconn *u = s->u;
		if (s->dc->out.busy || s->resp_done || s->finished || !u || !s->resp_head_done)
			break;
		struct kp_wq *wq = &dc->out;
		unsigned niov = 0, nch = 0;
		int chunked = s->down_framing == KP_OUT_CHUNKED;
		if (!s->resp_head_sent) {
			wq->iov[niov++] = uv_buf_init(s->down_head, s->down_head_len);
			s->resp_head_sent = 1;
			s->si.response_code = s->resp.status;
			s->si.details = "via_upstream";
			count_status(dc->w->stats, HS(dc, downstream_rq_1xx), s->resp.status);
		}
		while (s->resp.body != K_H1_BODY_NONE && !s->resp_body.done &&
		       niov + 4 <= KP_MAX_IOV && kp_rbuf_len(&u->in)) {
			struct k_str d = {0};
			struct k_h1_error err = {0};
			int c = k_h1_body_decode(&s->resp_body, u->in.data + u->in.start,
						 kp_rbuf_len(&u->in), &d, &err);
			if (c < 0) {
				kp_stat_inc(dc->w->stats, CS(s, upstream_cx_protocol_error));
				s->si.response_flags |= KP_RF_UPE;
				u->in.start = u->in.end;
				s->up_eof = 1; /* stop reading; abort once queued bytes are out */
				break;
			}
			u->in.start += (uint32_t)c;
			if (d.len) {
				s->si.bytes_sent += d.len;
				niov = frame_data(wq, niov, &nch, chunked, d);
			}
			if (c == 0 && d.len == 0)
				break;
		}
		int ended = s->resp.body == K_H1_BODY_NONE || s->resp_body.done ||
			    (s->resp.body == K_H1_BODY_CLOSE && s->up_eof && !kp_rbuf_len(&u->in));
		if (ended) {
			s->resp_done = 1;
			if (chunked)
				wq->iov[niov++] =
					uv_buf_init((char *)LAST_CHUNK, sizeof(LAST_CHUNK) - 1);
		}
		if (niov == 0) {
			if (s->resp_done) {
				kp_hcm_stream_finish(
					s); /* a close-delimited body ended with no new bytes */
				return;
			}
			break;
		}
		uint64_t written = 0;
		int rc = write_iov((uv_stream_t *)&dc->tcp, wq, wq->iov, niov, down_write_cb,
				   &written);
		kp_stat_add(dc->w->stats, HS(dc, downstream_cx_tx_bytes_total), written);
		if (rc < 0) {
			kp_hcm_stream_abort(s, KP_RF_DC);
			return;
		}
		if (rc == 1)
			break;
		if (s->resp_done) {
			kp_hcm_stream_finish(s);
			return;
		}
	}
	if (s->finished || dc->closing)
		return;
	if (s->u && !s->dc->out.busy && s->up_eof && !s->resp_done) {
		/* Upstream went away mid-body (or sent bad framing). */
		kp_hcm_stream_abort(s, s->si.response_flags & KP_RF_UPE ? KP_RF_UPE : KP_RF_UC);
		return;
	}
	if (s->u && !s->dc->out.busy && s->u->in.start == s->u->in.end)
		s->u->in.start = s->u->in.end = 0;
	up_update_reading(s);
}
