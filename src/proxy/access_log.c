/* access_log.c — compile and render Envoy access-log format strings, and
 * Envoy's response-flag short names.
 *
 * Compile splits the format into pieces once; every string a piece needs
 * (literal text, lower-cased header names, START_TIME formats) is a
 * substring of the format, so one pool of strlen(format) bytes holds them
 * all. Render is a loop over the pieces writing into the caller's buffer:
 * no malloc, no locks (we convert times to UTC ourselves because glibc's
 * gmtime_r takes the process-wide timezone lock). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access_log.h"
#include "k_common.h"

const char KP_ACCESS_LOG_DEFAULT_FORMAT[] =
	"[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% "
	"%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% "
	"%BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
	"\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
	"\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

/* ---- response flags ---------------------------------------------------- */

/* Envoy prints flags in the order of its flag table, not ours. FI in our
 * enum is a fault-injected delay, which Envoy reports as DI; an injected
 * abort (our FA) is Envoy's FI. */
static const struct {
	const char *name;
	uint32_t bits;
} kp_flag_names[] = {
	{"UH", KP_RF_UH}, {"UT", KP_RF_UT},   {"LR", KP_RF_LR}, {"UR", KP_RF_UR},
	{"UF", KP_RF_UF}, {"UC", KP_RF_UC},   {"UO", KP_RF_UO}, {"NR", KP_RF_NR},
	{"DI", KP_RF_DI}, {"FI", KP_RF_FI},   {"RL", KP_RF_RL}, {"UAEX", KP_RF_UAEX},
	{"DC", KP_RF_DC}, {"URX", KP_RF_URX}, {"SI", KP_RF_SI}, {"DPE", KP_RF_DPE},
	{"DT", KP_RF_DT}, {"UPE", KP_RF_UPE}, {"NC", KP_RF_NC},
};

size_t kp_response_flags_str(uint32_t flags, char *out, size_t outlen)
{
	char tmp[96];
	size_t n = 0;
	for (size_t i = 0; i < K_ARRAY_LEN(kp_flag_names); i++) {
		if (!(flags & kp_flag_names[i].bits))
			continue;
		size_t l = strlen(kp_flag_names[i].name);
		if (n)
			tmp[n++] = ',';
		memcpy(tmp + n, kp_flag_names[i].name, l);
		n += l;
	}
	if (!n)
		tmp[n++] = '-';
	if (!outlen)
		return 0;
	if (n > outlen - 1)
		n = outlen - 1;
	memcpy(out, tmp, n);
	out[n] = '\0';
	return n;
}

/* ---- compiled form ----------------------------------------------------- */

enum al_op {
	AL_LITERAL,
	AL_DASH, /* an operator for data we do not track: always "-" */
	AL_START_TIME,
	AL_REQ,
	AL_REQ_NOQUERY,
	AL_RESP,
	AL_PROTOCOL,
	AL_RESPONSE_CODE,
	AL_RESPONSE_FLAGS,
	AL_RESPONSE_CODE_DETAILS,
	AL_BYTES_RECEIVED,
	AL_BYTES_SENT,
	AL_DURATION,
	AL_RESPONSE_DURATION,
	AL_RESPONSE_TX_DURATION,
	AL_UPSTREAM_HOST,
	AL_UPSTREAM_CLUSTER,
	AL_ROUTE_NAME,
	AL_DS_REMOTE,
	AL_DS_REMOTE_NOPORT,
	AL_DS_LOCAL,
	AL_DS_LOCAL_NOPORT,
	AL_HOSTNAME,
};

/* How a header operand is looked up. */
enum al_hdr {
	H_GENERIC,		 /* a request header by name */
	H_METHOD,		 /* :method */
	H_PATH,			 /* :path */
	H_AUTHORITY,		 /* :authority or host */
	H_SCHEME,		 /* :scheme */
	H_REQUEST_ID,		 /* x-request-id: the proxy may have generated it */
	H_XFF,			 /* x-forwarded-for: the proxy appends to it */
	H_STATUS,		 /* RESP(:status) */
	H_UPSTREAM_SERVICE_TIME, /* RESP(x-envoy-upstream-service-time) */
	H_RESP_GENERIC,		 /* a response header by name */
};

struct al_hdr_ref {
	uint8_t kind;
	uint32_t off, len; /* lower-cased name in the pool (H_GENERIC) */
};

struct al_piece {
	uint8_t op;
	uint8_t nhdr;
	uint32_t max_len;  /* 0: unlimited */
	uint32_t off, len; /* literal text or START_TIME format in the pool */
	struct al_hdr_ref h[2];
};

struct kp_access_log_fmt {
	struct al_piece *pieces;
	uint32_t n;
	char *pool;
	uint32_t pool_len;
	int ends_nl;
	char hostname[256];
};

static const struct {
	const char *name;
	enum al_op op;
} al_ops[] = {
	{"START_TIME", AL_START_TIME},
	{"REQ", AL_REQ},
	{"REQ_WITHOUT_QUERY", AL_REQ_NOQUERY},
	{"RESP", AL_RESP},
	{"PROTOCOL", AL_PROTOCOL},
	{"RESPONSE_CODE", AL_RESPONSE_CODE},
	{"RESPONSE_FLAGS", AL_RESPONSE_FLAGS},
	{"RESPONSE_CODE_DETAILS", AL_RESPONSE_CODE_DETAILS},
	{"BYTES_RECEIVED", AL_BYTES_RECEIVED},
	{"BYTES_SENT", AL_BYTES_SENT},
	{"DURATION", AL_DURATION},
	{"REQUEST_DURATION", AL_DASH},
	{"RESPONSE_DURATION", AL_RESPONSE_DURATION},
	{"RESPONSE_TX_DURATION", AL_RESPONSE_TX_DURATION},
	{"UPSTREAM_HOST", AL_UPSTREAM_HOST},
	{"UPSTREAM_REMOTE_ADDRESS", AL_UPSTREAM_HOST},
	{"UPSTREAM_CLUSTER", AL_UPSTREAM_CLUSTER},
	{"UPSTREAM_CLUSTER_RAW", AL_UPSTREAM_CLUSTER},
	{"ROUTE_NAME", AL_ROUTE_NAME},
	{"DOWNSTREAM_REMOTE_ADDRESS", AL_DS_REMOTE},
	{"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", AL_DS_REMOTE_NOPORT},
	{"DOWNSTREAM_LOCAL_ADDRESS", AL_DS_LOCAL},
	{"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", AL_DS_LOCAL_NOPORT},
	{"UPSTREAM_LOCAL_ADDRESS", AL_DASH},
	{"UPSTREAM_TRANSPORT_FAILURE_REASON", AL_DASH},
	{"REQUESTED_SERVER_NAME", AL_DASH},
	{"CONNECTION_TERMINATION_DETAILS", AL_DASH},
	{"HOSTNAME", AL_HOSTNAME},
};

/* Longest START_TIME(...) format we accept; render expands it on the
 * stack. */
#define AL_MAX_TIME_FMT 128

/* ---- compile ----------------------------------------------------------- */

struct al_compiler {
	struct kp_access_log_fmt *f;
	const char *src;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static void al_err(struct al_compiler *c, const char *fmt,
							 ...)
{
	if (!c->err || !c->errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
}

static uint32_t pool_add(struct kp_access_log_fmt *f, const char *s, size_t n, int lower)
{
	uint32_t off = f->pool_len;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (lower && ch >= 'A' && ch <= 'Z')
			ch = (char)(ch | 0x20);
		f->pool[f->pool_len++] = ch;
	}
	return off;
}

static void add_literal(struct kp_access_log_fmt *f, const char *s, size_t n)
{
	struct al_piece *last = f->n ? &f->pieces[f->n - 1] : NULL;
	if (last && last->op == AL_LITERAL && last->off + last->len == f->pool_len) {
		pool_add(f, s, n, 0);
		last->len += (uint32_t)n;
		return;
	}
	struct al_piece *p = &f->pieces[f->n++];
	memset(p, 0, sizeof(*p));
	p->op = AL_LITERAL;
	p->len = (uint32_t)n;
	p->off = pool_add(f, s, n, 0);
}

static int is_hdr_char(char ch)
{
	/* RFC 9110 token characters, plus ':' for pseudo-headers. */
	static const char extra[] = "!#$%&'*+-.^_`|~:";
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr(extra, ch));
}

static int classify_hdr(struct al_compiler *c, struct al_piece *p, const char *name, size_t n,
			int resp, size_t at)
{
	struct k_str s = {name, n};
	struct al_hdr_ref *h = &p->h[p->nhdr++];
	h->kind = H_GENERIC;
	if (n == 0) {
		al_err(c, "empty header name in command operator at offset %zu", at);
		return K_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!is_hdr_char(name[i]) || (name[i] == ':' && i > 0)) {
			al_err(c, "invalid header name \"%.*s\" in command operator at offset %zu",
			       (int)n, name, at);
			return K_EINVAL;
		}
	}
	if (resp) {
		if (k_str_ieq_lit(s, ":status"))
			h->kind = H_STATUS;
		else if (k_str_ieq_lit(s, "x-envoy-upstream-service-time"))
			h->kind = H_UPSTREAM_SERVICE_TIME;
		else {
			h->kind = H_RESP_GENERIC;
			h->off = pool_add(c->f, name, n, 1);
			h->len = (uint32_t)n;
		}
		return 0;
	}
	if (k_str_ieq_lit(s, ":method"))
		h->kind = H_METHOD;
	else if (k_str_ieq_lit(s, ":path"))
		h->kind = H_PATH;
	else if (k_str_ieq_lit(s, ":authority") || k_str_ieq_lit(s, "host"))
		h->kind = H_AUTHORITY;
	else if (k_str_ieq_lit(s, ":scheme"))
		h->kind = H_SCHEME;
	else if (k_str_ieq_lit(s, "x-request-id"))
		h->kind = H_REQUEST_ID;
	else if (k_str_ieq_lit(s, "x-forwarded-for"))
		h->kind = H_XFF;
	else if (name[0] == ':') {
		al_err(c, "unknown pseudo-header \"%.*s\" at offset %zu", (int)n, name, at);
		return K_EINVAL;
	}
	if (h->kind == H_GENERIC || h->kind == H_REQUEST_ID || h->kind == H_XFF) {
		h->off = pool_add(c->f, name, n, 1);
		h->len = (uint32_t)n;
	}
	return 0;
}

/* Parse one command operator starting at src[at] == '%' and not "%%".
 * Returns the offset just past its closing '%', or a negative K_E*. */
static long parse_op(struct al_compiler *c, size_t at)
{
	const char *s = c->src;
	size_t i = at + 1, name_start = i;
	while ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_')
		i++;
	size_t name_len = i - name_start;
	if (name_len == 0) {
		al_err(c,
		       "'%%' at offset %zu does not start a command operator (write %%%% for a "
		       "literal '%%')",
		       at);
		return K_EINVAL;
	}
	const char *arg = NULL;
	size_t arg_len = 0;
	if (s[i] == '(') {
		const char *close = strchr(s + i + 1, ')');
		if (!close) {
			al_err(c, "unterminated command operator at offset %zu", at);
			return K_EINVAL;
		}
		arg = s + i + 1;
		arg_len = (size_t)(close - arg);
		i = (size_t)(close - s) + 1;
	}
	uint64_t max_len = 0;
	if (s[i] == ':') {
		size_t d = ++i;
		while (s[i] >= '0' && s[i] <= '9' && max_len <= UINT32_MAX)
			max_len = max_len * 10 + (uint64_t)(s[i++] - '0');
		if (i == d || max_len == 0 || max_len > UINT32_MAX) {
			al_err(c, "invalid maximum length in command operator at offset %zu", at);
			return K_EINVAL;
		}
	}
	if (s[i] != '%') {
		if (s[i] == '\0')
			al_err(c, "unterminated command operator at offset %zu", at);
		else
			al_err(c, "unexpected '%c' in command operator %%%.*s at offset %zu", s[i],
			       (int)name_len, s + name_start, at);
		return K_EINVAL;
	}
	i++;

	int op = -1;
	for (size_t k = 0; k < K_ARRAY_LEN(al_ops); k++)
		if (strlen(al_ops[k].name) == name_len &&
		    memcmp(al_ops[k].name, s + name_start, name_len) == 0)
			op = (int)al_ops[k].op;
	if (op < 0) {
		al_err(c, "unknown command operator %%%.*s%% at offset %zu", (int)name_len,
		       s + name_start, at);
		return K_EINVAL;
	}

	struct al_piece *p = &c->f->pieces[c->f->n];
	memset(p, 0, sizeof(*p));
	p->op = (uint8_t)op;
	p->max_len = (uint32_t)max_len;
	switch (op) {
	case AL_REQ:
	case AL_REQ_NOQUERY:
	case AL_RESP: {
		if (!arg || arg_len == 0) {
			al_err(c,
			       "%%%.*s%% needs a header name, as in %%%.*s(USER-AGENT)%% (offset "
			       "%zu)",
			       (int)name_len, s + name_start, (int)name_len, s + name_start, at);
			return K_EINVAL;
		}
		const char *q = memchr(arg, '?', arg_len);
		size_t n1 = q ? (size_t)(q - arg) : arg_len;
		int resp = op == AL_RESP;
		if (classify_hdr(c, p, arg, n1, resp, at) < 0)
			return K_EINVAL;
		if (q && classify_hdr(c, p, q + 1, arg_len - n1 - 1, resp, at) < 0)
			return K_EINVAL;
		break;
	}
	case AL_START_TIME:
		if (arg && arg_len > AL_MAX_TIME_FMT) {
			al_err(c, "START_TIME format longer than %d bytes at offset %zu",
			       AL_MAX_TIME_FMT, at);
			return K_EINVAL;
		}
		if (arg && arg_len) {
			p->off = pool_add(c->f, arg, arg_len, 0);
			p->len = (uint32_t)arg_len;
		}
		break;
	default:
		if (arg) {
			al_err(c, "command operator %%%.*s%% takes no argument (offset %zu)",
			       (int)name_len, s + name_start, at);
			return K_EINVAL;
		}
	}
	c->f->n++;
	return (long)i;
}

struct kp_access_log_fmt *kp_access_log_fmt_compile(const char *format, int json, char *err,
						    size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!format) {
		if (err && errlen)
			snprintf(err, errlen, "no format");
		return NULL;
	}
	if (json) {
		if (err && errlen)
			snprintf(err, errlen, "json_format is not supported yet");
		return NULL;
	}
	size_t len = strlen(format);
	if (len > UINT32_MAX / 2) {
		if (err && errlen)
			snprintf(err, errlen, "format too long");
		return NULL;
	}
	struct kp_access_log_fmt *f = calloc(1, sizeof(*f));
	if (!f)
		goto oom;
	/* Each piece consumes at least one byte of the format, and every
	 * pooled string is a piece of the format: both bounds are exact
	 * enough, and the pieces are shrunk afterwards. */
	f->pieces = malloc((len + 1) * sizeof(*f->pieces));
	f->pool = malloc(len + 1);
	if (!f->pieces || !f->pool)
		goto oom;

	struct al_compiler c = {f, format, err, errlen};
	size_t i = 0;
	while (i < len) {
		const char *pct = strchr(format + i, '%');
		size_t lit_end = pct ? (size_t)(pct - format) : len;
		if (lit_end > i)
			add_literal(f, format + i, lit_end - i);
		i = lit_end;
		if (i >= len)
			break;
		if (format[i + 1] == '%') {
			add_literal(f, "%", 1);
			i += 2;
			continue;
		}
		long next = parse_op(&c, i);
		if (next < 0) {
			kp_access_log_fmt_free(f);
			return NULL;
		}
		i = (size_t)next;
	}
	f->ends_nl = len > 0 && format[len - 1] == '\n';
	if (f->n) {
		struct al_piece *shrunk = realloc(f->pieces, f->n * sizeof(*f->pieces));
		if (shrunk)
			f->pieces = shrunk;
	}
	if (gethostname(f->hostname, sizeof(f->hostname) - 1) != 0)
		snprintf(f->hostname, sizeof(f->hostname), "-");
	return f;
oom:
	kp_access_log_fmt_free(f);
	if (err && errlen)
		snprintf(err, errlen, "out of memory");
	return NULL;
}

void kp_access_log_fmt_free(struct kp_access_log_fmt *f)
{
	if (!f)
		return;
	free(f->pieces);
	free(f->pool);
	free(f);
}

/* ---- render ------------------------------------------------------------ */

struct al_w {
	char *p;
	size_t cap; /* usable bytes (outlen - 1) */
	size_t len;
	int cut;
};

static inline void w_put(struct al_w *w, const char *s, size_t n)
{
	if (K_UNLIKELY(n > w->cap - w->len)) {
		n = w->cap - w->len;
		w->cut = 1;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

/* A value: "-" when absent or empty, else at most max bytes of it. */
static inline void w_val(struct al_w *w, const char *s, size_t n, uint32_t max)
{
	if (!s || n == 0) {
		w_put(w, "-", 1);
		return;
	}
	if (max && n > max)
		n = max;
	w_put(w, s, n);
}

static inline void w_cstr(struct al_w *w, const char *s, uint32_t max)
{
	w_val(w, s, s ? strlen(s) : 0, max);
}

/* Decimal digits of v into buf (>= 21 bytes), returning the length. */
static size_t fmt_u64(char *buf, uint64_t v)
{
	char tmp[21];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static void w_u64(struct al_w *w, uint64_t v, uint32_t max)
{
	char buf[21];
	w_val(w, buf, fmt_u64(buf, v), max);
}

static void w_ms(struct al_w *w, uint64_t from, uint64_t to, uint32_t max)
{
	if (!from || !to || to < from)
		w_put(w, "-", 1);
	else
		w_u64(w, (to - from) / 1000000u, max);
}

/* UTC broken-down time without the libc timezone lock (days-to-civil
 * conversion on the proleptic Gregorian calendar). */
static void utc_tm(int64_t t, struct tm *tm)
{
	static const int cum[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
	int64_t days = t / 86400, rem = t % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	memset(tm, 0, sizeof(*tm));
	tm->tm_hour = (int)(rem / 3600);
	tm->tm_min = (int)(rem % 3600 / 60);
	tm->tm_sec = (int)(rem % 60);
	tm->tm_wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01: Thursday */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097; /* [0, 146096] */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* from Mar 1 */
	int64_t mp = (5 * doy + 2) / 153;
	int mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	int mon = (int)(mp < 10 ? mp + 3 : mp - 9); /* 1..12 */
	int64_t year = yoe + era * 400 + (mon <= 2);
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	tm->tm_year = (int)(year - 1900);
	tm->tm_mon = mon - 1;
	tm->tm_mday = mday;
	tm->tm_yday = cum[mon - 1] + mday - 1 + (leap && mon > 2);
	tm->tm_zone = "UTC"; /* for %Z */
}

static inline char *put2(char *p, int v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

static void w_default_time(struct al_w *w, const struct timespec *ts)
{
	struct tm tm;
	utc_tm(ts->tv_sec, &tm);
	char buf[40], *p = buf;
	int year = tm.tm_year + 1900;
	if (year < 0 || year > 9999) {
		w_put(w, "-", 1);
		return;
	}
	p = put2(p, year / 100);
	p = put2(p, year % 100);
	*p++ = '-';
	p = put2(p, tm.tm_mon + 1);
	*p++ = '-';
	p = put2(p, tm.tm_mday);
	*p++ = 'T';
	p = put2(p, tm.tm_hour);
	*p++ = ':';
	p = put2(p, tm.tm_min);
	*p++ = ':';
	p = put2(p, tm.tm_sec);
	*p++ = '.';
	int ms = (int)(ts->tv_nsec / 1000000);
	*p++ = (char)('0' + ms / 100);
	p = put2(p, ms % 100);
	*p++ = 'Z';
	w_put(w, buf, (size_t)(p - buf));
}

/* Append the first `digits` digits of the nanoseconds to q. */
static char *put_frac(char *q, long nsec, int digits)
{
	char nine[9];
	long v = nsec;
	for (int i = 8; i >= 0; i--) {
		nine[i] = (char)('0' + v % 10);
		v /= 10;
	}
	memcpy(q, nine, (size_t)digits);
	return q + digits;
}

/* START_TIME(fmt): strftime on UTC, after substituting Envoy's extensions
 * (%f and %Nf: fractional seconds, %ENS: seconds with N decimals, %s:
 * epoch seconds — glibc's %s would read the broken-down time as local). */
static void w_custom_time(struct al_w *w, const struct timespec *ts, const char *fmt, size_t len,
			  uint32_t max)
{
	char expanded[AL_MAX_TIME_FMT * 4 + 64], *q = expanded;
	char *qend = expanded + sizeof(expanded) - 32;
	for (size_t i = 0; i < len && q < qend; i++) {
		if (fmt[i] != '%' || i + 1 >= len) {
			*q++ = fmt[i];
			continue;
		}
		char c1 = fmt[i + 1];
		if (c1 == 'f') {
			q = put_frac(q, ts->tv_nsec, 9);
			i++;
		} else if (c1 >= '1' && c1 <= '9' && i + 2 < len && fmt[i + 2] == 'f') {
			q = put_frac(q, ts->tv_nsec, c1 - '0');
			i += 2;
		} else if (c1 == 'E' && i + 3 < len && fmt[i + 2] >= '1' && fmt[i + 2] <= '9' &&
			   fmt[i + 3] == 'S') {
			memcpy(q, "%S.", 3);
			q = put_frac(q + 3, ts->tv_nsec, fmt[i + 2] - '0');
			i += 3;
		} else if (c1 == 's') {
			q += fmt_u64(q, (uint64_t)ts->tv_sec);
			i++;
		} else {
			/* Copy the pair so "%%" never splits. */
			*q++ = '%';
			*q++ = c1;
			i++;
		}
	}
	*q = '\0';
	struct tm tm;
	utc_tm(ts->tv_sec, &tm);
	char out[512];
	/* The format comes from the operator's config, by design. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	size_t n = expanded[0] ? strftime(out, sizeof(out), expanded, &tm) : 0;
#pragma GCC diagnostic pop
	w_val(w, out, n, max);
}

static int find_header(const struct k_h1_msg *m, const char *lname, size_t len, struct k_str *out)
{
	if (!m)
		return 0;
	struct k_str name = {lname, len};
	for (uint32_t i = 0; i < m->nheaders; i++) {
		if (k_str_ieq(m->headers[i].name, name)) {
			*out = m->headers[i].value;
			return 1;
		}
	}
	return 0;
}

/* One header operand; numbers are written into num (>= 24 bytes). */
static struct k_str hdr_value(const struct kp_access_log_fmt *f, const struct al_hdr_ref *h,
			      const struct kp_stream_info *si, char *num)
{
	struct k_str v = {NULL, 0};
	const char *name = f->pool + h->off;
	switch ((enum al_hdr)h->kind) {
	case H_GENERIC: find_header(si->req, name, h->len, &v); break;
	case H_METHOD:
		if (si->req)
			v = si->req->method;
		break;
	case H_PATH:
		v = si->path;
		if (!v.len && si->req)
			v = si->req->target;
		break;
	case H_AUTHORITY:
		v = si->authority;
		if (!v.len && si->req && si->req->host_idx >= 0 &&
		    (uint32_t)si->req->host_idx < si->req->nheaders)
			v = si->req->headers[si->req->host_idx].value;
		break;
	case H_SCHEME: v = K_STR_LIT("http"); break;
	case H_REQUEST_ID:
		/* What was forwarded (possibly generated by us) is what Envoy
		 * logs, since it reads the request headers after the
		 * connection manager mutated them. */
		v = si->request_id;
		if (!v.len)
			find_header(si->req, name, h->len, &v);
		break;
	case H_XFF:
		v = si->forwarded_for;
		if (!v.len)
			find_header(si->req, name, h->len, &v);
		break;
	case H_STATUS:
		if (si->response_code > 0) {
			v.p = num;
			v.len = fmt_u64(num, (uint64_t)si->response_code);
		}
		break;
	case H_UPSTREAM_SERVICE_TIME:
		if (si->upstream_start_ns && si->upstream_headers_ns &&
		    si->upstream_headers_ns >= si->upstream_start_ns) {
			v.p = num;
			v.len = fmt_u64(num, (si->upstream_headers_ns - si->upstream_start_ns) /
						     1000000u);
		}
		break;
	case H_RESP_GENERIC: find_header(si->resp, name, h->len, &v); break;
	}
	return v;
}

/* "1.2.3.4:80" -> "1.2.3.4", "[::1]:80" -> "::1"; anything else as is. */
static void w_addr_noport(struct al_w *w, const char *a, uint32_t max)
{
	if (!a || !*a) {
		w_put(w, "-", 1);
		return;
	}
	size_t n = strlen(a);
	if (a[0] == '[') {
		const char *rb = strchr(a, ']');
		if (rb) {
			w_val(w, a + 1, (size_t)(rb - a - 1), max);
			return;
		}
	}
	const char *colon = strchr(a, ':');
	if (colon && !strchr(colon + 1, ':'))
		n = (size_t)(colon - a);
	w_val(w, a, n, max);
}

size_t kp_access_log_render(const struct kp_access_log_fmt *f, const struct kp_stream_info *si,
			    char *out, size_t outlen)
{
	if (!outlen)
		return 0;
	struct al_w w = {out, outlen - 1, 0, 0};
	char num[24], flags[96];
	for (uint32_t i = 0; i < f->n && !w.cut; i++) {
		const struct al_piece *p = &f->pieces[i];
		switch ((enum al_op)p->op) {
		case AL_LITERAL: w_put(&w, f->pool + p->off, p->len); break;
		case AL_DASH: w_put(&w, "-", 1); break;
		case AL_START_TIME:
			if (!si->start_real.tv_sec && !si->start_real.tv_nsec)
				w_put(&w, "-", 1);
			else if (p->len)
				w_custom_time(&w, &si->start_real, f->pool + p->off, p->len,
					      p->max_len);
			else
				w_default_time(&w, &si->start_real);
			break;
		case AL_REQ:
		case AL_REQ_NOQUERY:
		case AL_RESP: {
			struct k_str v = hdr_value(f, &p->h[0], si, num);
			if (!v.len && p->nhdr > 1)
				v = hdr_value(f, &p->h[1], si, num);
			if (p->op == AL_REQ_NOQUERY && v.len) {
				const char *qm = memchr(v.p, '?', v.len);
				if (qm)
					v.len = (size_t)(qm - v.p);
			}
			w_val(&w, v.p, v.len, p->max_len);
			break;
		}
		case AL_PROTOCOL: w_cstr(&w, si->protocol, p->max_len); break;
		case AL_RESPONSE_CODE:
			w_u64(&w, si->response_code > 0 ? (uint64_t)si->response_code : 0,
			      p->max_len);
			break;
		case AL_RESPONSE_FLAGS: {
			size_t n = kp_response_flags_str(si->response_flags, flags, sizeof(flags));
			w_val(&w, flags, n, p->max_len);
			break;
		}
		case AL_RESPONSE_CODE_DETAILS: w_cstr(&w, si->details, p->max_len); break;
		case AL_BYTES_RECEIVED: w_u64(&w, si->bytes_received, p->max_len); break;
		case AL_BYTES_SENT: w_u64(&w, si->bytes_sent, p->max_len); break;
		case AL_DURATION: w_ms(&w, si->start_ns, si->end_ns, p->max_len); break;
		case AL_RESPONSE_DURATION:
			w_ms(&w, si->start_ns, si->upstream_headers_ns, p->max_len);
			break;
		case AL_RESPONSE_TX_DURATION:
			w_ms(&w, si->upstream_headers_ns, si->end_ns, p->max_len);
			break;
		case AL_UPSTREAM_HOST: w_cstr(&w, si->upstream_host, p->max_len); break;
		case AL_UPSTREAM_CLUSTER: w_cstr(&w, si->cluster_name, p->max_len); break;
		case AL_ROUTE_NAME: w_cstr(&w, si->route_name, p->max_len); break;
		case AL_DS_REMOTE: w_cstr(&w, si->downstream_remote, p->max_len); break;
		case AL_DS_REMOTE_NOPORT:
			w_addr_noport(&w, si->downstream_remote, p->max_len);
			break;
		case AL_DS_LOCAL: w_cstr(&w, si->downstream_local, p->max_len); break;
		case AL_DS_LOCAL_NOPORT: w_addr_noport(&w, si->downstream_local, p->max_len); break;
		case AL_HOSTNAME: w_cstr(&w, f->hostname, p->max_len); break;
		}
	}
	/* A cut line still ends the record, so the next one starts on its
	 * own line for whatever tails the log. */
	if (w.cut && f->ends_nl && w.len > 0)
		w.p[w.len - 1] = '\n';
	out[w.len] = '\0';
	return w.len;
}
