/* sample.h — shared pieces of kite-sample, the demo/test/benchmark backend.
 *
 * kite-sample is a single-threaded libuv HTTP/1.1 server that answers every
 * request with a JSON description of it (or a sized pattern body), and can
 * fan out to other services and nest their answers. Files:
 *   main.c    flags, environment, listeners, signals
 *   server.c  connections, request parsing (our h1 codec), responses
 *   client.c  fan-out HTTP/1.1 client (direct or through HTTP_PROXY)
 *   buf.c     growable byte buffer and JSON writing/validation helpers
 */
#ifndef K_SAMPLE_H
#define K_SAMPLE_H

#include <stdint.h>
#include <uv.h>

#include "k_common.h"

/* ---- buf.c: growable buffer with a sticky out-of-memory flag ------------
 * Callers append freely and check `oom` once at the end, which keeps the
 * response builders free of per-call error plumbing. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	int oom;
};

int sbuf_reserve(struct sbuf *b, size_t extra);
void sbuf_put(struct sbuf *b, const void *p, size_t n);
void sbuf_puts(struct sbuf *b, const char *s);
void sbuf_putc(struct sbuf *b, char ch);
void sbuf_put_u64(struct sbuf *b, uint64_t v);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(struct sbuf *b);
/* Drop the storage if it grew past `keep` bytes, so one huge answer does not
 * pin memory for the life of the process. */
void sbuf_trim(struct sbuf *b, size_t keep);

/* JSON string contents without the quotes (see json_str). */
void json_esc(struct sbuf *b, const char *p, size_t n, int lower);
/* JSON string literal with quotes; `lower` folds ASCII to lower case (used
 * for header names, which are case-insensitive). */
void json_str(struct sbuf *b, const char *p, size_t n, int lower);
static inline void json_kstr(struct sbuf *b, struct k_str s)
{
	json_str(b, s.p, s.len, 0);
}
/* True when p[0..n) is exactly one JSON value (RFC 8259), surrounding
 * whitespace allowed. Depth-limited so hostile input cannot blow the stack. */
int json_valid(const char *p, size_t n);

/* ---- main.c: configuration ---------------------------------------------- */
#define SAMPLE_MAX_CALLS 16

struct call_target {
	char *url;  /* as configured, for the answer */
	char *host; /* without brackets */
	uint16_t port;
	char *authority; /* Host header value: host[:port] as in the URL */
	char *path;	 /* origin-form target, at least "/" */
};

struct proxy_cfg {
	int enabled;
	char *host;
	uint16_t port;
};

struct sample_cfg {
	const char *app;
	const char *version;
	char *workload; /* "<app>-<version>" */
	struct call_target calls[SAMPLE_MAX_CALLS];
	unsigned ncalls;
	uint32_t call_timeout_ms;
	struct proxy_cfg proxy;
	char *no_proxy; /* NO_PROXY list, or NULL */
};

extern struct sample_cfg g_cfg;

/* Parse "http://host[:port][/path]" into t (strings malloc'd). Returns K_OK
 * or K_EINVAL with a reason in *why. */
int sample_parse_url(const char *url, struct call_target *t, const char **why);
void sample_free_target(struct call_target *t);

/* ---- controls.c: per-request query controls ----------------------------- */
enum drop_mode { DROP_NONE, DROP_FIN, DROP_RST };

struct controls {
	int status; /* 0: default */
	uint32_t delay_ms;
	uint64_t size;
	unsigned has_size : 1;
	unsigned chunked : 1;
	unsigned close : 1;
	unsigned fail_on_call_error : 1;
	unsigned no_echo_headers : 1;
	unsigned drop : 2;
	struct k_str headers; /* raw "k:v,k2:v2" from ?headers= */
	/* first invalid parameter, answered with 400 after the body is read */
	const char *bad_param;
	const char *bad_reason;
};

/* Fill ctl from the query string q (without "?"); unknown names are
 * ignored. Spans in ctl point into q. */
void ctl_parse(struct k_str q, struct controls *ctl);
/* Walk ?headers=k:v,... With out == NULL only validate; else append
 * "k: v\r\n" lines. K_EINVAL with *why on a bad item. */
int ctl_extra_headers(struct k_str raw, struct sbuf *out, const char **why);

/* ---- server.c ------------------------------------------------------------ */
int server_listen(uv_loop_t *loop, const char *addr);
/* Stop accepting and close every connection; the loop then drains. */
void server_shutdown(void);
/* Called once at start-up before any connection. */
int server_init(uv_loop_t *loop);

/* ---- client.c: fan-out ----------------------------------------------------
 */
struct fanout;
struct call_result {
	const char *url;
	int status;	  /* 0 when the call failed */
	const char *body; /* response payload (not NUL-terminated) */
	size_t body_len;
	const char *error; /* NULL on success */
	uint64_t duration_ms;
};

typedef void (*fanout_done_cb)(void *arg, struct fanout *fo);

/* Headers to copy from the incoming request to every call. */
struct fanout_hdr {
	struct k_str name;
	struct k_str value;
};

/* Start all configured calls at once; `done` runs (from the loop, never
 * from inside this function) when every call has an answer or an error.
 * The headers are copied. Returns NULL on allocation failure. */
struct fanout *fanout_start(uv_loop_t *loop, const struct fanout_hdr *hdrs, unsigned nhdrs,
			    fanout_done_cb done, void *arg);
unsigned fanout_count(const struct fanout *fo);
void fanout_result(const struct fanout *fo, unsigned i, struct call_result *r);
/* The owner is done with the results (or no longer wants them: pending calls
 * are aborted and `done` is not called). Memory is freed once every handle
 * has closed. */
void fanout_release(struct fanout *fo);

#endif
