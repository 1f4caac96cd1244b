/* h1_codec.c — strict, zero-copy HTTP/1.x head parser and body decoder.
 *
 * The head parser makes one forward pass over the bytes: start line, then
 * field lines, each found by scanning with a character-class table (16
 * bytes at a time with SSE2 where the class allows), each known field
 * recognised by length and first byte. Nothing is allocated; every span
 * points into the caller's buffer.
 *
 * Incomplete heads: when the caller says prev_len bytes were already seen,
 * only the new bytes are checked (for bad bytes, bare CR/LF and the end of
 * the head) and the full parse runs once, when the head is complete or
 * something is wrong. A slow client therefore costs O(n) in total, and
 * streamed garbage is refused at its first bad byte (structural faults by
 * the time the head has doubled). Because that full parse is the same
 * sequential parse a whole buffer gets, a head split at any point yields
 * exactly the same result as the head in one piece once the head is
 * complete or over the limit; before that a split head may only report
 * K_EAGAIN where the whole would already have been refused.
 */
#include "h1_codec.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Character classes, one bit each. The table is generated from the RFC
 * grammar; the unit test checks every byte against reference predicates. */
#define C_TCHAR	 0x01 /* token: ALPHA DIGIT !#$%&'*+-.^_`|~ */
#define C_FIELD	 0x02 /* field-value byte: HTAB SP VCHAR obs-text */
#define C_TARGET 0x04 /* request-target byte: VCHAR except '#' */
#define C_HEX	 0x08 /* HEXDIG */
#define C_HOST	 0x10 /* reg-name: unreserved, sub-delims except ',' */
#define C_SCHEME 0x20 /* URI scheme: ALPHA DIGIT + - . */
#define C_QDTEXT 0x40 /* quoted-string text: qdtext */
#define C_DIGIT	 0x80 /* DIGIT */

/* clang-format off */
static const uint8_t cls[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x42, 0x57, 0x06, 0x43, 0x57, 0x47, 0x57, 0x57,
	0x56, 0x56, 0x57, 0x77, 0x46, 0x77, 0x77, 0x46,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0x46, 0x56, 0x46, 0x56, 0x46, 0x46,
	0x46, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x77,
	0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77,
	0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77,
	0x77, 0x77, 0x77, 0x46, 0x06, 0x46, 0x47, 0x57,
	0x47, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x77,
	0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77,
	0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77, 0x77,
	0x77, 0x77, 0x77, 0x46, 0x47, 0x46, 0x57, 0x00,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
	0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
};
/* clang-format on */

int k_h1_is_tchar(unsigned char c)
{
	return (cls[c] & C_TCHAR) != 0;
}

int k_h1_is_field_char(unsigned char c)
{
	return (cls[c] & C_FIELD) != 0;
}

static inline int is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static inline unsigned char lower(unsigned char c)
{
	return (unsigned char)(c + (((unsigned)c - 'A' < 26u) << 5));
}

/* Case-insensitive compare of s[0..n) with a lowercase literal of length n. */
static inline int lit_ieq(const unsigned char *s, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != (unsigned char)lit[i])
			return 0;
	return 1;
}

/* First index in [i, n) whose byte lacks class bit `c`. Four bytes per
 * test: names and hosts are short runs whose end a per-byte loop keeps
 * mispredicting. */
static inline size_t scan_class(const unsigned char *b, size_t i, size_t n, uint8_t c)
{
	while (n - i >= 4 && (cls[b[i]] & cls[b[i + 1]] & cls[b[i + 2]] & cls[b[i + 3]] & c))
		i += 4;
	while (i < n && (cls[b[i]] & c))
		i++;
	return i;
}

/* First index in [i, n) whose byte is not a field-value byte. Values are
 * the bulk of a head (cookies, user agents), so this is the loop to make
 * fast: 16 bytes per step, looking for CTLs (other than HTAB) and DEL. */
static inline size_t scan_field(const unsigned char *b, size_t i, size_t n)
{
#ifdef __SSE2__
	const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
	const __m128i neg = _mm_set1_epi8(-1);
	while (n - i >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
		/* signed compares: obs-text (>= 0x80) is negative, so it is
		 * excluded from "< 0x20" by the "> -1" term */
		__m128i ctl = _mm_and_si128(_mm_cmplt_epi8(v, sp), _mm_cmpgt_epi8(v, neg));
		__m128i bad = _mm_or_si128(ctl, _mm_cmpeq_epi8(v, del));
		unsigned m = (unsigned)_mm_movemask_epi8(bad);
		if (K_LIKELY(m == 0)) {
			i += 16;
			continue;
		}
		i += (unsigned)__builtin_ctz(m);
		if (b[i] != '\t')
			return i;
		i++;
	}
#endif
	return scan_class(b, i, n, C_FIELD);
}

/* First index in [i, n) whose byte is not a request-target byte. */
static inline size_t scan_target(const unsigned char *b, size_t i, size_t n)
{
#ifdef __SSE2__
	const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
	const __m128i hash = _mm_set1_epi8('#');
	while (n - i >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
		__m128i ok = _mm_and_si128(_mm_cmpgt_epi8(v, sp), _mm_cmplt_epi8(v, del));
		ok = _mm_andnot_si128(_mm_cmpeq_epi8(v, hash), ok);
		unsigned m = ~(unsigned)_mm_movemask_epi8(ok) & 0xffffu;
		if (m)
			return i + (unsigned)__builtin_ctz(m);
		i += 16;
	}
#endif
	return scan_class(b, i, n, C_TARGET);
}

/* Next element of a comma-separated list s[0..n), OWS trimmed, in
 * [*a, *z). *i is the cursor (0 to start). Empty elements are returned
 * too, so that callers can be strict about them. */
static int list_next(const unsigned char *s, size_t n, size_t *i, size_t *a, size_t *z)
{
	size_t p = *i, e;
	const unsigned char *c;

	if (p > n)
		return 0;
	c = memchr(s + p, ',', n - p);
	e = c ? (size_t)(c - s) : n;
	*i = e + 1;
	while (p < e && is_ows(s[p]))
		p++;
	while (e > p && is_ows(s[e - 1]))
		e--;
	*a = p;
	*z = e;
	return 1;
}

static int all_tchar(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(cls[s[i]] & C_TCHAR))
			return 0;
	return 1;
}

static int list_has(const unsigned char *s, size_t n, const char *lit, size_t litlen)
{
	size_t i = 0, a, z;

	while (list_next(s, n, &i, &a, &z))
		if (z - a == litlen && lit_ieq(s + a, lit, litlen))
			return 1;
	return 0;
}

/* uri-host [ ":" port ] (RFC 3986 §3.2.2), port 1-5 digits up to 65535.
 * Used for Host, absolute-form authorities and CONNECT targets; '@'
 * (userinfo), '/', spaces and ',' never pass. */
static int authority_ok(const unsigned char *s, size_t n, int need_port)
{
	size_t i = 0;
	unsigned port = 0, digits = 0;

	if (n == 0)
		return 0;
	if (s[0] == '[') {
		/* IP-literal: IPv6 hex, ':' and embedded IPv4 dots */
		for (i = 1; i < n && ((cls[s[i]] & C_HEX) || s[i] == ':' || s[i] == '.'); i++)
			;
		if (i == 1 || i >= n || s[i] != ']')
			return 0;
		i++;
	} else {
		for (;;) {
			i = scan_class(s, i, n, C_HOST);
			if (i >= n || s[i] != '%')
				break;
			/* pct-encoded */
			if (n - i < 3 || !(cls[s[i + 1]] & C_HEX) || !(cls[s[i + 2]] & C_HEX))
				return 0;
			i += 3;
		}
		if (i == 0)
			return 0;
	}
	if (i == n)
		return !need_port;
	if (s[i] != ':')
		return 0;
	for (i++; i < n; i++, digits++) {
		if (!(cls[s[i]] & C_DIGIT) || digits == 5)
			return 0;
		port = port * 10 + (unsigned)(s[i] - '0');
	}
	return digits > 0 && port <= 65535;
}

/* Content-Length = 1*DIGIT, at most 2^63-1. */
static int parse_cl(const unsigned char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)s[i] - '0';
		if (d > 9 || v > (UINT64_C(0x7fffffffffffffff) - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* "HTTP/" DIGIT "." DIGIT. Returns 1 for HTTP/1.0 or 1.1 (minor set),
 * 0 when the n < 8 bytes so far could still become a version, -1 for
 * garbage, -2 for another well-formed version. */
static int parse_version(const unsigned char *s, size_t n, int *minor)
{
	static const char pat[] = "HTTP/0.0"; /* '0' stands for a digit */
	size_t k = n < 8 ? n : 8;

	if (K_LIKELY(n >= 8 && memcmp(s, "HTTP/1.", 7) == 0 && (s[7] == '1' || s[7] == '0'))) {
		*minor = s[7] - '0';
		return 1;
	}
	for (size_t i = 0; i < k; i++) {
		if (pat[i] == '0' ? !(cls[s[i]] & C_DIGIT) : s[i] != pat[i])
			return -1;
	}
	return n < 8 ? 0 : -2;
}

/* Known fields, recognised once per field line. */
enum {
	H_OTHER = 0,
	H_HOST,
	H_CL,
	H_TE,
	H_CONN,
	H_EXPECT,
	H_UPGRADE,
	H_TEHDR,
};

static inline int classify(const unsigned char *s, size_t n)
{
	/* length and first byte rule out almost every field before any
	 * comparison loop runs */
	unsigned char c = lower(s[0]);

	switch (n) {
	case 2: return c == 't' && lower(s[1]) == 'e' ? H_TEHDR : H_OTHER;
	case 4: return c == 'h' && lit_ieq(s, "host", 4) ? H_HOST : H_OTHER;
	case 6: return c == 'e' && lit_ieq(s, "expect", 6) ? H_EXPECT : H_OTHER;
	case 7: return c == 'u' && lit_ieq(s, "upgrade", 7) ? H_UPGRADE : H_OTHER;
	case 10: return c == 'c' && lit_ieq(s, "connection", 10) ? H_CONN : H_OTHER;
	case 14: return c == 'c' && lit_ieq(s, "content-length", 14) ? H_CL : H_OTHER;
	case 17: return c == 't' && lit_ieq(s, "transfer-encoding", 17) ? H_TE : H_OTHER;
	}
	return H_OTHER;
}

/* Transfer-Encoding, accumulated over every TE field as one list. */
struct te_state {
	unsigned seen : 1;
	unsigned last_chunked : 1; /* the final coding so far is chunked */
	unsigned other : 1;	   /* a coding we do not implement */
	unsigned bad : 1;	   /* empty element or not a bare token */
	unsigned nchunked;
};

static void te_scan(const unsigned char *s, size_t n, struct te_state *te)
{
	size_t i = 0, a, z;

	te->seen = 1;
	while (list_next(s, n, &i, &a, &z)) {
		/* "chunked;x=y" and ",chunked" are readings some parsers
		 * would accept differently: refuse them outright */
		if (a == z || !all_tchar(s + a, z - a)) {
			te->bad = 1;
		} else if (z - a == 7 && lit_ieq(s + a, "chunked", 7)) {
			te->nchunked++;
			te->last_chunked = 1;
		} else {
			te->other = 1;
			te->last_chunked = 0;
		}
	}
}

struct conn_state {
	unsigned close : 1;
	unsigned keep_alive : 1;
	unsigned upgrade : 1;
};

static void conn_scan(const unsigned char *s, size_t n, struct conn_state *c)
{
	size_t i = 0, a, z;

	while (list_next(s, n, &i, &a, &z)) {
		size_t l = z - a;
		if (l == 5 && lit_ieq(s + a, "close", 5))
			c->close = 1;
		else if (l == 10 && lit_ieq(s + a, "keep-alive", 10))
			c->keep_alive = 1;
		else if (l == 7 && lit_ieq(s + a, "upgrade", 7))
			c->upgrade = 1;
	}
}

static int h1_fail(struct k_h1_error *err, int resp, int rc, int status, const char *reason,
		   size_t off)
{
	/* a bad upstream response is always the proxy's 502 to its client */
	err->status = resp ? 502 : status;
	err->reason = reason;
	err->offset = (uint32_t)off;
	return rc;
}

#define FAIL(rc, status, reason, off)                                                              \
	return h1_fail(err, resp, (rc), (status), (reason), (size_t)(off))
#define BAD(reason, off) FAIL(K_EINVAL, 400, (reason), (off))

/* Reason for an unexpected byte where a delimiter was due: an LF there
 * can only be a line ended without CR. */
static const char *odd_byte(unsigned char c, const char *dflt)
{
	return c == '\n' ? "bare LF" : dflt;
}

static int target_form(const unsigned char *b, size_t t0, size_t t1, struct k_h1_msg *msg,
		       struct k_h1_error *err)
{
	const int resp = 0;
	const unsigned char *t = b + t0;
	size_t n = t1 - t0, i, a;
	int connect = msg->method.len == 7 && memcmp(msg->method.p, "CONNECT", 7) == 0;

	msg->target = (struct k_str){(const char *)t, n};
	if (connect) {
		/* RFC 9112 §3.2.3: CONNECT takes uri-host ":" port only */
		if (!authority_ok(t, n, 1))
			BAD("CONNECT requires an authority-form target", t0);
		msg->target_form = K_H1_TARGET_AUTHORITY;
		msg->authority = msg->target;
		msg->path = (struct k_str){(const char *)t + n, 0};
		return 0;
	}
	if (t[0] == '/') {
		msg->target_form = K_H1_TARGET_ORIGIN;
		msg->path = msg->target;
		msg->authority = (struct k_str){(const char *)t, 0};
		return 0;
	}
	if (n == 1 && t[0] == '*') {
		if (!(msg->method.len == 7 && memcmp(msg->method.p, "OPTIONS", 7) == 0))
			BAD("asterisk-form target requires OPTIONS", t0);
		msg->target_form = K_H1_TARGET_ASTERISK;
		msg->path = msg->target;
		msg->authority = (struct k_str){(const char *)t, 0};
		return 0;
	}
	/* absolute-form: only http and https make sense for a proxy; any
	 * other scheme (or none) is an error, not a guess */
	for (i = 0; i < n && (cls[t[i]] & C_SCHEME); i++)
		;
	if (i == 0 || (unsigned)lower(t[0]) - 'a' >= 26u || n - i < 3 ||
	    memcmp(t + i, "://", 3) != 0)
		BAD("invalid request target", t0);
	if (!((i == 4 && lit_ieq(t, "http", 4)) || (i == 5 && lit_ieq(t, "https", 5))))
		BAD("unsupported URI scheme in request target", t0);
	a = i + 3;
	for (i = a; i < n && t[i] != '/' && t[i] != '?'; i++)
		;
	if (!authority_ok(t + a, i - a, 0))
		BAD("invalid authority in request target", t0 + a);
	msg->target_form = K_H1_TARGET_ABSOLUTE;
	msg->authority = (struct k_str){(const char *)t + a, i - a};
	msg->path = (struct k_str){(const char *)t + i, n - i};
	return 0;
}

static int parse_head(const unsigned char *b, size_t len, size_t prev_len,
		      const struct k_h1_limits *lim, int resp, unsigned req_flags,
		      struct k_h1_msg *msg, struct k_h1_header *hdrs, uint32_t hdrs_cap,
		      struct k_h1_error *err)
{
	size_t max_head = K_H1_DEFAULT_MAX_HEAD_BYTES;
	uint32_t max_hdrs = K_H1_DEFAULT_MAX_HEADERS, n = 0;
	size_t win, p = 0, m0, t0, t1;
	int minor = 1, rc;
	uint64_t cl = 0;
	size_t cl_off = 0, te_off = 0;
	struct te_state te = {0};
	struct conn_state conn = {0};
	unsigned cl_seen = 0, upgrade_hdr = 0, exp_cont = 0, exp_other = 0;
	unsigned te_trailers = 0;
	int no_body = 0;

	if (lim) {
		if (lim->max_head_bytes)
			max_head = lim->max_head_bytes;
		if (lim->max_headers)
			max_hdrs = lim->max_headers;
	}
	if (!hdrs)
		hdrs_cap = 0;
	if (hdrs_cap < max_hdrs)
		max_hdrs = hdrs_cap;
	/* never look past the limit: a head that has not ended within it
	 * is refused however many more bytes the buffer holds */
	win = len < max_head ? len : max_head;

	if (prev_len && prev_len <= len) {
		/* bytes before prev_len held no end of head and no fault the
		 * full parse would not have reported; look at the new ones
		 * only, and parse in full once the head is complete or
		 * something is off */
		size_t i;
		for (i = prev_len - 1; i < win; i++) {
			unsigned char c = b[i];
			if (K_LIKELY(cls[c] & C_FIELD))
				continue;
			if (c == '\r' && (i + 1 >= len || b[i + 1] == '\n'))
				continue;
			if (c == '\n' && i >= 3 && b[i - 1] == '\r' && b[i - 2] == '\n' &&
			    b[i - 3] == '\r')
				break; /* CRLFCRLF: complete */
			if (c == '\n' && i >= 1 && b[i - 1] == '\r')
				continue;
			break; /* a fault: the full parse names it */
		}
		/* Nothing new to report: wait, except when the buffer has
		 * just grown past a power of two. Parsing in full then costs
		 * O(n) over the whole head (a geometric series) and catches
		 * structural faults ("GET  /", a bad version) that a
		 * byte-class check cannot, by the time the head has doubled,
		 * so a slow client cannot stream them up to the limit. */
		if (i >= win && len < max_head && (len ^ prev_len) <= prev_len)
			return K_EAGAIN;
	}

	/* field by field: a memset of the whole struct compiles to a slow
	 * "rep stos" here, and it is on every request's path */
	msg->method = msg->target = msg->reason = (struct k_str){NULL, 0};
	msg->authority = msg->path = (struct k_str){NULL, 0};
	msg->target_form = K_H1_TARGET_ORIGIN;
	msg->status = 0;
	msg->minor = 1;
	msg->headers = hdrs;
	msg->nheaders = 0;
	msg->head_len = 0;
	msg->body = K_H1_BODY_NONE;
	msg->content_length = 0;
	msg->host_idx = -1;
	msg->keep_alive = msg->expect_continue = msg->upgrade = 0;
	msg->has_te_trailers = msg->expect_other = 0;

	/* ---- start line ---- */
	if (!resp) {
		/* RFC 9112 §2.2: a server SHOULD ignore at least one empty
		 * line before the request line (clients add one after a
		 * POST body) */
		while (p < win && b[p] == '\r') {
			if (p + 1 >= win)
				goto more_line;
			if (b[p + 1] != '\n')
				BAD("bare CR", p);
			p += 2;
		}
		m0 = p;
		p = scan_class(b, p, win, C_TCHAR);
		if (p >= win)
			goto more_line;
		if (b[p] != ' ' || p == m0)
			BAD(odd_byte(b[p], "invalid method"), p);
		msg->method = (struct k_str){(const char *)b + m0, p - m0};
		t0 = ++p;
		p = scan_target(b, p, win);
		if (p >= win)
			goto more_line;
		if (b[p] != ' ' || p == t0)
			BAD(b[p] == '#'	   ? "fragment in request target"
			    : b[p] == '\r' ? "missing HTTP version"
					   : odd_byte(b[p], "invalid request target"),
			    p);
		t1 = p++;
		rc = parse_version(b + p, win - p, &minor);
		if (rc == 0)
			goto more_line;
		if (rc == -2)
			FAIL(K_ENOTSUP, 505, "HTTP version not supported", p);
		if (rc < 0)
			BAD("invalid HTTP version", p);
		p += 8;
		if (p >= win)
			goto more_line;
		if (b[p] != '\r')
			BAD(odd_byte(b[p], "invalid HTTP version"), p);
		if (p + 1 >= win)
			goto more_line;
		if (b[p + 1] != '\n')
			BAD("bare CR", p);
		p += 2;
		if (target_form(b, t0, t1, msg, err))
			return K_EINVAL;
	} else {
		rc = parse_version(b, win, &minor);
		if (rc == 0)
			goto more_line;
		if (rc == -2)
			FAIL(K_ENOTSUP, 502, "unsupported HTTP version", 0);
		if (rc < 0)
			BAD("invalid status line", 0);
		p = 8;
		if (p >= win)
			goto more_line;
		if (b[p] != ' ')
			BAD("invalid status line", p);
		for (p++; p < 12; p++) {
			if (p >= win)
				goto more_line;
			if (!(cls[b[p]] & C_DIGIT))
				BAD("invalid status code", p);
			msg->status = msg->status * 10 + (b[p] - '0');
		}
		if (msg->status < 100 || msg->status > 599)
			BAD("invalid status code", 9);
		if (p >= win)
			goto more_line;
		m0 = p;
		if (b[p] == ' ') {
			m0 = p + 1;
			p = scan_field(b, m0, win);
			if (p >= win)
				goto more_line;
		}
		if (b[p] != '\r')
			BAD(odd_byte(b[p],
				     m0 == p ? "invalid status line" : "invalid reason phrase"),
			    p);
		if (p + 1 >= win)
			goto more_line;
		if (b[p + 1] != '\n')
			BAD("bare CR", p);
		msg->reason = (struct k_str){(const char *)b + m0, p - m0};
		p += 2;
	}
	msg->minor = minor;

	/* ---- field lines ---- */
	for (;;) {
		size_t n0, v0, v1;
		struct k_h1_header *h;

		if (p >= win)
			goto more;
		if (b[p] == '\r') {
			if (p + 1 >= win)
				goto more;
			if (b[p + 1] != '\n')
				BAD("bare CR", p);
			p += 2;
			break;
		}
		n0 = p;
		p = scan_class(b, p, win, C_TCHAR);
		if (p >= win)
			goto more;
		if (K_UNLIKELY(b[p] != ':' || p == n0)) {
			if (p == n0 && is_ows(b[p]))
				BAD(n ? "obsolete line folding" : "whitespace before first field",
				    p);
			if (p == n0 && b[p] == ':')
				BAD("empty field name", p);
			if (is_ows(b[p])) {
				size_t q = p;
				while (q < win && is_ows(b[q]))
					q++;
				if (q >= win)
					goto more;
				if (b[q] == ':')
					BAD("whitespace before colon", p);
			}
			BAD(odd_byte(b[p], "invalid character in field name"), p);
		}
		v1 = p - n0; /* name length */
		p++;
		while (p < win && is_ows(b[p]))
			p++;
		v0 = p;
		p = scan_field(b, p, win);
		if (p >= win)
			goto more;
		if (b[p] != '\r')
			BAD(odd_byte(b[p], "invalid character in field value"), p);
		if (p + 1 >= win)
			goto more;
		if (b[p + 1] != '\n')
			BAD("bare CR", p);
		if (K_UNLIKELY(n >= max_hdrs))
			FAIL(K_ELIMIT, 431, "too many header fields", n0);
		h = &hdrs[n];
		h->name = (struct k_str){(const char *)b + n0, v1};
		{
			size_t e = p;
			while (e > v0 && is_ows(b[e - 1]))
				e--;
			h->value = (struct k_str){(const char *)b + v0, e - v0};
			v1 = e;
		}
		p += 2;

		switch (classify(b + n0, h->name.len)) {
		case H_OTHER: break;
		case H_HOST:
			if (msg->host_idx >= 0)
				BAD("multiple Host headers", n0);
			if (!authority_ok(b + v0, v1 - v0, 0))
				BAD("invalid Host header", v0);
			msg->host_idx = (int)n;
			break;
		case H_CL:
			if (cl_seen)
				BAD("multiple Content-Length headers", n0);
			cl_seen = 1;
			cl_off = n0;
			if (parse_cl(b + v0, v1 - v0, &cl))
				BAD("invalid Content-Length", v0);
			break;
		case H_TE:
			if (!te.seen)
				te_off = n0;
			te_scan(b + v0, v1 - v0, &te);
			break;
		case H_CONN: conn_scan(b + v0, v1 - v0, &conn); break;
		case H_EXPECT:
			if (v1 - v0 == 12 && lit_ieq(b + v0, "100-continue", 12))
				exp_cont = 1;
			else
				exp_other = 1;
			break;
		case H_UPGRADE: upgrade_hdr = 1; break;
		case H_TEHDR:
			if (list_has(b + v0, v1 - v0, "trailers", 8))
				te_trailers = 1;
			break;
		}
		n++;
	}

	msg->head_len = (uint32_t)p;
	msg->nheaders = n;

	/* ---- framing (RFC 9112 §6) ---- */
	if (te.seen) {
		/* §6.1: TE in HTTP/1.0 means faulty framing; TE with CL is
		 * the classic smuggling pair */
		if (minor == 0)
			BAD(resp ? "Transfer-Encoding in HTTP/1.0 response"
				 : "Transfer-Encoding in HTTP/1.0 request",
			    te_off);
		if (cl_seen)
			BAD("Content-Length with Transfer-Encoding", K_MAX(te_off, cl_off));
	}
	if (!resp && minor == 1 && msg->host_idx < 0)
		BAD("missing Host header", p);
	if (resp) {
		/* §6.3 items 1 and 2: these responses never have content,
		 * whatever their fields say */
		int st = msg->status;
		no_body = st < 200 || st == 204 || st == 304 || (req_flags & K_H1_REQ_HEAD) ||
			  ((req_flags & K_H1_REQ_CONNECT) && st < 300);
	}
	msg->content_length = cl;
	if (no_body) {
		msg->body = K_H1_BODY_NONE;
	} else if (te.seen) {
		if (te.bad)
			BAD("invalid Transfer-Encoding", te_off);
		if (te.nchunked > 1)
			BAD("chunked applied more than once", te_off);
		if (te.nchunked && !te.last_chunked)
			BAD("chunked is not the final transfer coding", te_off);
		if (te.other)
			FAIL(K_ENOTSUP, 501, "unsupported transfer coding", te_off);
		msg->body = K_H1_BODY_CHUNKED;
	} else if (cl) {
		msg->body = K_H1_BODY_LENGTH;
	} else if (resp && !cl_seen) {
		msg->body = K_H1_BODY_CLOSE;
	}
	if (!resp) {
		/* RFC 9110 §9.3.6: CONNECT has no content; bytes after the
		 * head are the tunnel, so a framed body would be read two
		 * ways */
		if (msg->target_form == K_H1_TARGET_AUTHORITY && msg->body != K_H1_BODY_NONE)
			BAD("CONNECT request with content", te.seen ? te_off : cl_off);
		msg->expect_continue = minor == 1 && exp_cont;
		msg->expect_other = minor == 1 && exp_other;
		msg->has_te_trailers = te_trailers;
	}
	msg->keep_alive = minor ? !conn.close : (conn.keep_alive && !conn.close);
	if (msg->body == K_H1_BODY_CLOSE)
		msg->keep_alive = 0;
	msg->upgrade = conn.upgrade && upgrade_hdr;
	return (int)p;

more_line:
	if (len < max_head)
		return K_EAGAIN;
	FAIL(K_ELIMIT, 431, resp ? "status line too long" : "request line too long", max_head);
more:
	if (len < max_head)
		return K_EAGAIN;
	FAIL(K_ELIMIT, 431, resp ? "response head too large" : "request head too large", max_head);
}

int k_h1_parse_request(const char *buf, size_t len, size_t prev_len, const struct k_h1_limits *lim,
		       struct k_h1_msg *msg, struct k_h1_header *hdrs, uint32_t hdrs_cap,
		       struct k_h1_error *err)
{
	return parse_head((const unsigned char *)buf, len, prev_len, lim, 0, 0, msg, hdrs, hdrs_cap,
			  err);
}

int k_h1_parse_response(const char *buf, size_t len, size_t prev_len, const struct k_h1_limits *lim,
			unsigned req_flags, struct k_h1_msg *msg, struct k_h1_header *hdrs,
			uint32_t hdrs_cap, struct k_h1_error *err)
{
	return parse_head((const unsigned char *)buf, len, prev_len, lim, 1, req_flags, msg, hdrs,
			  hdrs_cap, err);
}

int k_h1_connection_has(const struct k_h1_msg *msg, struct k_str token)
{
	for (uint32_t i = 0; i < msg->nheaders; i++) {
		const struct k_h1_header *h = &msg->headers[i];
		const unsigned char *v = (const unsigned char *)h->value.p;
		size_t c = 0, a, z;

		if (h->name.len != 10 ||
		    !lit_ieq((const unsigned char *)h->name.p, "connection", 10))
			continue;
		while (list_next(v, h->value.len, &c, &a, &z)) {
			struct k_str e = {(const char *)v + a, z - a};
			if (e.len && k_str_ieq(e, token))
				return 1;
		}
	}
	return 0;
}

/* ---- body decoder ---- */

/* Chunked decoder states. The size-line states come first and the
 * trailer states last so that the per-byte limit checks are range tests. */
enum {
	CS_SIZE0 = 0,	   /* first HEXDIG of chunk-size */
	CS_SIZE,	   /* more HEXDIG, BWS, ';' or CR */
	CS_SIZE_WS,	   /* BWS after the size: only ';' may follow */
	CS_EXT_PRE,	   /* after ';': BWS, then the extension name */
	CS_EXT_NAME,	   /* in the name: tchar, BWS, '=', ';' or CR */
	CS_EXT_NAME_WS,	   /* BWS after the name: '=' or ';' */
	CS_EXT_VAL_PRE,	   /* after '=': BWS, then token or quoted-string */
	CS_EXT_TOKEN,	   /* in a token value: tchar, BWS, ';' or CR */
	CS_EXT_QUOTED,	   /* in a quoted-string */
	CS_EXT_QUOTED_ESC, /* after a backslash in a quoted-string */
	CS_EXT_VAL_END,	   /* after the closing quote: BWS, ';' or CR */
	CS_EXT_VAL_WS,	   /* BWS after a value: only ';' may follow */
	CS_SIZE_LF,	   /* CR of the size line seen */
	CS_DATA,	   /* chunk data, d->remaining bytes left */
	CS_DATA_CR,	   /* CRLF after chunk data */
	CS_DATA_LF,
	CS_TR_START, /* start of a trailer field line or the final CRLF */
	CS_TR_NAME,
	CS_TR_OWS, /* after ':' */
	CS_TR_VALUE,
	CS_TR_LF,     /* CR after a trailer field seen */
	CS_TR_END_LF, /* CR of the final empty line seen */
	CS_DONE,
};

void k_h1_body_init(struct k_h1_body_dec *d, const struct k_h1_msg *msg,
		    const struct k_h1_limits *lim)
{
	memset(d, 0, sizeof(*d));
	d->kind = msg->body;
	d->lim.max_head_bytes =
		lim && lim->max_head_bytes ? lim->max_head_bytes : K_H1_DEFAULT_MAX_HEAD_BYTES;
	d->lim.max_headers = lim && lim->max_headers ? lim->max_headers : K_H1_DEFAULT_MAX_HEADERS;
	d->response = msg->status != 0;
	d->state = CS_SIZE0;
	if (d->kind == K_H1_BODY_LENGTH)
		d->remaining = msg->content_length;
	if (d->kind == K_H1_BODY_NONE || (d->kind == K_H1_BODY_LENGTH && d->remaining == 0)) {
		d->done = 1;
		d->state = CS_DONE;
	}
}

static int body_fail(struct k_h1_body_dec *d, struct k_h1_error *err, int rc, int status,
		     const char *reason, size_t off)
{
	d->failed = 1;
	return h1_fail(err, d->response, rc, status, reason, off);
}

#define DFAIL_AS(rc_, status_, reason_)                                                            \
	do {                                                                                       \
		frc = (rc_);                                                                       \
		fstatus = (status_);                                                               \
		freason = (reason_);                                                               \
		goto fail;                                                                         \
	} while (0)
#define DFAIL(reason) DFAIL_AS(K_EINVAL, 400, (reason))

static int chunked_decode(struct k_h1_body_dec *d, const unsigned char *s, size_t len,
			  struct k_str *data, struct k_h1_error *err)
{
	size_t i = 0, at = 0;
	int got = 0, frc, fstatus;
	const char *freason;
	uint32_t sv_line = 0, sv_trailer = 0, sv_digits = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t st = d->state;

		if (st == CS_DATA) {
			size_t n;
			if (got) /* one payload span per call */
				break;
			n = len - i;
			if (d->remaining < n)
				n = (size_t)d->remaining;
			data->p = (const char *)s + i;
			data->len = n;
			got = 1;
			i += n;
			d->remaining -= n;
			if (d->remaining == 0)
				d->state = CS_DATA_CR;
			continue;
		}
		if (st == CS_DONE)
			break;
		/* framing byte: remember the counters so that a fault found
		 * after payload in this call can be deferred (see fail:) */
		at = i;
		sv_line = d->line_len;
		sv_trailer = d->trailer_bytes;
		sv_digits = d->size_digits;
		if (st <= CS_SIZE_LF && ++d->line_len > K_H1_MAX_CHUNK_LINE)
			DFAIL_AS(K_ELIMIT, 400, "chunk size line too long");
		if (st >= CS_TR_START && ++d->trailer_bytes > d->lim.max_head_bytes)
			DFAIL_AS(K_ELIMIT, 431, "trailer section too large");
		i++;
		switch (st) {
		case CS_SIZE0:
		case CS_SIZE:
			if (cls[c] & C_HEX) {
				if (++d->size_digits > 16)
					DFAIL("chunk size too large");
				d->size_acc = (d->size_acc << 4) |
					      (uint64_t)((c & 0xf) + (c > '9' ? 9 : 0));
				d->state = CS_SIZE;
			} else if (st == CS_SIZE0) {
				DFAIL("invalid chunk size");
			} else if (c == '\r') {
				d->state = CS_SIZE_LF;
			} else if (c == ';') {
				d->state = CS_EXT_PRE;
			} else if (is_ows(c)) {
				d->state = CS_SIZE_WS;
			} else {
				DFAIL(odd_byte(c, "invalid chunk size"));
			}
			break;
		case CS_SIZE_WS:
		case CS_EXT_NAME_WS:
		case CS_EXT_VAL_WS:
			/* BWS (RFC 9112 §7.1.1) only ever precedes ';' or,
			 * after a name, '=' */
			if (c == ';')
				d->state = CS_EXT_PRE;
			else if (c == '=' && st == CS_EXT_NAME_WS)
				d->state = CS_EXT_VAL_PRE;
			else if (!is_ows(c))
				DFAIL(odd_byte(c, "invalid chunk extension"));
			break;
		case CS_EXT_PRE:
		case CS_EXT_VAL_PRE:
			if (is_ows(c))
				break;
			if (cls[c] & C_TCHAR)
				d->state = st == CS_EXT_PRE ? CS_EXT_NAME : CS_EXT_TOKEN;
			else if (c == '"' && st == CS_EXT_VAL_PRE)
				d->state = CS_EXT_QUOTED;
			else
				DFAIL(odd_byte(c, "invalid chunk extension"));
			break;
		case CS_EXT_NAME:
		case CS_EXT_TOKEN:
			if (cls[c] & C_TCHAR)
				break;
			if (c == '\r')
				d->state = CS_SIZE_LF;
			else if (c == ';')
				d->state = CS_EXT_PRE;
			else if (c == '=' && st == CS_EXT_NAME)
				d->state = CS_EXT_VAL_PRE;
			else if (is_ows(c))
				d->state = st == CS_EXT_NAME ? CS_EXT_NAME_WS : CS_EXT_VAL_WS;
			else
				DFAIL(odd_byte(c, "invalid chunk extension"));
			break;
		case CS_EXT_QUOTED:
			if (c == '"')
				d->state = CS_EXT_VAL_END;
			else if (c == '\\')
				d->state = CS_EXT_QUOTED_ESC;
			else if (!(cls[c] & C_QDTEXT))
				DFAIL(odd_byte(c, "invalid chunk extension"));
			break;
		case CS_EXT_QUOTED_ESC:
			/* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
			if (!(cls[c] & C_FIELD))
				DFAIL(odd_byte(c, "invalid chunk extension"));
			d->state = CS_EXT_QUOTED;
			break;
		case CS_EXT_VAL_END:
			if (c == '\r')
				d->state = CS_SIZE_LF;
			else if (c == ';')
				d->state = CS_EXT_PRE;
			else if (is_ows(c))
				d->state = CS_EXT_VAL_WS;
			else
				DFAIL(odd_byte(c, "invalid chunk extension"));
			break;
		case CS_SIZE_LF:
			if (c != '\n')
				DFAIL("bare CR");
			d->line_len = 0;
			d->size_digits = 0;
			if (d->size_acc == 0) {
				d->state = CS_TR_START;
			} else {
				d->remaining = d->size_acc;
				d->size_acc = 0;
				d->state = CS_DATA;
			}
			break;
		case CS_DATA_CR:
			if (c != '\r')
				DFAIL("bad chunk terminator");
			d->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (c != '\n')
				DFAIL("bad chunk terminator");
			d->state = CS_SIZE0;
			break;
		case CS_TR_START:
			if (c == '\r') {
				d->state = CS_TR_END_LF;
			} else if (cls[c] & C_TCHAR) {
				if (d->ntrailers >= d->lim.max_headers)
					DFAIL_AS(K_ELIMIT, 431, "too many trailer fields");
				d->state = CS_TR_NAME;
			} else if (is_ows(c)) {
				DFAIL(d->ntrailers ? "obsolete line folding"
						   : "whitespace before first "
						     "field");
			} else if (c == ':') {
				DFAIL("empty field name");
			} else {
				DFAIL(odd_byte(c, "invalid character in field name"));
			}
			break;
		case CS_TR_NAME:
			if (cls[c] & C_TCHAR)
				break;
			if (c == ':')
				d->state = CS_TR_OWS;
			else if (is_ows(c))
				DFAIL("whitespace before colon");
			else
				DFAIL(odd_byte(c, "invalid character in field name"));
			break;
		case CS_TR_OWS:
		case CS_TR_VALUE:
			if (c == '\r')
				d->state = CS_TR_LF;
			else if (cls[c] & C_FIELD)
				d->state = CS_TR_VALUE;
			else
				DFAIL(odd_byte(c, "invalid character in field value"));
			break;
		case CS_TR_LF:
			if (c != '\n')
				DFAIL("bare CR");
			d->ntrailers++;
			d->state = CS_TR_START;
			break;
		case CS_TR_END_LF:
			if (c != '\n')
				DFAIL("bare CR");
			d->state = CS_DONE;
			d->done = 1;
			break;
		}
	}
	return (int)i;

fail:
	if (got) {
		/* Hand over the payload found before the fault first; the
		 * state still stands before the faulty byte, so the next
		 * call fails on it. The caller thus sees the same payload and
		 * the same error however the input was split. */
		d->line_len = sv_line;
		d->trailer_bytes = sv_trailer;
		d->size_digits = sv_digits;
		return (int)at;
	}
	return body_fail(d, err, frc, fstatus, freason, at);
}

int k_h1_body_decode(struct k_h1_body_dec *d, const char *in, size_t len, struct k_str *data,
		     struct k_h1_error *err)
{
	size_t n;

	data->p = in;
	data->len = 0;
	if (K_UNLIKELY(d->failed)) {
		err->status = d->response ? 502 : 400;
		err->reason = "body decoder already failed";
		err->offset = 0;
		return K_EINVAL;
	}
	if (d->done)
		return 0;
	/* the return value is an int: never claim more than INT_MAX */
	if (len > 0x7fffffff)
		len = 0x7fffffff;
	switch (d->kind) {
	case K_H1_BODY_NONE: return 0;
	case K_H1_BODY_LENGTH:
		n = len;
		if (d->remaining < n)
			n = (size_t)d->remaining;
		data->len = n;
		d->remaining -= n;
		if (d->remaining == 0)
			d->done = 1;
		return (int)n;
	case K_H1_BODY_CLOSE: data->len = len; return (int)len;
	case K_H1_BODY_CHUNKED: return chunked_decode(d, (const unsigned char *)in, len, data, err);
	}
	return 0;
}

size_t k_h1_chunk_header(char *out, uint64_t size)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0, i = 0;

	do {
		tmp[n++] = hex[size & 0xf];
		size >>= 4;
	} while (size);
	while (n)
		out[i++] = tmp[--n];
	out[i++] = '\r';
	out[i++] = '\n';
	return i;
}

const char *k_h1_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 102: return "Processing";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 305: return "Use Proxy";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "";
}
