/* server.c — kite-sample's HTTP/1.1 server side.
 *
 * One connection is a small state machine over one fixed read buffer:
 *
 *   HEAD  → parse a request head with the codec (zero-copy: the head stays
 *           where it was read, "pinned", until its response is done)
 *   BODY  → decode and count body bytes; they are dropped as soon as they
 *           are counted, so an upload of any size needs no memory
 *   BUSY  → waiting for ?delay_ms or the fan-out calls (reading paused)
 *   STREAM→ writing a ?size body in pieces from a static pattern, one piece
 *           in flight at a time (write backpressure, bounded memory)
 *   CLOSING → shut down our side, drain what the peer still sends, close
 *
 * Simple answers are formatted into a per-connection output buffer and
 * every request already in the read buffer is answered before one
 * uv_try_write, so pipelined requests cost one syscall per batch and a
 * keep-alive GET costs no allocation once the buffers are warm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "h1_codec.h"
#include "k_log.h"
#include "sample.h"

#define RBUF_CAP (96u * 1024u)
/* A pinned head must leave at least this much room to read a body into;
 * RBUF_CAP - max head (60 KiB) is more than this, so compaction works. */
#define BODY_ROOM (32u * 1024u)
/* Stop taking new pipelined requests while this much output is queued. */
#define OUT_HIGH     (256u * 1024u)
#define PATTERN_LEN  (64u * 1024u)
#define STREAM_PIECE (4u * PATTERN_LEN)
/* ?size bodies up to this size are copied into the output buffer and go
 * out with the head in one write; larger ones are streamed. */
#define SIZE_INLINE   (16u * 1024u)
#define LINGER_MS     2000u
#define MAX_PROPAGATE 32u

enum conn_state { CS_HEAD, CS_BODY, CS_BUSY, CS_STREAM, CS_CLOSING };

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer; /* ?delay_ms, then the lingering close */
	uv_write_t swr;	  /* the one in-flight piece of a streamed body */
	uv_shutdown_t shut;
	struct conn *prev, *next;
	enum conn_state state;
	unsigned reading : 1;
	unsigned closing : 1; /* uv_close called; waiting for close_cb */
	unsigned linger : 1;
	unsigned handles; /* open handles; freed at zero */

	/* rbuf[pin .. pin + head_len) is the current head; rbuf[off .. len)
	 * is unparsed input. */
	size_t pin, off, len, prev_len;
	struct k_h1_msg msg;
	struct k_h1_body_dec dec;
	uint64_t body_bytes;
	struct controls ctl;
	struct k_str path, query, host;
	struct fanout *fo;

	uint64_t stream_left, stream_piece;
	unsigned stream_chunked : 1;
	char chunk_hdr[K_H1_CHUNK_HEADER_MAX];

	struct sbuf out;
	struct k_h1_header hdrs[K_H1_DEFAULT_MAX_HEADERS];
	char rbuf[RBUF_CAP];
};

/* A copied remainder of the output buffer that the socket did not take. */
struct wreq {
	uv_write_t req;
	struct conn *c;
	char data[];
};

struct listener {
	uv_tcp_t tcp;
	struct listener *next;
};

static uv_loop_t *g_loop;
static struct listener *g_listeners;
static struct conn *g_conns;
static int g_stopping;
static struct sbuf g_body; /* scratch for JSON bodies; single-threaded */
static char g_pattern[PATTERN_LEN];
static struct sbuf g_json_prefix; /* {"workload":...,"version":..., */
static const struct k_h1_limits g_limits = {K_H1_DEFAULT_MAX_HEAD_BYTES, K_H1_DEFAULT_MAX_HEADERS};
static char g_date[64];
static size_t g_date_len;
static time_t g_date_sec = -1;

static const char *const k_propagate[] = {
	"x-request-id",
	"traceparent",
	"tracestate",
	"b3",
	"x-b3-traceid",
	"x-b3-spanid",
	"x-b3-parentspanid",
	"x-b3-sampled",
	"x-b3-flags",
	"x-ot-span-context",
	"x-cloud-trace-context",
	"grpc-trace-bin",
	"sw8",
	"x-datadog-trace-id",
	"x-datadog-parent-id",
	"x-datadog-sampling-priority",
	/* Istio's header-based routing demos key on these. */
	"end-user",
	"user-agent",
};

static void conn_process(struct conn *c);
static void conn_close(struct conn *c);
static void conn_finish(struct conn *c, int linger);
static void respond(struct conn *c);

/* ---- small helpers ------------------------------------------------------ */

static void date_refresh(void)
{
	time_t now = time(NULL);
	if (now == g_date_sec)
		return;
	struct tm tm;
	gmtime_r(&now, &tm);
	g_date_len = strftime(g_date, sizeof(g_date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	g_date_sec = now;
}

/* Split the target into path and query; absolute-form targets (a client
 * that thinks we are a proxy) lose their scheme and authority. */
static void split_target(struct conn *c)
{
	struct k_str t = c->msg.target;
	struct k_str auth = {NULL, 0};
	if (c->msg.target_form == K_H1_TARGET_ABSOLUTE) {
		const char *s = memchr(t.p, ':', t.len);
		const char *end = t.p + t.len;
		if (s && end - s >= 3 && s[1] == '/' && s[2] == '/') {
			const char *a = s + 3, *e = a;
			while (e < end && *e != '/' && *e != '?')
				e++;
			auth = (struct k_str){a, (size_t)(e - a)};
			t = (struct k_str){e, (size_t)(end - e)};
		}
	}
	const char *q = memchr(t.p, '?', t.len);
	if (q) {
		c->path = (struct k_str){t.p, (size_t)(q - t.p)};
		c->query = (struct k_str){q + 1, (size_t)(t.p + t.len - q - 1)};
	} else {
		c->path = t;
		c->query = (struct k_str){t.p + t.len, 0};
	}
	if (c->path.len == 0)
		c->path = K_STR_LIT("/");
	if (c->msg.host_idx >= 0)
		c->host = c->hdrs[c->msg.host_idx].value;
	else
		c->host = auth;
}

/* ---- output ------------------------------------------------------------- */

static void on_wreq_done(uv_write_t *req, int status)
{
	struct wreq *w = K_CONTAINER_OF(req, struct wreq, req);
	struct conn *c = w->c;
	free(w);
	if (c->closing)
		return;
	if (status < 0) {
		k_debug("write failed: %s", uv_strerror(status));
		conn_close(c);
		return;
	}
	/* Pipelined input may be waiting for the queue to drain. */
	if (c->state == CS_HEAD && !c->reading && c->tcp.write_queue_size < OUT_HIGH)
		conn_process(c);
}

/* Send the output buffer: try the socket directly (no allocation when it
 * takes everything, the normal case) and queue a copy of any remainder. */
static int conn_flush(struct conn *c)
{
	if (c->out.len == 0)
		return K_OK;
	size_t done = 0;
	if (c->tcp.write_queue_size == 0) {
		uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (n >= 0)
			done = (size_t)n;
		else if (n != UV_EAGAIN) {
			k_debug("write failed: %s", uv_strerror(n));
			c->out.len = 0;
			conn_close(c);
			return K_EIO;
		}
	}
	if (done < c->out.len) {
		size_t rest = c->out.len - done;
		struct wreq *w = malloc(sizeof(*w) + rest);
		if (!w) {
			c->out.len = 0;
			conn_close(c);
			return K_ENOMEM;
		}
		w->c = c;
		memcpy(w->data, c->out.p + done, rest);
		uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
		int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_wreq_done);
		if (rc < 0) {
			free(w);
			c->out.len = 0;
			conn_close(c);
			return K_EIO;
		}
	}
	c->out.len = 0;
	/* One huge answer should not pin its buffer for the connection's
	 * life. */
	sbuf_trim(&c->out, 1u << 20);
	return K_OK;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;
	if (c->state == CS_CLOSING) {
		/* Lingering: the bytes are discarded, reuse the whole buffer.
		 */
		*buf = uv_buf_init(c->rbuf, RBUF_CAP);
		return;
	}
	*buf = uv_buf_init(c->rbuf + c->len, (unsigned)(RBUF_CAP - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void conn_set_reading(struct conn *c, int on)
{
	if (on == (int)c->reading || c->closing)
		return;
	if (on) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
			conn_close(c);
			return;
		}
	} else {
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
	c->reading = on ? 1 : 0;
}

/* ---- connection lifetime ------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->handles == 0) {
		sbuf_free(&c->out);
		free(c);
	}
}

static void conn_unlink(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (g_conns == c)
		g_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void conn_close_how(struct conn *c, int reset)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->reading = 0;
	conn_unlink(c);
	if (c->fo) {
		fanout_release(c->fo);
		c->fo = NULL;
	}
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	if (!reset || uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
		uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void conn_close(struct conn *c)
{
	conn_close_how(c, 0);
}

static void on_linger_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;
	if (c->closing)
		return;
	if (status < 0 || !c->linger) {
		conn_close(c);
		return;
	}
	/* Keep reading (and dropping) until the peer closes, so unread
	 * request bytes do not make the kernel answer with a reset that
	 * could destroy our last response before the peer reads it. */
	conn_set_reading(c, 1);
	uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
}

/* Close after everything queued has been written. */
static void conn_finish(struct conn *c, int linger)
{
	if (c->closing || c->state == CS_CLOSING)
		return;
	if (conn_flush(c) != K_OK)
		return;
	c->state = CS_CLOSING;
	c->linger = linger ? 1 : 0;
	conn_set_reading(c, 0);
	uv_timer_stop(&c->timer);
	c->shut.data = c;
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
		conn_close(c);
}

/* ---- responses ---------------------------------------------------------- */

static int body_allowed(int status)
{
	return status != 204 && status != 304;
}

/* Status line and the fixed fields. `clen` < 0 means chunked (or no body
 * for 204/304). `close` adds Connection: close. */
static void put_head(struct conn *c, int status, const char *ctype, int64_t clen, int close)
{
	struct sbuf *o = &c->out;
	date_refresh();
	if (K_LIKELY(status == 200)) {
		sbuf_put(o, "HTTP/1.1 200 OK\r\n", 17);
	} else {
		sbuf_put(o, "HTTP/1.1 ", 9);
		sbuf_put_u64(o, (uint64_t)status);
		sbuf_putc(o, ' ');
		sbuf_puts(o, k_h1_reason(status));
		sbuf_put(o, "\r\n", 2);
	}
	sbuf_put(o, "Server: kite-sample\r\n", 21);
	sbuf_put(o, g_date, g_date_len);
	if (body_allowed(status)) {
		sbuf_put(o, "Content-Type: ", 14);
		sbuf_puts(o, ctype);
		sbuf_put(o, "\r\n", 2);
		if (clen >= 0) {
			sbuf_put(o, "Content-Length: ", 16);
			sbuf_put_u64(o, (uint64_t)clen);
			sbuf_put(o, "\r\n", 2);
		} else {
			sbuf_put(o, "Transfer-Encoding: chunked\r\n", 28);
		}
	}
	if (close)
		sbuf_put(o, "Connection: close\r\n", 19);
	else if (c->msg.minor == 0)
		sbuf_put(o, "Connection: keep-alive\r\n", 24);
	if (c->ctl.headers.len) {
		const char *why;
		ctl_extra_headers(c->ctl.headers, o, &why);
	}
	sbuf_put(o, "\r\n", 2);
}

static int want_close(const struct conn *c)
{
	return c->ctl.close || !c->msg.keep_alive || g_stopping;
}

/* The response is fully queued: close or go on with the next request. */
static void response_done(struct conn *c)
{
	if (want_close(c)) {
		conn_finish(c, 1);
		return;
	}
	c->state = CS_HEAD;
}

/* A complete response with an in-memory body (JSON or text). */
static void send_simple(struct conn *c, int status, const char *ctype, const char *body, size_t len)
{
	int is_head = k_str_eq(c->msg.method, K_STR_LIT("HEAD"));
	int chunked = c->ctl.chunked && c->msg.minor == 1 && body_allowed(status);
	int close = want_close(c);
	if (!body_allowed(status))
		len = 0;
	put_head(c, status, ctype, chunked ? -1 : (int64_t)len, close);
	if (!is_head && body_allowed(status)) {
		if (chunked) {
			char hdr[K_H1_CHUNK_HEADER_MAX];
			if (len) {
				sbuf_put(&c->out, hdr, k_h1_chunk_header(hdr, len));
				sbuf_put(&c->out, body, len);
				sbuf_put(&c->out, "\r\n", 2);
			}
			sbuf_put(&c->out, K_H1_LAST_CHUNK, sizeof(K_H1_LAST_CHUNK) - 1);
		} else {
			sbuf_put(&c->out, body, len);
		}
	}
	if (c->out.oom) {
		c->out.len = 0;
		c->out.oom = 0;
		conn_close(c);
		return;
	}
	response_done(c);
}

static void send_error_json(struct conn *c, int status, const char *error, const char *param,
			    const char *reason)
{
	struct sbuf *b = &g_body;
	b->len = 0;
	sbuf_puts(b, "{\"workload\":");
	json_str(b, g_cfg.workload, strlen(g_cfg.workload), 0);
	sbuf_puts(b, ",\"error\":");
	json_str(b, error, strlen(error), 0);
	if (param) {
		sbuf_puts(b, ",\"parameter\":");
		json_str(b, param, strlen(param), 0);
	}
	if (reason) {
		sbuf_puts(b, ",\"reason\":");
		json_str(b, reason, strlen(reason), 0);
	}
	sbuf_puts(b, "}\n");
	send_simple(c, status, "application/json", b->p, b->len);
}

/* The codec rejected the request: answer and close, since we can no longer
 * tell where the next message would start. */
static void send_protocol_error(struct conn *c, const struct k_h1_error *err)
{
	k_debug("bad request: %s (status %d at byte %u)", err->reason, err->status, err->offset);
	c->ctl = (struct controls){0};
	c->ctl.close = 1;
	if (c->state == CS_HEAD) {
		/* The head failed to parse: no fields to look at. */
		c->msg = (struct k_h1_msg){.minor = 1, .host_idx = -1};
	}
	send_error_json(c, err->status ? err->status : 400, err->reason, NULL, NULL);
	conn_finish(c, 1);
}

static void json_headers(struct sbuf *b, const struct conn *c)
{
	sbuf_putc(b, '{');
	int first = 1;
	for (uint32_t i = 0; i < c->msg.nheaders; i++) {
		const struct k_h1_header *h = &c->hdrs[i];
		int seen = 0;
		for (uint32_t j = 0; j < i && !seen; j++)
			seen = k_str_ieq(c->hdrs[j].name, h->name);
		if (seen)
			continue;
		if (!first)
			sbuf_putc(b, ',');
		first = 0;
		json_str(b, h->name.p, h->name.len, 1);
		sbuf_put(b, ":\"", 2);
		json_esc(b, h->value.p, h->value.len, 0);
		/* Repeated fields are one list value (RFC 9110 5.3). */
		for (uint32_t j = i + 1; j < c->msg.nheaders; j++)
			if (k_str_ieq(c->hdrs[j].name, h->name)) {
				sbuf_put(b, ", ", 2);
				json_esc(b, c->hdrs[j].value.p, c->hdrs[j].value.len, 0);
			}
		sbuf_putc(b, '"');
	}
	sbuf_putc(b, '}');
}

static int json_calls(struct sbuf *b, const struct fanout *fo)
{
	int failed = 0;
	sbuf_putc(b, '[');
	for (unsigned i = 0; fo && i < fanout_count(fo); i++) {
		struct call_result r;
		fanout_result(fo, i, &r);
		if (i)
			sbuf_putc(b, ',');
		sbuf_puts(b, "{\"url\":");
		json_str(b, r.url, strlen(r.url), 0);
		if (r.error) {
			failed = 1;
			sbuf_puts(b, ",\"error\":");
			json_str(b, r.error, strlen(r.error), 0);
		} else {
			if (r.status >= 500)
				failed = 1;
			sbuf_puts(b, ",\"status\":");
			sbuf_put_u64(b, (uint64_t)r.status);
		}
		sbuf_puts(b, ",\"duration_ms\":");
		sbuf_put_u64(b, r.duration_ms);
		if (!r.error) {
			sbuf_puts(b, ",\"body\":");
			if (json_valid(r.body, r.body_len)) {
				/* Trim the trailing newline so the nesting
				 * reads as one document. */
				size_t n = r.body_len;
				while (n && (r.body[n - 1] == '\n' || r.body[n - 1] == '\r' ||
					     r.body[n - 1] == ' '))
					n--;
				sbuf_put(b, r.body, n);
			} else {
				json_str(b, r.body, r.body_len, 0);
			}
		}
		sbuf_putc(b, '}');
	}
	sbuf_putc(b, ']');
	return failed;
}

static void send_json(struct conn *c)
{
	struct sbuf *b = &g_body;
	b->len = 0;
	sbuf_put(b, g_json_prefix.p, g_json_prefix.len);
	sbuf_puts(b, "\"method\":");
	json_kstr(b, c->msg.method);
	sbuf_puts(b, ",\"path\":");
	json_kstr(b, c->path);
	sbuf_puts(b, ",\"query\":");
	json_kstr(b, c->query);
	sbuf_puts(b, ",\"host\":");
	json_kstr(b, c->host);
	sbuf_puts(b, c->msg.minor ? ",\"protocol\":\"HTTP/1.1\"" : ",\"protocol\":\"HTTP/1.0\"");
	if (!c->ctl.no_echo_headers) {
		sbuf_puts(b, ",\"headers\":");
		json_headers(b, c);
	}
	sbuf_puts(b, ",\"body_bytes\":");
	sbuf_put_u64(b, c->body_bytes);
	sbuf_puts(b, ",\"calls\":");
	int failed = json_calls(b, c->fo);
	sbuf_puts(b, "}\n");
	if (c->fo) {
		fanout_release(c->fo);
		c->fo = NULL;
	}
	if (b->oom) {
		sbuf_trim(b, 0);
		send_error_json(c, 500, "out of memory", NULL, NULL);
		return;
	}
	int status = c->ctl.status ? c->ctl.status : 200;
	if (failed && c->ctl.fail_on_call_error)
		status = 502;
	send_simple(c, status, "application/json", b->p, b->len);
	sbuf_trim(b, 4u << 20);
}

static void on_stream_written(uv_write_t *req, int status);

/* Queue the next piece of a ?size body: a run of the static pattern,
 * framed as one chunk when chunked; nothing is copied. */
static void stream_pump(struct conn *c)
{
	static const char crlf_last[] = "\r\n" K_H1_LAST_CHUNK;
	uv_buf_t bufs[2 + STREAM_PIECE / PATTERN_LEN];
	unsigned n = 0;
	uint64_t piece = K_MIN(c->stream_left, (uint64_t)STREAM_PIECE);
	int last = piece == c->stream_left;
	if (c->stream_chunked)
		bufs[n++] =
			uv_buf_init(c->chunk_hdr, (unsigned)k_h1_chunk_header(c->chunk_hdr, piece));
	for (uint64_t left = piece; left;) {
		unsigned k = (unsigned)K_MIN(left, (uint64_t)PATTERN_LEN);
		bufs[n++] = uv_buf_init(g_pattern, k);
		left -= k;
	}
	if (c->stream_chunked)
		bufs[n++] = uv_buf_init((char *)crlf_last, last ? sizeof(crlf_last) - 1 : 2);
	c->stream_piece = piece;
	c->swr.data = c;
	if (uv_write(&c->swr, (uv_stream_t *)&c->tcp, bufs, n, on_stream_written) < 0)
		conn_close(c);
}

static void on_stream_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	if (c->closing)
		return;
	if (status < 0) {
		k_debug("stream write failed: %s", uv_strerror(status));
		conn_close(c);
		return;
	}
	c->stream_left -= c->stream_piece;
	if (c->stream_left) {
		stream_pump(c);
		return;
	}
	response_done(c);
	if (c->state == CS_HEAD)
		conn_process(c);
}

static void send_sized(struct conn *c)
{
	int status = c->ctl.status ? c->ctl.status : 200;
	int is_head = k_str_eq(c->msg.method, K_STR_LIT("HEAD"));
	uint64_t size = body_allowed(status) ? c->ctl.size : 0;
	if (size <= SIZE_INLINE || is_head) {
		/* g_pattern is longer than SIZE_INLINE. */
		send_simple(c, status, "application/octet-stream", g_pattern, (size_t)size);
		return;
	}
	int chunked = c->ctl.chunked && c->msg.minor == 1;
	put_head(c, status, "application/octet-stream", chunked ? -1 : (int64_t)size,
		 want_close(c));
	if (conn_flush(c) != K_OK)
		return;
	c->state = CS_STREAM;
	c->stream_left = size;
	c->stream_chunked = chunked ? 1 : 0;
	stream_pump(c);
}

static void respond(struct conn *c)
{
	if (c->ctl.has_size)
		send_sized(c);
	else
		send_json(c);
}

/* ---- request dispatch --------------------------------------------------- */

static void on_fanout_done(void *arg, struct fanout *fo)
{
	struct conn *c = arg;
	if (c->closing)
		return;
	respond(c);
	if (!c->closing && c->state == CS_HEAD)
		conn_process(c);
}

static void start_calls(struct conn *c)
{
	struct fanout_hdr hv[MAX_PROPAGATE];
	unsigned n = 0;
	for (uint32_t i = 0; i < c->msg.nheaders && n < MAX_PROPAGATE; i++)
		for (size_t k = 0; k < K_ARRAY_LEN(k_propagate); k++)
			if (k_str_ieq_lit(c->hdrs[i].name, k_propagate[k])) {
				hv[n].name = c->hdrs[i].name;
				hv[n].value = c->hdrs[i].value;
				n++;
				break;
			}
	c->fo = fanout_start(g_loop, hv, n, on_fanout_done, c);
	if (!c->fo)
		send_error_json(c, 500, "out of memory starting calls", NULL, NULL);
}

static void on_delay(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (g_cfg.ncalls && !c->ctl.has_size) {
		start_calls(c);
		if (c->fo)
			return;
	} else {
		respond(c);
	}
	if (!c->closing && c->state == CS_HEAD)
		conn_process(c);
}

/* The whole request (head and body) is in: decide how to answer. On return
 * the state is HEAD (answered), BUSY/STREAM (answer pending) or CLOSING. */
static void dispatch(struct conn *c)
{
	struct controls *ctl = &c->ctl;
	if (ctl->bad_param) {
		c->ctl.status = 0;
		c->ctl.headers = (struct k_str){0};
		c->ctl.chunked = 0;
		send_error_json(c, 400, "invalid query parameter", ctl->bad_param, ctl->bad_reason);
		return;
	}
	if (ctl->drop) {
		k_debug("dropping connection as asked (?drop)");
		if (ctl->drop == DROP_RST) {
			conn_close_how(c, 1);
		} else {
			conn_finish(c, 1);
		}
		return;
	}
	if (k_str_eq(c->path, K_STR_LIT("/healthz")) && !ctl->has_size && !ctl->delay_ms) {
		send_simple(c, 200, "text/plain", "ok\n", 3);
		return;
	}
	if (ctl->delay_ms) {
		c->state = CS_BUSY;
		c->timer.data = c;
		/* The loop's clock is from the start of this iteration; without
		 * a refresh the delay could end a little early. */
		uv_update_time(c->timer.loop);
		uv_timer_start(&c->timer, on_delay, ctl->delay_ms, 0);
		return;
	}
	if (g_cfg.ncalls && !ctl->has_size) {
		c->state = CS_BUSY;
		start_calls(c);
		return;
	}
	respond(c);
}

static void begin_request(struct conn *c)
{
	c->body_bytes = 0;
	c->ctl = (struct controls){0};
	split_target(c);
	ctl_parse(c->query, &c->ctl);
	if (c->msg.body != K_H1_BODY_NONE) {
		k_h1_body_init(&c->dec, &c->msg, &g_limits);
		c->state = CS_BODY;
		/* Only ask for the body when none of it has arrived; clients
		 * that did not wait must not see a stray 100. */
		if (c->msg.expect_continue && c->msg.minor == 1 && c->off == c->len)
			sbuf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
		return;
	}
	c->state = CS_BUSY;
	dispatch(c);
}

/* Parse and answer what the read buffer holds, then flush once. */
static void conn_process(struct conn *c)
{
	struct k_h1_error err;
	while (!c->closing) {
		if (c->state == CS_HEAD) {
			if (c->out.len + c->tcp.write_queue_size >= OUT_HIGH) {
				if (conn_flush(c) != K_OK)
					return;
				if (c->tcp.write_queue_size >= OUT_HIGH) {
					k_trace("%zu bytes unsent: pausing "
						"input",
						c->tcp.write_queue_size);
					break; /* on_wreq_done resumes */
				}
			}
			if (c->off == c->len) {
				c->off = c->len = c->pin = c->prev_len = 0;
				break;
			}
			int rc = k_h1_parse_request(c->rbuf + c->off, c->len - c->off, c->prev_len,
						    &g_limits, &c->msg, c->hdrs,
						    K_ARRAY_LEN(c->hdrs), &err);
			if (rc == K_EAGAIN) {
				c->prev_len = c->len - c->off;
				if (c->off) {
					memmove(c->rbuf, c->rbuf + c->off, c->len - c->off);
					c->len -= c->off;
					c->off = 0;
				}
				break;
			}
			c->prev_len = 0;
			if (rc < 0) {
				send_protocol_error(c, &err);
				return;
			}
			if (c->msg.body != K_H1_BODY_NONE && c->off &&
			    RBUF_CAP - (c->off + (size_t)rc) < BODY_ROOM) {
				/* Move the head to the front so the body has
				 * room; the spans point into the old place,
				 * so parse it again (rare). */
				memmove(c->rbuf, c->rbuf + c->off, c->len - c->off);
				c->len -= c->off;
				c->off = 0;
				rc = k_h1_parse_request(c->rbuf, c->len, 0, &g_limits, &c->msg,
							c->hdrs, K_ARRAY_LEN(c->hdrs), &err);
				if (rc < 0) {
					send_protocol_error(c, &err);
					return;
				}
			}
			c->pin = c->off;
			c->off += (size_t)rc;
			if (k_str_eq(c->msg.method, K_STR_LIT("CONNECT"))) {
				c->ctl = (struct controls){.close = 1};
				send_error_json(c, 405, "CONNECT is not supported", NULL, NULL);
				continue;
			}
			begin_request(c);
		} else if (c->state == CS_BODY) {
			while (c->off < c->len && !c->dec.done) {
				struct k_str data = {NULL, 0};
				int rc = k_h1_body_decode(&c->dec, c->rbuf + c->off,
							  c->len - c->off, &data, &err);
				if (rc < 0) {
					send_protocol_error(c, &err);
					return;
				}
				c->off += (size_t)rc;
				c->body_bytes += data.len;
				if (rc == 0 && data.len == 0)
					break;
			}
			if (!c->dec.done) {
				/* What was decoded was body: drop it, keeping
				 * only bytes the decoder did not take (none, in
				 * practice) right after the pinned head. */
				size_t base = c->pin + c->msg.head_len;
				size_t keep = c->len - c->off;
				if (keep && c->off != base)
					memmove(c->rbuf + base, c->rbuf + c->off, keep);
				c->off = base;
				c->len = base + keep;
				break;
			}
			c->state = CS_BUSY;
			dispatch(c);
		} else {
			break;
		}
	}
	if (c->closing)
		return;
	if (conn_flush(c) != K_OK)
		return;
	if (c->state == CS_HEAD || c->state == CS_BODY)
		conn_set_reading(c, c->tcp.write_queue_size < OUT_HIGH);
	else if (c->state != CS_CLOSING)
		conn_set_reading(c, 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (c->closing)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			k_debug("read failed: %s", uv_strerror((int)nread));
		if (c->state == CS_CLOSING || nread != UV_EOF) {
			conn_close(c);
			return;
		}
		/* The peer is done sending; let queued answers go out. */
		conn_finish(c, 0);
		return;
	}
	if (nread == 0)
		return;
	if (c->state == CS_CLOSING)
		return;
	c->len += (size_t)nread;
	conn_process(c);
}

static void on_connection(uv_stream_t *ls, int status)
{
	if (status < 0) {
		k_warn("accept: %s", uv_strerror(status));
		return;
	}
	/* Only the header part needs zeroing; rbuf is written before read. */
	struct conn *c = malloc(sizeof(*c));
	if (!c) {
		k_error("out of memory accepting a connection");
		return;
	}
	memset(c, 0, offsetof(struct conn, hdrs));
	uv_tcp_init(ls->loop, &c->tcp);
	c->tcp.data = c;
	c->handles = 1;
	if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
		return;
	}
	uv_timer_init(ls->loop, &c->timer);
	c->timer.data = c;
	c->handles = 2;
	/* Every answer is one write; waiting for an ACK (Nagle) would only
	 * add latency to pipelined and streamed responses. */
	uv_tcp_nodelay(&c->tcp, 1);
	c->state = CS_HEAD;
	c->next = g_conns;
	if (g_conns)
		g_conns->prev = c;
	g_conns = c;
	conn_set_reading(c, 1);
}

/* ---- listeners ---------------------------------------------------------- */

static int parse_listen(const char *addr, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(addr, ':');
	if (!colon)
		return K_EINVAL;
	const char *hs = addr, *he = colon;
	if (*hs == '[') {
		if (he == hs || he[-1] != ']')
			return K_EINVAL;
		hs++;
		he--;
	}
	size_t hl = (size_t)(he - hs);
	if (hl >= sizeof(host))
		return K_EINVAL;
	memcpy(host, hs, hl);
	host[hl] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		return K_EINVAL;
	if (hl == 0 || !strcmp(host, "*"))
		strcpy(host, "0.0.0.0");
	if (strchr(host, ':'))
		return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) ? K_EINVAL : K_OK;
	return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) ? K_EINVAL : K_OK;
}

static void on_listener_closed(uv_handle_t *h)
{
	free(h->data);
}

int server_listen(uv_loop_t *loop, const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (parse_listen(addr, &ss) != K_OK) {
		k_error("bad listen address \"%s\" (want HOST:PORT)", addr);
		return K_EINVAL;
	}
	struct listener *l = calloc(1, sizeof(*l));
	if (!l)
		return K_ENOMEM;
	uv_tcp_init(loop, &l->tcp);
	l->tcp.data = l;
	int rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
	if (rc < 0) {
		k_error("listen on %s: %s", addr, uv_strerror(rc));
		uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
		return K_EIO;
	}
	l->next = g_listeners;
	g_listeners = l;
	k_info("listening on %s", addr);
	return K_OK;
}

int server_init(uv_loop_t *loop)
{
	g_loop = loop;
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789+/";
	/* 64 divides PATTERN_LEN, so consecutive pieces continue the
	 * pattern seamlessly: byte i of any body is alphabet[i % 64]. */
	for (size_t i = 0; i < PATTERN_LEN; i++)
		g_pattern[i] = alphabet[i % 64];
	struct sbuf *p = &g_json_prefix;
	sbuf_puts(p, "{\"workload\":");
	json_str(p, g_cfg.workload, strlen(g_cfg.workload), 0);
	sbuf_puts(p, ",\"app\":");
	json_str(p, g_cfg.app, strlen(g_cfg.app), 0);
	sbuf_puts(p, ",\"version\":");
	json_str(p, g_cfg.version, strlen(g_cfg.version), 0);
	sbuf_putc(p, ',');
	return p->oom ? K_ENOMEM : K_OK;
}

void server_shutdown(void)
{
	g_stopping = 1;
	while (g_listeners) {
		struct listener *l = g_listeners;
		g_listeners = l->next;
		uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
	}
	while (g_conns)
		conn_close(g_conns);
	sbuf_free(&g_body);
	sbuf_free(&g_json_prefix);
}
