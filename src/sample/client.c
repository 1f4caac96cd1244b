/* client.c — kite-sample's fan-out: one HTTP/1.1 GET per configured URL.
 *
 * Every call is its own connection with "Connection: close": the sample is
 * a demo and test workload, and a fresh connection per call is what makes
 * load balancing and fault injection in the mesh visible. Responses are
 * parsed with our codec and the body is kept (bounded) to nest it in the
 * answer.
 *
 * Lifetime: a fanout holds one reference for its owner plus one per open
 * handle or in-flight request (timer, socket, DNS lookup). Finishing a
 * call (answer, error, timeout or cancel) closes its handles; the memory
 * goes when the last reference does, so late libuv callbacks never touch
 * freed memory.
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "h1_codec.h"
#include "k_log.h"
#include "sample.h"

#define CALL_MAX_BODY  (4u << 20)
#define CALL_READ_ROOM (16u * 1024u)

static const struct k_h1_limits g_climits = {K_H1_DEFAULT_MAX_HEAD_BYTES, K_H1_DEFAULT_MAX_HEADERS};

struct call {
	struct fanout *fo;
	const struct call_target *t;
	uv_getaddrinfo_t gai;
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	uv_timer_t timer;
	struct sbuf req;  /* request bytes */
	struct sbuf rb;	  /* response bytes not yet parsed */
	struct sbuf body; /* decoded payload */
	struct addrinfo *ai, *ai_next;
	struct sockaddr_storage addr; /* numeric hosts skip the resolver */
	const char *dial_host;	      /* the target or the proxy */
	uint16_t dial_port;
	int via_proxy;
	int status;
	int last_err; /* libuv error of the last failed connect attempt */
	char err[256];
	uint64_t start_ms, duration_ms;
	unsigned finished : 1;
	unsigned failed : 1;
	unsigned tcp_open : 1;
	unsigned head_done : 1;
	size_t prev_len;
	struct k_h1_msg msg;
	struct k_h1_body_dec dec;
	struct k_h1_header hdrs[K_H1_DEFAULT_MAX_HEADERS];
};

struct fanout {
	uv_loop_t *loop;
	fanout_done_cb done;
	void *arg;
	unsigned n;
	unsigned unfinished;
	unsigned refs;
	unsigned released : 1;
	unsigned starting : 1; /* inside fanout_start */
	struct call calls[];
};

static void fanout_unref(struct fanout *fo)
{
	if (--fo->refs)
		return;
	for (unsigned i = 0; i < fo->n; i++) {
		struct call *call = &fo->calls[i];
		sbuf_free(&call->req);
		sbuf_free(&call->rb);
		sbuf_free(&call->body);
		if (call->ai)
			uv_freeaddrinfo(call->ai);
	}
	free(fo);
}

static void on_call_handle_closed(uv_handle_t *h)
{
	struct call *call = h->data;
	fanout_unref(call->fo);
}

static void connect_next(struct call *call);

static void on_tcp_closed(uv_handle_t *h)
{
	struct call *call = h->data;
	struct fanout *fo = call->fo;
	call->tcp_open = 0;
	/* A failed attempt closed the socket to try the next address. */
	if (!call->finished)
		connect_next(call);
	fanout_unref(fo);
}

/* Record the outcome (fmt == NULL: success) and release the handles. */
static void call_finish(struct call *call, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void on_timeout(uv_timer_t *t);

static void call_finish(struct call *call, const char *fmt, ...)
{
	struct fanout *fo = call->fo;
	if (call->finished)
		return;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(call->err, sizeof(call->err), fmt, ap);
		va_end(ap);
		if (fo->starting) {
			/* Never call the owner back from inside fanout_start:
			 * report it from the loop on its next turn. */
			uv_timer_start(&call->timer, on_timeout, 0, 0);
			return;
		}
		call->failed = 1;
		k_debug("call %s: %s", call->t->url, call->err);
	}
	call->finished = 1;
	call->duration_ms = uv_now(fo->loop) - call->start_ms;
	if (!uv_is_closing((uv_handle_t *)&call->timer))
		uv_close((uv_handle_t *)&call->timer, on_call_handle_closed);
	if (call->tcp_open && !uv_is_closing((uv_handle_t *)&call->tcp))
		uv_close((uv_handle_t *)&call->tcp, on_tcp_closed);
	/* A lookup in flight keeps its reference until its callback. */
	if (call->gai.data)
		uv_cancel((uv_req_t *)&call->gai);
	if (--fo->unfinished == 0 && !fo->released && fo->done) {
		/* The callback may release the fanout; keep it alive until we
		 * are out of here. */
		fo->refs++;
		fo->done(fo->arg, fo);
		fanout_unref(fo);
	}
}

static void on_timeout(uv_timer_t *t)
{
	struct call *call = t->data;
	if (call->err[0]) {
		/* A failure found while starting (see call_finish). */
		char msg[sizeof(call->err)];
		memcpy(msg, call->err, sizeof(msg));
		call_finish(call, "%s", msg);
		return;
	}
	call_finish(call, "timeout after %u ms", g_cfg.call_timeout_ms);
}

static void call_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct call *call = h->data;
	if (sbuf_reserve(&call->rb, CALL_READ_ROOM) != K_OK) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init(call->rb.p + call->rb.len, (unsigned)(call->rb.cap - call->rb.len));
}

/* Parse what rb holds. Returns 1 when the response is complete. */
static int call_consume(struct call *call)
{
	struct k_h1_error err;
	size_t off = 0;
	while (!call->head_done) {
		int rc =
			k_h1_parse_response(call->rb.p, call->rb.len, call->prev_len, &g_climits, 0,
					    &call->msg, call->hdrs, K_ARRAY_LEN(call->hdrs), &err);
		if (rc == K_EAGAIN) {
			call->prev_len = call->rb.len;
			return 0;
		}
		call->prev_len = 0;
		if (rc < 0) {
			call_finish(call, "bad response: %s", err.reason);
			return 1;
		}
		if (call->msg.status < 200) {
			/* 1xx: an interim answer, the real one follows. */
			memmove(call->rb.p, call->rb.p + rc, call->rb.len - (size_t)rc);
			call->rb.len -= (size_t)rc;
			continue;
		}
		call->head_done = 1;
		call->status = call->msg.status;
		off = (size_t)rc;
		if (call->msg.body == K_H1_BODY_NONE) {
			call_finish(call, NULL);
			return 1;
		}
		k_h1_body_init(&call->dec, &call->msg, &g_climits);
	}
	while (off < call->rb.len && !call->dec.done) {
		struct k_str data = {NULL, 0};
		int rc = k_h1_body_decode(&call->dec, call->rb.p + off, call->rb.len - off, &data,
					  &err);
		if (rc < 0) {
			call_finish(call, "bad response body: %s", err.reason);
			return 1;
		}
		if (call->body.len + data.len > CALL_MAX_BODY) {
			call_finish(call, "response body larger than %u bytes", CALL_MAX_BODY);
			return 1;
		}
		sbuf_put(&call->body, data.p, data.len);
		off += (size_t)rc;
		if (rc == 0 && data.len == 0)
			break;
	}
	/* Keep only what the decoder did not take (nothing, in practice). */
	memmove(call->rb.p, call->rb.p + off, call->rb.len - off);
	call->rb.len -= off;
	if (call->body.oom) {
		call_finish(call, "out of memory reading the response");
		return 1;
	}
	if (call->dec.done) {
		call_finish(call, NULL);
		return 1;
	}
	return 0;
}

static void call_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct call *call = s->data;
	if (call->finished)
		return;
	if (nread == UV_EOF) {
		if (call->head_done && call->msg.body == K_H1_BODY_CLOSE)
			call_finish(call, NULL);
		else if (!call->head_done && call->rb.len == 0)
			call_finish(call, "connection closed without a response");
		else
			call_finish(call, "connection closed before the "
					  "response was complete");
		return;
	}
	if (nread < 0) {
		call_finish(call, "read failed: %s", uv_strerror((int)nread));
		return;
	}
	call->rb.len += (size_t)nread;
	call_consume(call);
}

static void call_written(uv_write_t *req, int status)
{
	struct call *call = req->data;
	if (call->finished)
		return;
	if (status < 0)
		call_finish(call, "sending the request failed: %s", uv_strerror(status));
}

static void call_connected(uv_connect_t *req, int status)
{
	struct call *call = req->data;
	if (call->finished)
		return;
	if (status < 0) {
		call->last_err = status;
		/* Try the next address once this socket has closed. */
		uv_close((uv_handle_t *)&call->tcp, on_tcp_closed);
		return;
	}
	uv_buf_t b = uv_buf_init(call->req.p, (unsigned)call->req.len);
	call->wreq.data = call;
	int rc = uv_write(&call->wreq, (uv_stream_t *)&call->tcp, &b, 1, call_written);
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *)&call->tcp, call_alloc, call_read);
	if (rc < 0)
		call_finish(call, "sending the request failed: %s", uv_strerror(rc));
}

static int connect_addr(struct call *call, const struct sockaddr *sa)
{
	int rc = uv_tcp_init(call->fo->loop, &call->tcp);
	if (rc < 0)
		return rc;
	call->tcp.data = call;
	call->tcp_open = 1;
	call->fo->refs++;
	call->creq.data = call;
	rc = uv_tcp_connect(&call->creq, &call->tcp, sa, call_connected);
	if (rc < 0) {
		call->last_err = rc;
		uv_close((uv_handle_t *)&call->tcp, on_tcp_closed);
		return K_OK; /* the close callback moves on */
	}
	return K_OK;
}

/* Connect to the next resolved address, or give up with the last error. */
static void connect_next(struct call *call)
{
	const struct sockaddr *sa = NULL;
	struct sockaddr_storage lit;
	if (call->addr.ss_family) {
		lit = call->addr;
		sa = (const struct sockaddr *)&lit;
		call->addr.ss_family = 0; /* one attempt */
	} else {
		while (call->ai_next && !sa) {
			struct addrinfo *ai = call->ai_next;
			call->ai_next = ai->ai_next;
			if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
				sa = ai->ai_addr;
		}
	}
	if (!sa) {
		call_finish(call, "connect to %s%s:%u failed: %s", call->via_proxy ? "proxy " : "",
			    call->dial_host, call->dial_port,
			    call->last_err ? uv_strerror(call->last_err) : "no usable address");
		return;
	}
	int rc = connect_addr(call, sa);
	if (rc < 0)
		call_finish(call, "connect to %s:%u failed: %s", call->dial_host, call->dial_port,
			    uv_strerror(rc));
}

static void call_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct call *call = req->data;
	struct fanout *fo = call->fo;
	call->gai.data = NULL;
	if (call->finished) {
		if (res)
			uv_freeaddrinfo(res);
		fanout_unref(fo);
		return;
	}
	if (status < 0) {
		call_finish(call, "resolving %s failed: %s", call->dial_host, uv_strerror(status));
	} else {
		call->ai = call->ai_next = res;
		connect_next(call);
	}
	fanout_unref(fo);
}

/* Does no_proxy exempt this host? Entries are host names or domain
 * suffixes (".example.com" or "example.com"), or "*" for everything. */
static int no_proxy_match(const char *host)
{
	const char *np = g_cfg.no_proxy;
	if (!np)
		return 0;
	size_t hl = strlen(host);
	while (*np) {
		while (*np == ',' || *np == ' ')
			np++;
		size_t n = strcspn(np, ", ");
		const char *e = np;
		size_t el = n;
		/* Ports in entries are ignored; brackets on IPv6 too. */
		if (el && e[0] == '[') {
			const char *rb = memchr(e, ']', el);
			if (rb) {
				e++;
				el = (size_t)(rb - e);
			}
		} else {
			const char *colon = memchr(e, ':', el);
			if (colon && !memchr(colon + 1, ':', el - (size_t)(colon + 1 - e)))
				el = (size_t)(colon - e);
		}
		if (el && e[0] == '.') {
			e++;
			el--;
		}
		if (el == 1 && e[0] == '*')
			return 1;
		if (el && el <= hl && strncasecmp(host + hl - el, e, el) == 0 &&
		    (el == hl || host[hl - el - 1] == '.'))
			return 1;
		np += n;
	}
	return 0;
}

static void build_request(struct call *call, const struct fanout_hdr *hdrs, unsigned nhdrs)
{
	const struct call_target *t = call->t;
	struct sbuf *r = &call->req;
	int has_ua = 0;
	sbuf_puts(r, "GET ");
	if (call->via_proxy) {
		/* absolute-form, as a forward proxy expects (RFC 9112 3.2.2) */
		sbuf_puts(r, "http://");
		sbuf_puts(r, t->authority);
	}
	sbuf_puts(r, t->path);
	sbuf_puts(r, " HTTP/1.1\r\nHost: ");
	sbuf_puts(r, t->authority);
	sbuf_puts(r, "\r\n");
	for (unsigned i = 0; i < nhdrs; i++) {
		if (k_str_ieq_lit(hdrs[i].name, "user-agent"))
			has_ua = 1;
		sbuf_put(r, hdrs[i].name.p, hdrs[i].name.len);
		sbuf_put(r, ": ", 2);
		sbuf_put(r, hdrs[i].value.p, hdrs[i].value.len);
		sbuf_put(r, "\r\n", 2);
	}
	if (!has_ua) {
		sbuf_puts(r, "User-Agent: kite-sample/");
		sbuf_puts(r, g_cfg.workload);
		sbuf_puts(r, "\r\n");
	}
	sbuf_puts(r, "Accept: */*\r\nConnection: close\r\n\r\n");
}

static void call_start(struct call *call, const struct fanout_hdr *hdrs, unsigned nhdrs)
{
	struct fanout *fo = call->fo;
	const struct call_target *t = call->t;
	call->start_ms = uv_now(fo->loop);
	uv_timer_init(fo->loop, &call->timer);
	call->timer.data = call;
	fo->refs++;
	uv_timer_start(&call->timer, on_timeout, g_cfg.call_timeout_ms, 0);

	call->via_proxy = g_cfg.proxy.enabled && !no_proxy_match(t->host);
	call->dial_host = call->via_proxy ? g_cfg.proxy.host : t->host;
	call->dial_port = call->via_proxy ? g_cfg.proxy.port : t->port;
	build_request(call, hdrs, nhdrs);
	if (call->req.oom) {
		call_finish(call, "out of memory building the request");
		return;
	}
	/* Literal addresses (the usual loopback case) need no lookup. */
	if (uv_ip4_addr(call->dial_host, call->dial_port, (struct sockaddr_in *)&call->addr) == 0 ||
	    uv_ip6_addr(call->dial_host, call->dial_port, (struct sockaddr_in6 *)&call->addr) ==
		    0) {
		connect_next(call);
		return;
	}
	memset(&call->addr, 0, sizeof(call->addr));
	char port[8];
	snprintf(port, sizeof(port), "%u", call->dial_port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	call->gai.data = call;
	fo->refs++;
	int rc = uv_getaddrinfo(fo->loop, &call->gai, call_resolved, call->dial_host, port, &hints);
	if (rc < 0) {
		fo->refs--;
		call->gai.data = NULL;
		call_finish(call, "resolving %s failed: %s", call->dial_host, uv_strerror(rc));
	}
}

struct fanout *fanout_start(uv_loop_t *loop, const struct fanout_hdr *hdrs, unsigned nhdrs,
			    fanout_done_cb done, void *arg)
{
	unsigned n = g_cfg.ncalls;
	struct fanout *fo = calloc(1, sizeof(*fo) + n * sizeof(struct call));
	if (!fo)
		return NULL;
	fo->loop = loop;
	fo->done = done;
	fo->arg = arg;
	fo->n = n;
	fo->unfinished = n;
	/* The owner's reference, plus one held while starting so that a
	 * synchronous failure cannot free the fanout under us. */
	fo->refs = 2;
	fo->starting = 1;
	for (unsigned i = 0; i < n; i++) {
		fo->calls[i].fo = fo;
		fo->calls[i].t = &g_cfg.calls[i];
	}
	for (unsigned i = 0; i < n; i++)
		call_start(&fo->calls[i], hdrs, nhdrs);
	fo->starting = 0;
	fanout_unref(fo);
	return fo;
}

unsigned fanout_count(const struct fanout *fo)
{
	return fo->n;
}

void fanout_result(const struct fanout *fo, unsigned i, struct call_result *r)
{
	const struct call *call = &fo->calls[i];
	r->url = call->t->url;
	r->status = call->failed ? 0 : call->status;
	r->body = call->body.p ? call->body.p : "";
	r->body_len = call->body.len;
	r->error = call->failed ? call->err : NULL;
	r->duration_ms = call->duration_ms;
}

void fanout_release(struct fanout *fo)
{
	fo->released = 1;
	fo->refs++;
	for (unsigned i = 0; i < fo->n; i++)
		call_finish(&fo->calls[i], "cancelled");
	fanout_unref(fo);
	fanout_unref(fo);
}
