/* test_h1_codec.c — the strict HTTP/1.x codec: what it accepts, what it
 * refuses (with which status and reason), and that neither depends on how
 * the bytes were split across reads. */
#include "h1_codec.h"
#include "k_test.h"

#define RAW(s) s, sizeof(s) - 1
#define NHDR   128

static struct k_h1_header H[NHDR];
static struct k_h1_msg M;
static struct k_h1_error E;

static int req_n(const char *s, size_t n)
{
	memset(&E, 0, sizeof(E));
	return k_h1_parse_request(s, n, 0, NULL, &M, H, NHDR, &E);
}

static int req(const char *s)
{
	return req_n(s, strlen(s));
}

static int resp_f(const char *s, unsigned flags)
{
	memset(&E, 0, sizeof(E));
	return k_h1_parse_response(s, strlen(s), 0, NULL, flags, &M, H, NHDR, &E);
}

static int str_is(struct k_str s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static int inside(struct k_str s, const char *buf, size_t len)
{
	return s.p >= buf && s.p + s.len <= buf + len;
}

/* ---- character classes, checked byte by byte against the grammar ---- */

static int ref_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int ref_host(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("-._~!$&'()*+;=", c) != NULL);
}

static void test_char_classes(void)
{
	int bad_t = 0, bad_f = 0, bad_target = 0, bad_host = 0, bad_hex = 0;

	for (int c = 0; c < 256; c++) {
		int f = c == '\t' || (c >= 0x20 && c != 0x7f);
		char buf[128];
		int n, rc;

		if (k_h1_is_tchar((unsigned char)c) != ref_tchar(c))
			bad_t++;
		if (k_h1_is_field_char((unsigned char)c) != f)
			bad_f++;

		/* request target: VCHAR except '#' */
		n = snprintf(buf, sizeof(buf), "GET /a%cb HTTP/1.1\r\nHost: h\r\n\r\n", c);
		rc = req_n(buf, (size_t)n);
		if ((rc > 0) != (c > 0x20 && c < 0x7f && c != '#'))
			bad_target++;

		/* Host: reg-name characters */
		n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a%cb\r\n\r\n", c);
		rc = req_n(buf, (size_t)n);
		if (c != '%' && (rc > 0) != ref_host(c))
			bad_host++;

		/* chunk-size digits */
		{
			struct k_h1_body_dec d;
			struct k_str data;
			struct k_h1_msg m = {.body = K_H1_BODY_CHUNKED};
			int ishex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
				    (c >= 'A' && c <= 'F');
			k_h1_body_init(&d, &m, NULL);
			buf[0] = (char)c;
			rc = k_h1_body_decode(&d, buf, 1, &data, &E);
			if ((rc == 1) != ishex)
				bad_hex++;
		}
	}
	K_CHECK_INT_EQ(bad_t, 0);
	K_CHECK_INT_EQ(bad_f, 0);
	K_CHECK_INT_EQ(bad_target, 0);
	K_CHECK_INT_EQ(bad_host, 0);
	K_CHECK_INT_EQ(bad_hex, 0);
}

/* ---- valid requests ---- */

static void test_simple_get(void)
{
	const char *s = "GET /index.html?q=1 HTTP/1.1\r\n"
			"Host: example.com:8080\r\n"
			"User-Agent:   curl/8.0 \t\r\n"
			"X-Empty:\r\n"
			"Accept: */*\r\n"
			"\r\n"
			"NEXT";
	int rc = req(s);

	K_CHECK_INT_EQ(rc, (int)(strlen(s) - 4));
	K_CHECK_INT_EQ(M.head_len, strlen(s) - 4);
	K_CHECK(str_is(M.method, "GET"));
	K_CHECK(str_is(M.target, "/index.html?q=1"));
	K_CHECK_INT_EQ(M.target_form, K_H1_TARGET_ORIGIN);
	K_CHECK(str_is(M.path, "/index.html?q=1"));
	K_CHECK_INT_EQ(M.authority.len, 0);
	K_CHECK_INT_EQ(M.minor, 1);
	K_CHECK_INT_EQ(M.status, 0);
	K_CHECK_INT_EQ(M.nheaders, 4);
	K_CHECK(M.headers == H);
	K_CHECK(str_is(H[0].name, "Host"));
	K_CHECK(str_is(H[0].value, "example.com:8080"));
	K_CHECK(str_is(H[1].name, "User-Agent"));
	K_CHECK(str_is(H[1].value, "curl/8.0"));
	K_CHECK(str_is(H[2].name, "X-Empty"));
	K_CHECK_INT_EQ(H[2].value.len, 0);
	K_CHECK(str_is(H[3].value, "*/*"));
	K_CHECK_INT_EQ(M.host_idx, 0);
	K_CHECK_INT_EQ(M.body, K_H1_BODY_NONE);
	K_CHECK(M.keep_alive);
	K_CHECK(!M.expect_continue && !M.upgrade && !M.has_te_trailers);
	/* zero-copy: every span points into the input */
	K_CHECK(inside(M.method, s, strlen(s)));
	K_CHECK(inside(M.target, s, strlen(s)));
	for (uint32_t i = 0; i < M.nheaders; i++)
		K_CHECK(inside(H[i].name, s, strlen(s)) && inside(H[i].value, s, strlen(s)));

	/* obs-text in values, HTAB inside values, long values (SIMD path) */
	rc = req("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\tbar\r\n"
		 "Cookie: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "\taaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xff\x80\r\n\r\n");
	K_CHECK(rc > 0);
	K_CHECK(str_is(H[1].value, "caf\xc3\xa9\tbar"));
	/* HTTP/1.0 without Host is fine */
	K_CHECK(req("GET / HTTP/1.0\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.minor, 0);
	K_CHECK_INT_EQ(M.host_idx, -1);
	K_CHECK(!M.keep_alive);
	/* empty lines before the request line are skipped and counted */
	rc = req("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
	K_CHECK_INT_EQ(rc, 31);
	K_CHECK(str_is(M.method, "GET"));
	/* methods are case-sensitive tokens: extension methods pass */
	K_CHECK(req("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	K_CHECK(str_is(M.method, "PURGE"));
	/* an incomplete head wants more */
	K_CHECK_INT_EQ(req("GET / HTTP/1.1\r\nHost: a\r\n\r"), K_EAGAIN);
	K_CHECK_INT_EQ(req(""), K_EAGAIN);
	/* NULL limits mean the defaults */
	K_CHECK(k_h1_parse_request(RAW("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, NULL, &M, H, NHDR,
				   &E) > 0);
}

static void test_target_forms(void)
{
	K_CHECK(req("GET http://Example.com:81/p?q HTTP/1.1\r\nHost: "
		    "x\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.target_form, K_H1_TARGET_ABSOLUTE);
	K_CHECK(str_is(M.authority, "Example.com:81"));
	K_CHECK(str_is(M.path, "/p?q"));
	K_CHECK(req("GET HTTPS://[::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.target_form, K_H1_TARGET_ABSOLUTE);
	K_CHECK(str_is(M.authority, "[::1]:443"));
	K_CHECK_INT_EQ(M.path.len, 0);
	K_CHECK(req("GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	K_CHECK(str_is(M.authority, "a"));
	K_CHECK(str_is(M.path, "?x"));
	K_CHECK(req("CONNECT db.internal:5432 HTTP/1.1\r\nHost: "
		    "db.internal:5432\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.target_form, K_H1_TARGET_AUTHORITY);
	K_CHECK(str_is(M.authority, "db.internal:5432"));
	K_CHECK_INT_EQ(M.body, K_H1_BODY_NONE);
	K_CHECK(req("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n") > 0);
	K_CHECK(req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.target_form, K_H1_TARGET_ASTERISK);
	K_CHECK(str_is(M.path, "*"));
	K_CHECK(req("OPTIONS /x HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.target_form, K_H1_TARGET_ORIGIN);
	/* Host forms */
	K_CHECK(req("GET / HTTP/1.1\r\nHost: 10.0.0.7\r\n\r\n") > 0);
	K_CHECK(req("GET / HTTP/1.1\r\nHost: [fe80::1]\r\n\r\n") > 0);
	K_CHECK(req("GET / HTTP/1.1\r\nHost: a%2Db:65535\r\n\r\n") > 0);
	K_CHECK(req("GET / HTTP/1.1\r\nHost:  svc.ns.svc.cluster.local  "
		    "\r\n\r\n") > 0);
}

static void test_request_framing(void)
{
	K_CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
		    "42\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.body, K_H1_BODY_LENGTH);
	K_CHECK_INT_EQ(M.content_length, 42);
	K_CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.body, K_H1_BODY_NONE);
	K_CHECK(req("POST / HTTP/1.1\r\nHost: "
		    "a\r\ncontent-length:007\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.content_length, 7);
	K_CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
		    "9223372036854775807\r\n\r\n") > 0);
	K_CHECK(M.content_length == UINT64_C(9223372036854775807));
	K_CHECK(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
		    "chunked\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.body, K_H1_BODY_CHUNKED);
	K_CHECK(req("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  CHUNKED "
		    "\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.body, K_H1_BODY_CHUNKED);
	K_CHECK(req("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.body, K_H1_BODY_LENGTH);
	K_CHECK(req("GET / HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
	K_CHECK_INT_EQ(M.body, K_H1_BODY_NONE);
}

static void test_connection_flags(void)
{
	/* clang-format off */
	static const struct {
		const char *head;
		int ka, upgrade, cont, other, trailers;
	} c[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 0, 0, 0, 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0, 0, 0, 0, 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", 0, 0, 0, 0, 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: close\r\n\r\n", 0, 0, 0, 0, 0 },
		{ "GET / HTTP/1.0\r\n\r\n", 0, 0, 0, 0, 0 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1, 0, 0, 0, 0 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0, 0, 0, 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1, 1, 0, 0, 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", 1, 0, 0, 0, 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive ,upgrade\r\n\r\n", 1, 0, 0, 0, 0 },
		{ "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", 1, 0, 1, 0, 0 },
		{ "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 1, 0, 0, 1, 0 },
		{ "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, 0, 0, 0, 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nTE: deflate, Trailers\r\n\r\n", 1, 0, 0, 0, 1 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nTE: trailersx\r\n\r\n", 1, 0, 0, 0, 0 },
	}; /* clang-format on */

	for (size_t i = 0; i < K_ARRAY_LEN(c); i++) {
		int rc = req(c[i].head);
		K_CHECK(rc > 0);
		K_CHECK_INT_EQ(M.keep_alive, c[i].ka);
		K_CHECK_INT_EQ(M.upgrade, c[i].upgrade);
		K_CHECK_INT_EQ(M.expect_continue, c[i].cont);
		K_CHECK_INT_EQ(M.expect_other, c[i].other);
		K_CHECK_INT_EQ(M.has_te_trailers, c[i].trailers);
	}

	K_CHECK(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo,  "
		    ",\tkeep-alive\r\n"
		    "Connection: x-bar\r\n\r\n") > 0);
	K_CHECK(k_h1_connection_has(&M, K_STR_LIT("x-foo")));
	K_CHECK(k_h1_connection_has(&M, K_STR_LIT("X-BAR")));
	K_CHECK(k_h1_connection_has(&M, K_STR_LIT("keep-alive")));
	K_CHECK(!k_h1_connection_has(&M, K_STR_LIT("x-fo")));
	K_CHECK(!k_h1_connection_has(&M, K_STR_LIT("")));
	K_CHECK(!k_h1_connection_has(&M, K_STR_LIT("host")));
}

/* ---- rejections ---- */

struct bad {
	const char *raw;
	size_t len;
	int status;
	const char *reason;
};

/* Runs a whole request: head, then (if framed) its body. Returns the
 * first error status, 0 if the request was complete and accepted, -1 if
 * it was incomplete. */
static int run_request(const char *raw, size_t len, const char **reason)
{
	struct k_h1_body_dec d;
	struct k_str data;
	int rc = req_n(raw, len);
	size_t pos;

	*reason = NULL;
	if (rc == K_EAGAIN)
		return -1;
	if (rc < 0) {
		*reason = E.reason;
		return E.status;
	}
	k_h1_body_init(&d, &M, NULL);
	pos = (size_t)rc;
	while (!d.done) {
		rc = k_h1_body_decode(&d, raw + pos, len - pos, &data, &E);
		if (rc < 0) {
			*reason = E.reason;
			return E.status;
		}
		if (rc == 0)
			return -1;
		pos += (size_t)rc;
	}
	return 0;
}

#define RQ "POST / HTTP/1.1\r\nHost: a\r\n"
#define CH RQ "Transfer-Encoding: chunked\r\n\r\n"

/* clang-format off */
static const struct bad smuggling[] = {
	/* framing pairs */
	{ RAW(RQ "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, "Content-Length with Transfer-Encoding" },
	{ RAW(RQ "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), 400, "Content-Length with Transfer-Encoding" },
	{ RAW(RQ "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), 400, "Content-Length with Transfer-Encoding" },
	{ RAW(RQ "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), 400, "multiple Content-Length headers" },
	{ RAW(RQ "Content-Length: 5\r\ncontent-length: 6\r\n\r\nhello"), 400, "multiple Content-Length headers" },
	{ RAW(RQ "Content-Length: 5, 5\r\n\r\nhello"), 400, "invalid Content-Length" },
	{ RAW(RQ "Content-Length: -1\r\n\r\n"), 400, "invalid Content-Length" },
	{ RAW(RQ "Content-Length: +5\r\n\r\nhello"), 400, "invalid Content-Length" },
	{ RAW(RQ "Content-Length: 0x5\r\n\r\nhello"), 400, "invalid Content-Length" },
	{ RAW(RQ "Content-Length: 5 5\r\n\r\nhello"), 400, "invalid Content-Length" },
	{ RAW(RQ "Content-Length:\r\n\r\n"), 400, "invalid Content-Length" },
	{ RAW(RQ "Content-Length: 1e3\r\n\r\n"), 400, "invalid Content-Length" },
	{ RAW(RQ "Content-Length: 9223372036854775808\r\n\r\n"), 400, "invalid Content-Length" },
	{ RAW(RQ "Content-Length: 99999999999999999999999\r\n\r\n"), 400, "invalid Content-Length" },
	/* Transfer-Encoding tricks */
	{ RAW(RQ "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"), 400, "chunked is not the final transfer coding" },
	{ RAW(RQ "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"), 501, "unsupported transfer coding" },
	{ RAW(RQ "Transfer-Encoding: gzip\r\n\r\n"), 501, "unsupported transfer coding" },
	{ RAW(RQ "Transfer-Encoding: xchunked\r\n\r\n"), 501, "unsupported transfer coding" },
	{ RAW(RQ "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400, "chunked applied more than once" },
	{ RAW(RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, "chunked applied more than once" },
	{ RAW(RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), 400, "chunked is not the final transfer coding" },
	{ RAW(RQ "Transfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n"), 400, "invalid Transfer-Encoding" },
	{ RAW(RQ "Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n"), 400, "invalid Transfer-Encoding" },
	{ RAW(RQ "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"), 400, "invalid Transfer-Encoding" },
	{ RAW(RQ "Transfer-Encoding:\r\n\r\n"), 400, "invalid Transfer-Encoding" },
	{ RAW(RQ "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"), 400, "whitespace before colon" },
	{ RAW(RQ "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"), 400, "whitespace before colon" },
	{ RAW(RQ "Transfer-Encoding:\x0b" "chunked\r\n\r\n0\r\n\r\n"), 400, "invalid character in field value" },
	{ RAW(RQ "Transfer-Encoding: \x0c" "chunked\r\n\r\n0\r\n\r\n"), 400, "invalid character in field value" },
	{ RAW(RQ "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"), 400, "obsolete line folding" },
	{ RAW(RQ "X: y\r\nTransfer-Encoding: gzip,\r\n\tchunked\r\n\r\n"), 400, "obsolete line folding" },
	{ RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, "Transfer-Encoding in HTTP/1.0 request" },
	{ RAW("POST / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: a\r\n\r\n"), 400, "whitespace before first field" },
	{ RAW(RQ "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 0, NULL },
	/* line endings and bytes */
	{ RAW("GET / HTTP/1.1\nHost: a\n\n"), 400, "bare LF" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\n\r\n"), 400, "bare LF" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400, "bare LF" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400, "bare CR" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n"), 400, "bare CR" },
	{ RAW("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"), 400, "bare CR" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 400, "invalid character in field value" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), 400, "invalid character in field value" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nFoo Bar: x\r\n\r\n"), 400, "invalid character in field name" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nFoo\x80: x\r\n\r\n"), 400, "invalid character in field name" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), 400, "empty field name" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), 400, "invalid character in field name" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n"), 400, "obsolete line folding" },
	/* request line */
	{ RAW("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid request target" },
	{ RAW("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid HTTP version" },
	{ RAW("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid method" },
	{ RAW("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid request target" },
	{ RAW(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid method" },
	{ RAW("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid method" },
	{ RAW("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid request target" },
	{ RAW("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid request target" },
	{ RAW("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "fragment in request target" },
	{ RAW("GET /\r\n\r\n"), 400, "missing HTTP version" },
	{ RAW("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505, "HTTP version not supported" },
	{ RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505, "HTTP version not supported" },
	{ RAW("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505, "HTTP version not supported" },
	{ RAW("GET / http/1.1\r\nHost: a\r\n\r\n"), 400, "invalid HTTP version" },
	{ RAW("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400, "invalid HTTP version" },
	{ RAW("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400, "invalid HTTP version" },
	{ RAW("GET / HTTP/11\r\nHost: a\r\n\r\n"), 400, "invalid HTTP version" },
	{ RAW("GET / HTTPS/1.1\r\nHost: a\r\n\r\n"), 400, "invalid HTTP version" },
	{ RAW("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "unsupported URI scheme in request target" },
	{ RAW("GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid request target" },
	{ RAW("GET http:/a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid request target" },
	{ RAW("GET a.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid request target" },
	{ RAW("GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid authority in request target" },
	{ RAW("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "invalid authority in request target" },
	{ RAW("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "asterisk-form target requires OPTIONS" },
	{ RAW("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "CONNECT requires an authority-form target" },
	{ RAW("CONNECT a.com HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "CONNECT requires an authority-form target" },
	{ RAW("CONNECT http://a.com:80/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400, "CONNECT requires an authority-form target" },
	{ RAW("CONNECT a.com:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), 400, "CONNECT request with content" },
	/* Host */
	{ RAW("GET / HTTP/1.1\r\n\r\n"), 400, "missing Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400, "multiple Host headers" },
	{ RAW("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400, "multiple Host headers" },
	{ RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, "invalid Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, "invalid Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400, "invalid Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"), 400, "invalid Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400, "invalid Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n"), 400, "invalid Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), 400, "invalid Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), 400, "invalid Host header" },
	{ RAW("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"), 400, "invalid Host header" },
	/* chunked bodies */
	{ RAW(CH "ffffffffffffffffff\r\n"), 400, "chunk size too large" },
	{ RAW(CH "00000000000000001\r\nx\r\n0\r\n\r\n"), 400, "chunk size too large" },
	{ RAW(CH "0x5\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk size" },
	{ RAW(CH " 5\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk size" },
	{ RAW(CH "-5\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk size" },
	{ RAW(CH "\r\n5\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk size" },
	{ RAW(CH "5 \r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;a=\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;a=\"x\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;a\0\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;a=\"x\\\x01\"\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;a=b c\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;a b\r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "5;a=\"x\" \r\nhello\r\n0\r\n\r\n"), 400, "invalid chunk extension" },
	{ RAW(CH "0\r\nX\x01: y\r\n\r\n"), 400, "invalid character in field name" },
	{ RAW(CH "0\r\n\r\r"), 400, "bare CR" },
	{ RAW(CH "5\r\nhelloX\r\n0\r\n\r\n"), 400, "bad chunk terminator" },
	{ RAW(CH "5\r\nhello\n0\r\n\r\n"), 400, "bad chunk terminator" },
	{ RAW(CH "5\r\nhello\rX0\r\n\r\n"), 400, "bad chunk terminator" },
	{ RAW(CH "5\nhello\n0\n\n"), 400, "bare LF" },
	{ RAW(CH "5\rhello\r\n0\r\n\r\n"), 400, "bare CR" },
	{ RAW(CH "0\r\n\n"), 400, "bare LF" },
	{ RAW(CH "0\r\nX: y\n\r\n"), 400, "bare LF" },
	{ RAW(CH "0\r\nX : y\r\n\r\n"), 400, "whitespace before colon" },
	{ RAW(CH "0\r\nX: y\r\n z\r\n\r\n"), 400, "obsolete line folding" },
	{ RAW(CH "0\r\nX: \x01\r\n\r\n"), 400, "invalid character in field value" },
	{ RAW(CH "0\r\n: y\r\n\r\n"), 400, "empty field name" },
	{ RAW(CH "0\r\nX: y\r\r\n"), 400, "bare CR" },
};
/* clang-format on */

static void test_smuggling(void)
{
	for (size_t i = 0; i < K_ARRAY_LEN(smuggling); i++) {
		const struct bad *b = &smuggling[i];
		const char *reason;
		int st = run_request(b->raw, b->len, &reason);
		if (st != b->status || (b->reason && (!reason || strcmp(reason, b->reason)))) {
			fprintf(stderr, "smuggling case %zu: \"", i);
			for (size_t j = 0; j < b->len; j++) {
				unsigned char c = (unsigned char)b->raw[j];
				if (c >= 0x20 && c < 0x7f)
					fputc(c, stderr);
				else
					fprintf(stderr, "\\x%02x", c);
			}
			fprintf(stderr, "\" got %d \"%s\"\n", st, reason ? reason : "");
		}
		K_CHECK_INT_EQ(st, b->status);
		if (b->reason)
			K_CHECK_STR_EQ(reason, b->reason);
		/* every rejection names a reason and a return class */
		if (b->status)
			K_CHECK(reason && *reason);
	}
	K_CHECK(K_ARRAY_LEN(smuggling) >= 40);

	/* return codes per class */
	K_CHECK_INT_EQ(req(RQ "Transfer-Encoding: gzip\r\n\r\n"), K_ENOTSUP);
	K_CHECK_INT_EQ(req("GET / HTTP/2.0\r\n\r\n"), K_ENOTSUP);
	K_CHECK_INT_EQ(req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), K_EINVAL);
	/* the error offset points at the fault */
	K_CHECK_INT_EQ(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n"), K_EINVAL);
	K_CHECK_INT_EQ(E.offset, 29);
}

/* ---- responses ---- */

static void test_responses(void)
{
	/* clang-format off */
	static const struct {
		const char *head;
		unsigned flags;
		int status;
		enum k_h1_body_kind body;
		uint64_t cl;
		int ka;
	} ok[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0, 200, K_H1_BODY_LENGTH, 5, 1 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 200, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 200, K_H1_BODY_CHUNKED, 0, 1 },
		{ "HTTP/1.1 200 OK\r\n\r\n", 0, 200, K_H1_BODY_CLOSE, 0, 0 },
		{ "HTTP/1.0 200 OK\r\n\r\n", 0, 200, K_H1_BODY_CLOSE, 0, 0 },
		{ "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 0, 200, K_H1_BODY_LENGTH, 1, 1 },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, 200, K_H1_BODY_LENGTH, 1, 0 },
		{ "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", 0, 200, K_H1_BODY_LENGTH, 1, 0 },
		{ "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, 204, K_H1_BODY_NONE, 5, 1 },
		{ "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 304, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 304 Not Modified\r\n\r\n", 0, 304, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", K_H1_REQ_HEAD, 200, K_H1_BODY_NONE, 100, 1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", K_H1_REQ_HEAD, 200, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 200 OK\r\n\r\n", K_H1_REQ_HEAD, 200, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 200 Connection established\r\n\r\n", K_H1_REQ_CONNECT, 200, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", K_H1_REQ_CONNECT, 200, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n", K_H1_REQ_CONNECT, 407, K_H1_BODY_LENGTH, 3, 1 },
		{ "HTTP/1.1 100 Continue\r\n\r\n", 0, 100, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n", 0, 103, K_H1_BODY_NONE, 0, 1 },
		{ "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", 0, 200, K_H1_BODY_LENGTH, 1, 1 },
		{ "HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", 0, 200, K_H1_BODY_LENGTH, 1, 1 },
		{ "HTTP/1.1 599 Caf\xc3\xa9\tOK\r\nContent-Length: 1\r\n\r\n", 0, 599, K_H1_BODY_LENGTH, 1, 1 },
	}; /* clang-format on */

	/* clang-format off */
	static const struct {
		const char *head;
		int rc;
		const char *reason;
	} bad[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", K_EINVAL, "Content-Length with Transfer-Encoding" },
		{ "HTTP/1.1 304 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", K_EINVAL, "Content-Length with Transfer-Encoding" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", K_ENOTSUP, "unsupported transfer coding" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", K_EINVAL, "chunked is not the final transfer coding" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", K_ENOTSUP, "unsupported transfer coding" },
		{ "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", K_EINVAL, "Transfer-Encoding in HTTP/1.0 response" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", K_EINVAL, "multiple Content-Length headers" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", K_EINVAL, "invalid Content-Length" },
		{ "HTTP/1.1 20 OK\r\n\r\n", K_EINVAL, "invalid status code" },
		{ "HTTP/1.1 2000 OK\r\n\r\n", K_EINVAL, "invalid status line" },
		{ "HTTP/1.1 099 OK\r\n\r\n", K_EINVAL, "invalid status code" },
		{ "HTTP/1.1 600 OK\r\n\r\n", K_EINVAL, "invalid status code" },
		{ "HTTP/1.1  200 OK\r\n\r\n", K_EINVAL, "invalid status code" },
		{ "HTTP/1.2 200 OK\r\n\r\n", K_ENOTSUP, "unsupported HTTP version" },
		{ "HTTP/2 200 OK\r\n\r\n", K_EINVAL, "invalid status line" },
		{ "http/1.1 200 OK\r\n\r\n", K_EINVAL, "invalid status line" },
		{ "HTTP/1.1 200 O\x01K\r\n\r\n", K_EINVAL, "invalid reason phrase" },
		{ "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n", K_EINVAL, "bare LF" },
		{ "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", K_EINVAL, "bare CR" },
		{ "HTTP/1.1 200 OK\r\r\n\r\n", K_EINVAL, "bare CR" },
		{ "HTTP/1.1 200\tOK\r\n\r\n", K_EINVAL, "invalid status line" },
		{ "HTTP/1.1 200 OK\r\nX:\r\n folded\r\n\r\n", K_EINVAL, "obsolete line folding" },
	}; /* clang-format on */

	for (size_t i = 0; i < K_ARRAY_LEN(ok); i++) {
		int rc = resp_f(ok[i].head, ok[i].flags);
		K_CHECK_INT_EQ(rc, (int)strlen(ok[i].head));
		K_CHECK_INT_EQ(M.status, ok[i].status);
		K_CHECK_INT_EQ(M.body, ok[i].body);
		if (ok[i].body == K_H1_BODY_LENGTH)
			K_CHECK_INT_EQ(M.content_length, ok[i].cl);
		K_CHECK_INT_EQ(M.keep_alive, ok[i].ka);
		K_CHECK_INT_EQ(M.method.len, 0);
	}
	for (size_t i = 0; i < K_ARRAY_LEN(bad); i++) {
		int rc = resp_f(bad[i].head, 0);
		K_CHECK_INT_EQ(rc, bad[i].rc);
		K_CHECK_INT_EQ(E.status, 502);
		K_CHECK_STR_EQ(E.reason, bad[i].reason);
	}

	K_CHECK(resp_f("HTTP/1.1 404 Not Found\r\nServer: x\r\n\r\n", 0) > 0);
	K_CHECK(str_is(M.reason, "Not Found"));
	K_CHECK_INT_EQ(M.nheaders, 1);
	K_CHECK(resp_f("HTTP/1.1 101 Switching Protocols\r\nConnection: "
		       "Upgrade\r\n"
		       "Upgrade: websocket\r\n\r\n",
		       0) > 0);
	K_CHECK(M.upgrade);
	K_CHECK_INT_EQ(M.body, K_H1_BODY_NONE);
	K_CHECK_INT_EQ(resp_f("HTTP/1.1 200 OK\r\n", 0), K_EAGAIN);
	K_CHECK_INT_EQ(resp_f("HTTP/1.", 0), K_EAGAIN);
	K_CHECK_INT_EQ(resp_f("HTTX", 0), K_EINVAL);

	/* a 100 Continue and the final response in one buffer */
	{
		const char *s = "HTTP/1.1 100 Continue\r\n\r\n"
				"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
		int rc = resp_f(s, 0);
		K_CHECK_INT_EQ(rc, 25);
		K_CHECK_INT_EQ(M.status, 100);
		rc = k_h1_parse_response(s + rc, strlen(s) - 25, 0, NULL, 0, &M, H, NHDR, &E);
		K_CHECK(rc > 0);
		K_CHECK_INT_EQ(M.status, 201);
		K_CHECK_INT_EQ(M.body, K_H1_BODY_LENGTH);
	}
}

/* ---- body decoding ---- */

/* Feeds body bytes b[0..n) to a decoder the way a connection would: the
 * bytes arrive in pieces ending at cut[0], cut[1], ..., n; after each
 * arrival the decoder is called until it has consumed what it can. Appends
 * payload to out. Returns the body's end offset (bytes consumed when done),
 * -1 when more input is needed, or -status on error. */
static long feed(struct k_h1_body_dec *d, const char *b, size_t n, const size_t *cut, size_t ncut,
		 char *out, size_t *outlen, const char **reason)
{
	size_t pos = 0, avail = 0, k = 0;

	*outlen = 0;
	for (;;) {
		avail = k < ncut ? cut[k] : n;
		k++;
		while (pos < avail && !d->done) {
			struct k_str data;
			int rc = k_h1_body_decode(d, b + pos, avail - pos, &data, &E);
			if (rc < 0) {
				*reason = E.reason;
				return -E.status;
			}
			if (rc == 0 || (size_t)rc > avail - pos ||
			    !inside(data, b + pos, (size_t)rc))
				return -999; /* no progress or span outside */
			memcpy(out + *outlen, data.p, data.len);
			*outlen += data.len;
			pos += (size_t)rc;
		}
		if (d->done)
			return (long)pos;
		if (avail == n)
			return -1;
	}
}

struct body_case {
	const char *raw; /* body bytes followed by the next message */
	size_t len;
	enum k_h1_body_kind kind;
	uint64_t cl;
	const char *payload; /* NULL: an error is expected */
	size_t end;	     /* where the body ends */
};

/* clang-format off */
static const struct body_case bodies[] = {
	{ RAW("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET"), K_H1_BODY_CHUNKED, 0, "hello world", 26 },
	{ RAW("5;a=b;c\r\nhello\r\n0;x=\"q\\\"t\"\r\n\r\nGET"), K_H1_BODY_CHUNKED, 0, "hello", 30 },
	{ RAW("5 ; a = b ;c\r\nhello\r\n0 ;e=\"\xc3\xa9\t\"\r\n\r\nG"), K_H1_BODY_CHUNKED, 0, "hello", 35 },
	{ RAW("2;a=\"x\" ;b=\"y\";c=\"\\\\\\\t\"\r\nhi\r\n0\r\n\r\n"), K_H1_BODY_CHUNKED, 0, "hi", 34 },
	{ RAW("3\r\nabc\r\n0\r\nX-T: 1\r\nY:\r\nZ: a b \r\n\r\nGET"), K_H1_BODY_CHUNKED, 0, "abc", 34 },
	{ RAW("000A\r\n0123456789\r\n1\r\n\n\r\n00\r\n\r\nX"), K_H1_BODY_CHUNKED, 0, "0123456789\n", 30 },
	{ RAW("1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n"), K_H1_BODY_CHUNKED, 0, "\r\n", 17 },
	{ RAW("0\r\n\r\n0\r\n\r\n"), K_H1_BODY_CHUNKED, 0, "", 5 },
	{ RAW("hello worldGET / HTTP/1.1"), K_H1_BODY_LENGTH, 11, "hello world", 11 },
	{ RAW("5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"), K_H1_BODY_CHUNKED, 0, NULL, 0 },
	{ RAW("5\r\nhelloXX0\r\n\r\n"), K_H1_BODY_CHUNKED, 0, NULL, 0 },
	{ RAW("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"), K_H1_BODY_CHUNKED, 0, NULL, 0 },
	{ RAW("fffffffffffffffff\r\n"), K_H1_BODY_CHUNKED, 0, NULL, 0 },
};
/* clang-format on */

static void test_body_splits(void)
{
	static char out[256], out0[256];
	size_t cuts[300];

	for (size_t i = 0; i < K_ARRAY_LEN(bodies); i++) {
		const struct body_case *bc = &bodies[i];
		struct k_h1_msg m = {.body = bc->kind, .content_length = bc->cl};
		struct k_h1_body_dec d;
		const char *reason0 = NULL, *reason;
		size_t outlen, outlen0;
		long end0, end;
		int mismatches = 0;

		/* in one piece */
		k_h1_body_init(&d, &m, NULL);
		end0 = feed(&d, bc->raw, bc->len, NULL, 0, out0, &outlen0, &reason0);
		if (bc->payload) {
			K_CHECK_INT_EQ(end0, bc->end);
			K_CHECK_INT_EQ(outlen0, strlen(bc->payload));
			K_CHECK(memcmp(out0, bc->payload, outlen0) == 0);
			K_CHECK(d.done);
		} else {
			K_CHECK_INT_EQ(end0, -400);
		}
#define SAME()                                                                                     \
	(end == end0 && reason == reason0 && outlen == outlen0 && memcmp(out, out0, outlen) == 0)
		/* split at every point, and at every pair of points: the
		 * payload (even before a fault), the end and the error must
		 * not change */
		for (size_t k = 0; k <= bc->len; k++) {
			for (size_t l = k; l <= bc->len; l++) {
				k_h1_body_init(&d, &m, NULL);
				cuts[0] = k;
				cuts[1] = l;
				reason = NULL;
				end = feed(&d, bc->raw, bc->len, cuts, 2, out, &outlen, &reason);
				mismatches += !SAME();
			}
		}
		/* byte at a time */
		for (size_t k = 0; k < bc->len && k < K_ARRAY_LEN(cuts); k++)
			cuts[k] = k + 1;
		k_h1_body_init(&d, &m, NULL);
		reason = NULL;
		end = feed(&d, bc->raw, bc->len, cuts, bc->len, out, &outlen, &reason);
		mismatches += !SAME();
#undef SAME
		if (mismatches)
			fprintf(stderr, "body case %zu: %d split mismatches\n", i, mismatches);
		K_CHECK_INT_EQ(mismatches, 0);
	}
	/* payload before a fault is delivered */
	{
		struct k_h1_msg m = {.body = K_H1_BODY_CHUNKED};
		struct k_h1_body_dec d;
		struct k_str data;
		k_h1_body_init(&d, &m, NULL);
		K_CHECK_INT_EQ(k_h1_body_decode(&d, RAW("5\r\nhelloXX"), &data, &E), 8);
		K_CHECK(str_is(data, "hello"));
		K_CHECK_INT_EQ(k_h1_body_decode(&d, RAW("XX"), &data, &E), K_EINVAL);
		K_CHECK_STR_EQ(E.reason, "bad chunk terminator");
		K_CHECK_INT_EQ(E.offset, 0);
	}
}

static void test_body_misc(void)
{
	struct k_h1_msg m = {0};
	struct k_h1_body_dec d;
	struct k_str data;
	char buf[K_H1_MAX_CHUNK_LINE + 64];
	int rc;

	/* NONE is done at once and consumes nothing */
	k_h1_body_init(&d, &m, NULL);
	K_CHECK(d.done);
	K_CHECK_INT_EQ(k_h1_body_decode(&d, "abc", 3, &data, &E), 0);
	K_CHECK_INT_EQ(data.len, 0);

	/* CLOSE: every byte is payload, never done */
	m.body = K_H1_BODY_CLOSE;
	m.status = 200;
	k_h1_body_init(&d, &m, NULL);
	K_CHECK_INT_EQ(k_h1_body_decode(&d, "0\r\n\r\n", 5, &data, &E), 5);
	K_CHECK_INT_EQ(data.len, 5);
	K_CHECK(!d.done);

	/* LENGTH counts down across calls */
	m.body = K_H1_BODY_LENGTH;
	m.content_length = 10;
	k_h1_body_init(&d, &m, NULL);
	K_CHECK_INT_EQ(k_h1_body_decode(&d, "abcd", 4, &data, &E), 4);
	K_CHECK_INT_EQ(d.remaining, 6);
	K_CHECK_INT_EQ(k_h1_body_decode(&d, "efghijKLM", 9, &data, &E), 6);
	K_CHECK(d.done);
	K_CHECK_INT_EQ(data.len, 6);
	K_CHECK_INT_EQ(k_h1_body_decode(&d, "KLM", 3, &data, &E), 0);

	/* a response body's framing errors are 502; errors are sticky */
	m.body = K_H1_BODY_CHUNKED;
	k_h1_body_init(&d, &m, NULL);
	K_CHECK_INT_EQ(k_h1_body_decode(&d, "zz", 2, &data, &E), K_EINVAL);
	K_CHECK_INT_EQ(E.status, 502);
	K_CHECK_INT_EQ(k_h1_body_decode(&d, "0\r\n\r\n", 5, &data, &E), K_EINVAL);
	m.status = 0;

	/* the size line is bounded, extensions included */
	k_h1_body_init(&d, &m, NULL);
	buf[0] = '1';
	buf[1] = ';';
	memset(buf + 2, 'a', sizeof(buf) - 2);
	rc = k_h1_body_decode(&d, buf, sizeof(buf), &data, &E);
	K_CHECK_INT_EQ(rc, K_ELIMIT);
	K_CHECK_STR_EQ(E.reason, "chunk size line too long");
	k_h1_body_init(&d, &m, NULL);
	memcpy(buf + K_H1_MAX_CHUNK_LINE - 2, "\r\nx\r\n0\r\n\r\n", 10);
	rc = k_h1_body_decode(&d, buf, K_H1_MAX_CHUNK_LINE + 8, &data, &E);
	/* exactly at the limit: the chunk and the last chunk are read */
	K_CHECK_INT_EQ(rc, K_H1_MAX_CHUNK_LINE + 8);
	K_CHECK_INT_EQ(data.len, 1);
	K_CHECK(d.done);

	/* trailer limits: count and bytes */
	{
		struct k_h1_limits lim = {.max_head_bytes = 64, .max_headers = 2};
		const char *t2 = "0\r\nA: 1\r\nB: 2\r\n\r\n";
		const char *t3 = "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
		k_h1_body_init(&d, &m, &lim);
		K_CHECK_INT_EQ(k_h1_body_decode(&d, t2, strlen(t2), &data, &E), (int)strlen(t2));
		K_CHECK(d.done);
		k_h1_body_init(&d, &m, &lim);
		K_CHECK_INT_EQ(k_h1_body_decode(&d, t3, strlen(t3), &data, &E), K_ELIMIT);
		K_CHECK_INT_EQ(E.status, 431);
		K_CHECK_STR_EQ(E.reason, "too many trailer fields");

		lim.max_headers = 10;
		memset(buf, 'v', 200);
		memcpy(buf, "0\r\nX: ", 6);
		/* trailer section (after "0\r\n") of exactly 64 bytes */
		memcpy(buf + 3 + 64 - 4, "\r\n\r\n", 4);
		k_h1_body_init(&d, &m, &lim);
		K_CHECK_INT_EQ(k_h1_body_decode(&d, buf, 67, &data, &E), 67);
		K_CHECK(d.done);
		memset(buf, 'v', 200);
		memcpy(buf, "0\r\nX: ", 6);
		memcpy(buf + 3 + 65 - 4, "\r\n\r\n", 4);
		k_h1_body_init(&d, &m, &lim);
		K_CHECK_INT_EQ(k_h1_body_decode(&d, buf, 68, &data, &E), K_ELIMIT);
		K_CHECK_INT_EQ(E.status, 431);
		K_CHECK_STR_EQ(E.reason, "trailer section too large");
	}

	/* one payload span per call: the caller loops */
	k_h1_body_init(&d, &m, NULL);
	rc = k_h1_body_decode(&d, RAW("1\r\na\r\n1\r\nb\r\n0\r\n\r\n"), &data, &E);
	K_CHECK_INT_EQ(rc, 9);
	K_CHECK(str_is(data, "a"));
	/* empty input: nothing happens */
	K_CHECK_INT_EQ(k_h1_body_decode(&d, "", 0, &data, &E), 0);
}

/* ---- pipelining ---- */

static void test_pipelined(void)
{
	const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
			"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
			"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
			"chunked\r\n\r\n"
			"3\r\nabc\r\n0\r\nT: x\r\n\r\n"
			"\r\nGET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	static const char *targets[] = {"/1", "/2", "/3", "/4"};
	static const char *payloads[] = {"", "hello", "abc", ""};
	size_t len = strlen(s), pos = 0;
	int n = 0;

	while (pos < len && n < 4) {
		struct k_h1_body_dec d;
		char out[16];
		size_t outlen = 0;
		int rc = req_n(s + pos, len - pos);
		K_CHECK(rc > 0);
		if (rc <= 0)
			return;
		K_CHECK(str_is(M.target, targets[n]));
		pos += (size_t)rc;
		k_h1_body_init(&d, &M, NULL);
		while (!d.done) {
			struct k_str data;
			rc = k_h1_body_decode(&d, s + pos, len - pos, &data, &E);
			K_CHECK(rc > 0);
			if (rc <= 0)
				return;
			memcpy(out + outlen, data.p, data.len);
			outlen += data.len;
			pos += (size_t)rc;
		}
		K_CHECK(outlen == strlen(payloads[n]) && memcmp(out, payloads[n], outlen) == 0);
		n++;
	}
	K_CHECK_INT_EQ(n, 4);
	K_CHECK_INT_EQ(pos, len);
	K_CHECK(!M.keep_alive);
}

/* ---- heads split across reads ---- */

static int same_msg(const struct k_h1_msg *a, const struct k_h1_msg *b)
{
	if (!k_str_eq(a->method, b->method) || !k_str_eq(a->target, b->target) ||
	    a->target_form != b->target_form || a->status != b->status ||
	    !k_str_eq(a->reason, b->reason) || a->minor != b->minor || a->nheaders != b->nheaders ||
	    a->head_len != b->head_len || a->body != b->body ||
	    a->content_length != b->content_length || a->host_idx != b->host_idx ||
	    a->keep_alive != b->keep_alive || a->expect_continue != b->expect_continue ||
	    a->upgrade != b->upgrade || a->has_te_trailers != b->has_te_trailers)
		return 0;
	return 1;
}

/* clang-format off */
static const struct {
	const char *raw;
	size_t len;
	int resp;
} heads[] = {
	{ RAW("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0 (x)\r\n"
	      "Accept: */*\r\nConnection: keep-alive\r\nX-Long: 0123456789abcdef0123456789abcdef\t!\r\n\r\nBODY"), 0 },
	{ RAW("\r\nPOST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"), 0 },
	{ RAW("POST /u HTTP/1.0\r\nContent-Length: 10\r\n\r\n"), 0 },
	{ RAW("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world!"), 1 },
	{ RAW("HTTP/1.1 204\r\n\r\n"), 1 },
	/* rejected ones must be rejected the same way */
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 0 },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nX y: 1\r\n\r\n"), 0 },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nX   : 1\r\n\r\n"), 0 },
	{ RAW("GET / HTTP/1.1\r\nHost: a\r\nX: 1\rY: 2\r\n\r\n"), 0 },
	{ RAW("GET / HTTP/2.0\r\nHost: a\r\nX: \x01\r\n\r\n"), 0 },
	{ RAW("GET / HTTP/1.1\r\nX: 1\r\n\r\n"), 0 },
	{ RAW("GE\x01T / HTTP/1.1\r\n"), 0 },
	{ RAW("\r\r\n"), 0 },
	{ RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), 0 },
	{ RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), 1 },
	{ RAW("HTTP/1.1 200 OK\n\r\n"), 1 },
};
/* clang-format on */

static int parse_any(int resp, const char *b, size_t n, size_t prev, struct k_h1_msg *m,
		     struct k_h1_header *h, struct k_h1_error *e)
{
	memset(e, 0, sizeof(*e));
	if (resp)
		return k_h1_parse_response(b, n, prev, NULL, 0, m, h, NHDR, e);
	return k_h1_parse_request(b, n, prev, NULL, m, h, NHDR, e);
}

static void test_head_splits(void)
{
	static struct k_h1_header h0[NHDR];
	struct k_h1_msg m0, m;
	struct k_h1_error e0, e;

	for (size_t i = 0; i < K_ARRAY_LEN(heads); i++) {
		const char *b = heads[i].raw;
		size_t n = heads[i].len;
		int resp = heads[i].resp, bad = 0;
		int rc0 = parse_any(resp, b, n, 0, &m0, h0, &e0);

		/* prefixes: either more is needed or the very same error */
		for (size_t k = 0; k < n; k++) {
			int rc = parse_any(resp, b, k, 0, &m, H, &e);
			if (rc0 > 0 && (size_t)rc0 > k) {
				bad += rc != K_EAGAIN;
			} else if (rc != K_EAGAIN &&
				   (rc != rc0 || e.status != e0.status || e.reason != e0.reason)) {
				bad++;
			}
			if (rc != K_EAGAIN)
				continue;
			/* the rest arrives: continue with prev_len = k */
			rc = parse_any(resp, b, n, k, &m, H, &e);
			if (rc != rc0 || (rc > 0 && !same_msg(&m, &m0)) ||
			    (rc < 0 && (e.status != e0.status || e.reason != e0.reason)))
				bad++;
		}
		/* byte at a time, as a slow client sends */
		{
			size_t prev = 0;
			int rc = K_EAGAIN;
			for (size_t k = 1; k <= n && rc == K_EAGAIN; k++) {
				rc = parse_any(resp, b, k, prev, &m, H, &e);
				prev = k;
			}
			if (rc != rc0 || (rc > 0 && !same_msg(&m, &m0)) ||
			    (rc < 0 && (e.status != e0.status || e.reason != e0.reason)))
				bad++;
		}
		if (bad)
			fprintf(stderr, "head case %zu: %d split mismatches\n", i, bad);
		K_CHECK_INT_EQ(bad, 0);
	}
}

/* ---- limits ---- */

/* A request head of exactly `size` bytes with `nfields` fields. */
static size_t build_head(char *buf, size_t size, unsigned nfields)
{
	size_t p = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (unsigned i = 1; i < nfields; i++)
		p += (size_t)sprintf(buf + p, "X-%u: v\r\n", i);
	/* pad the last field to reach the size */
	p += (size_t)sprintf(buf + p, "Pad: ");
	while (p < size - 4)
		buf[p++] = 'p';
	memcpy(buf + p, "\r\n\r\n", 4);
	return p + 4;
}

static void test_limits(void)
{
	static char buf[70000];
	struct k_h1_limits lim = {.max_head_bytes = 1024, .max_headers = 10};
	size_t n;
	int rc;

	/* head bytes: exactly at the limit passes, one more is 431 */
	n = build_head(buf, 1024, 1);
	K_CHECK_INT_EQ(k_h1_parse_request(buf, n, 0, &lim, &M, H, NHDR, &E), 1024);
	n = build_head(buf, 1025, 1);
	K_CHECK_INT_EQ(k_h1_parse_request(buf, n, 0, &lim, &M, H, NHDR, &E), K_ELIMIT);
	K_CHECK_INT_EQ(E.status, 431);
	K_CHECK_STR_EQ(E.reason, "request head too large");
	/* ... also while incomplete, as soon as the limit is reached */
	K_CHECK_INT_EQ(k_h1_parse_request(buf, 1023, 0, &lim, &M, H, NHDR, &E), K_EAGAIN);
	K_CHECK_INT_EQ(k_h1_parse_request(buf, 1024, 0, &lim, &M, H, NHDR, &E), K_ELIMIT);
	K_CHECK_INT_EQ(k_h1_parse_request(buf, 1024, 1000, &lim, &M, H, NHDR, &E), K_ELIMIT);

	/* field count: 10 fields pass (pad counts), 11 is 431 */
	n = build_head(buf, 400, 9);
	K_CHECK_INT_EQ(k_h1_parse_request(buf, n, 0, &lim, &M, H, NHDR, &E), 400);
	K_CHECK_INT_EQ(M.nheaders, 10);
	n = build_head(buf, 400, 10);
	K_CHECK_INT_EQ(k_h1_parse_request(buf, n, 0, &lim, &M, H, NHDR, &E), K_ELIMIT);
	K_CHECK_INT_EQ(E.status, 431);
	K_CHECK_STR_EQ(E.reason, "too many header fields");
	/* a smaller array lowers the limit */
	n = build_head(buf, 400, 9);
	K_CHECK_INT_EQ(k_h1_parse_request(buf, n, 0, &lim, &M, H, 5, &E), K_ELIMIT);
	/* responses: 502 */
	n = (size_t)sprintf(buf, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 11; i++)
		n += (size_t)sprintf(buf + n, "X: %d\r\n", i);
	n += (size_t)sprintf(buf + n, "\r\n");
	K_CHECK_INT_EQ(k_h1_parse_response(buf, n, 0, &lim, 0, &M, H, NHDR, &E), K_ELIMIT);
	K_CHECK_INT_EQ(E.status, 502);
	memset(buf + 17, 'x', 2000);
	K_CHECK_INT_EQ(k_h1_parse_response(buf, 2017, 0, &lim, 0, &M, H, NHDR, &E), K_ELIMIT);
	K_CHECK_INT_EQ(E.status, 502);

	/* a request line longer than the limit is 431 and the bytes past
	 * the limit are never looked at (the NUL there would be a 400) */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', sizeof(buf) - 5);
	buf[2000] = '\0';
	K_CHECK_INT_EQ(k_h1_parse_request(buf, sizeof(buf), 0, &lim, &M, H, NHDR, &E), K_ELIMIT);
	K_CHECK_INT_EQ(E.status, 431);
	K_CHECK_STR_EQ(E.reason, "request line too long");
	/* the default limit (60 KiB) likewise */
	buf[2000] = 'a';
	buf[K_H1_DEFAULT_MAX_HEAD_BYTES + 10] = '\0';
	K_CHECK_INT_EQ(k_h1_parse_request(buf, sizeof(buf), 0, NULL, &M, H, NHDR, &E), K_ELIMIT);
	K_CHECK_STR_EQ(E.reason, "request line too long");

	/* streamed byte by byte: the long line is refused at the limit ... */
	{
		size_t k, prev = 0;
		rc = K_EAGAIN;
		for (k = 1; k <= sizeof(buf) && rc == K_EAGAIN; k++) {
			rc = k_h1_parse_request(buf, k, prev, NULL, &M, H, NHDR, &E);
			prev = k;
		}
		K_CHECK_INT_EQ(rc, K_ELIMIT);
		K_CHECK_INT_EQ(k - 1, K_H1_DEFAULT_MAX_HEAD_BYTES);
	}
	/* ... and garbage at its first bad byte */
	{
		static const char g[] = "GET /abc\x01 and more";
		size_t k, prev = 0;
		rc = K_EAGAIN;
		for (k = 1; k <= sizeof(g) - 1 && rc == K_EAGAIN; k++) {
			rc = k_h1_parse_request(g, k, prev, NULL, &M, H, NHDR, &E);
			prev = k;
		}
		K_CHECK_INT_EQ(rc, K_EINVAL);
		K_CHECK_INT_EQ(k - 1, 9);
		K_CHECK_INT_EQ(E.status, 400);
	}
	/* ... and a malformed request line by the time it has doubled */
	{
		memcpy(buf, "GET  /", 6);
		memset(buf + 6, 'a', 1000);
		size_t k, prev = 0;
		rc = K_EAGAIN;
		for (k = 1; k <= 1006 && rc == K_EAGAIN; k++) {
			rc = k_h1_parse_request(buf, k, prev, NULL, &M, H, NHDR, &E);
			prev = k;
		}
		K_CHECK_INT_EQ(rc, K_EINVAL);
		K_CHECK(k - 1 <= 8);
		K_CHECK_STR_EQ(E.reason, "invalid request target");
	}
	/* a large head sent byte by byte completes (linear cost) */
	{
		size_t k, prev = 0;
		n = build_head(buf, K_H1_DEFAULT_MAX_HEAD_BYTES, 50);
		rc = K_EAGAIN;
		for (k = 1; k <= n && rc == K_EAGAIN; k++) {
			rc = k_h1_parse_request(buf, k, prev, NULL, &M, H, NHDR, &E);
			prev = k;
		}
		K_CHECK_INT_EQ(rc, (int)n);
		K_CHECK_INT_EQ(M.nheaders, 51);
	}
}

static void test_helpers(void)
{
	char out[K_H1_CHUNK_HEADER_MAX];
	size_t n;

	n = k_h1_chunk_header(out, 0);
	K_CHECK(n == 3 && memcmp(out, "0\r\n", 3) == 0);
	n = k_h1_chunk_header(out, 0x1a2b);
	K_CHECK(n == 6 && memcmp(out, "1a2b\r\n", 6) == 0);
	n = k_h1_chunk_header(out, UINT64_MAX);
	K_CHECK(n == 18 && memcmp(out, "ffffffffffffffff\r\n", 18) == 0);
	K_CHECK_STR_EQ(K_H1_LAST_CHUNK, "0\r\n\r\n");

	K_CHECK_STR_EQ(k_h1_reason(200), "OK");
	K_CHECK_STR_EQ(k_h1_reason(431), "Request Header Fields Too Large");
	K_CHECK_STR_EQ(k_h1_reason(503), "Service Unavailable");
	K_CHECK_STR_EQ(k_h1_reason(505), "HTTP Version Not Supported");
	K_CHECK_STR_EQ(k_h1_reason(308), "Permanent Redirect");
	K_CHECK_STR_EQ(k_h1_reason(999), "");
	{
		static const int codes[] = {
			100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303,
			304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408,
			409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 425, 426,
			428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
		};
		int missing = 0;
		for (size_t i = 0; i < K_ARRAY_LEN(codes); i++)
			missing += !*k_h1_reason(codes[i]);
		K_CHECK_INT_EQ(missing, 0);
	}
}

K_TEST_MAIN(test_char_classes, test_simple_get, test_target_forms, test_request_framing,
	    test_connection_flags, test_smuggling, test_responses, test_body_splits, test_body_misc,
	    test_pipelined, test_head_splits, test_limits, test_helpers)
