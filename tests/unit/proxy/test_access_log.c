/* test_access_log.c — Envoy access-log formats: compile errors, every
 * operator, the default line, truncation, response flags. */
#include <stdlib.h>

#include "k_test.h"

#include "access_log.c"

static struct k_h1_header hdrs[8];
static struct k_h1_msg req;

#define S(lit) ((struct k_str){(lit), sizeof(lit) - 1})

static void fill(struct kp_stream_info *si)
{
	memset(si, 0, sizeof(*si));
	memset(&req, 0, sizeof(req));
	hdrs[0] = (struct k_h1_header){S("Host"), S("example.com:10000")};
	hdrs[1] = (struct k_h1_header){S("User-Agent"), S("curl/7.88.1")};
	hdrs[2] = (struct k_h1_header){S("X-Custom"), S("abcdefghij")};
	hdrs[3] = (struct k_h1_header){S("x-request-id"), S("from-client")};
	req.method = S("GET");
	req.target = S("/api/v1?x=1");
	req.minor = 1;
	req.headers = hdrs;
	req.nheaders = 4;
	req.host_idx = 0;

	si->start_real.tv_sec = 1795309323; /* 2026-11-22T01:02:03Z */
	si->start_real.tv_nsec = 456789123;
	si->start_ns = 1000000000ull;
	si->upstream_start_ns = si->start_ns + 2000000;	  /* +2 ms */
	si->upstream_headers_ns = si->start_ns + 9500000; /* +9.5 ms */
	si->end_ns = si->start_ns + 12345678;		  /* +12.3 ms */
	si->req = &req;
	si->path = S("/api/v1?x=1");
	si->authority = S("example.com:10000");
	si->request_id = S("0b9a2ff6-6ed5-4e6c-9c4b-0d4f7a1e2c3d");
	si->forwarded_for = S("10.1.2.3");
	si->protocol = "HTTP/1.1";
	si->response_code = 200;
	si->details = "via_upstream";
	si->bytes_received = 17;
	si->bytes_sent = 1234;
	si->route_name = "r0";
	si->cluster_name = "backend";
	si->upstream_host = "127.0.0.1:9080";
	si->downstream_remote = "127.0.0.1:54321";
	si->downstream_local = "[::1]:10000";
}

/* Render `fmt` against si into a static buffer; "COMPILE ERROR: ..." if
 * it does not compile. */
static const char *render(const char *fmt, const struct kp_stream_info *si)
{
	static char out[2048];
	char err[256];
	struct kp_access_log_fmt *f = kp_access_log_fmt_compile(fmt, 0, err, sizeof(err));
	if (!f) {
		snprintf(out, sizeof(out), "COMPILE ERROR: %s", err);
		return out;
	}
	size_t n = kp_access_log_render(f, si, out, sizeof(out));
	if (n != strlen(out))
		snprintf(out, sizeof(out), "LENGTH MISMATCH");
	kp_access_log_fmt_free(f);
	return out;
}

static void test_default_format(void)
{
	struct kp_stream_info si;
	fill(&si);
	K_CHECK_STR_EQ(render(KP_ACCESS_LOG_DEFAULT_FORMAT, &si),
		       "[2026-11-22T01:02:03.456Z] \"GET /api/v1?x=1 HTTP/1.1\" 200 - 17 1234 12 7 "
		       "\"10.1.2.3\" \"curl/7.88.1\" \"0b9a2ff6-6ed5-4e6c-9c4b-0d4f7a1e2c3d\" "
		       "\"example.com:10000\" \"127.0.0.1:9080\"\n");

	/* A local reply before any upstream: dashes where Envoy has them. */
	si.upstream_start_ns = si.upstream_headers_ns = 0;
	si.upstream_host = NULL;
	si.response_code = 404;
	si.response_flags = KP_RF_NR;
	si.bytes_sent = 0;
	si.request_id = (struct k_str){NULL, 0};
	si.forwarded_for = (struct k_str){NULL, 0};
	hdrs[1].name = S("X-Other");
	K_CHECK_STR_EQ(render(KP_ACCESS_LOG_DEFAULT_FORMAT, &si),
		       "[2026-11-22T01:02:03.456Z] \"GET /api/v1?x=1 HTTP/1.1\" 404 NR 17 0 12 - "
		       "\"-\" \"-\" \"from-client\" \"example.com:10000\" \"-\"\n");
}

static void test_operators(void)
{
	struct kp_stream_info si;
	fill(&si);
	K_CHECK_STR_EQ(render("%REQ(:METHOD)% %REQ(:PATH)% %REQ(:SCHEME)%", &si),
		       "GET /api/v1?x=1 http");
	K_CHECK_STR_EQ(render("%REQ(HOST)%|%REQ(:authority)%", &si),
		       "example.com:10000|example.com:10000");
	K_CHECK_STR_EQ(render("%REQ(x-custom)%|%REQ(X-CUSTOM):4%", &si), "abcdefghij|abcd");
	K_CHECK_STR_EQ(render("%REQ(X-MISSING)%|%REQ(X-MISSING?X-CUSTOM)%", &si), "-|abcdefghij");
	K_CHECK_STR_EQ(render("%REQ_WITHOUT_QUERY(:PATH)%", &si), "/api/v1");
	K_CHECK_STR_EQ(render("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):5%", &si), "/api/");
	K_CHECK_STR_EQ(render("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %RESP(:STATUS)% "
			      "%RESP(CONTENT-TYPE)%",
			      &si),
		       "7 200 -");
	K_CHECK_STR_EQ(render("%PROTOCOL% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS%", &si),
		       "HTTP/1.1 200 via_upstream");
	K_CHECK_STR_EQ(render("%BYTES_RECEIVED% %BYTES_SENT%", &si), "17 1234");
	K_CHECK_STR_EQ(render("%DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% "
			      "%RESPONSE_TX_DURATION%",
			      &si),
		       "12 - 9 2");
	K_CHECK_STR_EQ(render("%UPSTREAM_HOST% %UPSTREAM_REMOTE_ADDRESS% "
			      "%UPSTREAM_CLUSTER% %ROUTE_NAME%",
			      &si),
		       "127.0.0.1:9080 127.0.0.1:9080 backend r0");
	K_CHECK_STR_EQ(render("%DOWNSTREAM_REMOTE_ADDRESS% "
			      "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
			      "%DOWNSTREAM_LOCAL_ADDRESS% "
			      "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
			      &si),
		       "127.0.0.1:54321 127.0.0.1 [::1]:10000 ::1");
	K_CHECK_STR_EQ(render("%UPSTREAM_TRANSPORT_FAILURE_REASON% "
			      "%REQUESTED_SERVER_NAME% %UPSTREAM_LOCAL_ADDRESS%",
			      &si),
		       "- - -");
	K_CHECK_STR_EQ(render("100%% %%DURATION%%", &si), "100% %DURATION%");
	K_CHECK_STR_EQ(render("", &si), "");
	K_CHECK_STR_EQ(render("plain\n", &si), "plain\n");

	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	K_CHECK_STR_EQ(render("%HOSTNAME%", &si), host);

	/* The proxy's x-request-id wins over the client's (it is what was
	 * forwarded); with none, the client's header is used. */
	K_CHECK_STR_EQ(render("%REQ(X-REQUEST-ID)%", &si), "0b9a2ff6-6ed5-4e6c-9c4b-0d4f7a1e2c3d");
	si.request_id = (struct k_str){NULL, 0};
	K_CHECK_STR_EQ(render("%REQ(X-REQUEST-ID)%", &si), "from-client");

	/* Nothing known at all: every field is "-" (or 0 for counts). */
	struct kp_stream_info empty;
	memset(&empty, 0, sizeof(empty));
	K_CHECK_STR_EQ(render(KP_ACCESS_LOG_DEFAULT_FORMAT, &empty),
		       "[-] \"- - -\" 0 - 0 0 - - \"-\" \"-\" \"-\" \"-\" \"-\"\n");
	char want[16];
	snprintf(want, sizeof(want), "%.3s|-", host);
	K_CHECK_STR_EQ(render("%HOSTNAME:3%|%UPSTREAM_CLUSTER%", &empty), want);
}

static void test_start_time(void)
{
	struct kp_stream_info si;
	fill(&si);
	K_CHECK_STR_EQ(render("%START_TIME%", &si), "2026-11-22T01:02:03.456Z");
	K_CHECK_STR_EQ(render("%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%", &si),
		       "2026-11-22T01:02:03.456Z");
	K_CHECK_STR_EQ(render("%START_TIME(%6f|%9f|%f|%1f)%", &si), "456789|456789123|456789123|4");
	K_CHECK_STR_EQ(render("%START_TIME(%E3S|%s|%a %j|%%)%", &si),
		       "03.456|1795309323|Sun 326|%");
	K_CHECK_STR_EQ(render("%START_TIME(%Y/%m/%d):4%", &si), "2026");

	si.start_real.tv_sec = 951868799; /* leap day */
	si.start_real.tv_nsec = 7000000;
	K_CHECK_STR_EQ(render("%START_TIME%", &si), "2000-02-29T23:59:59.007Z");
	K_CHECK_STR_EQ(render("%START_TIME(%j %a)%", &si), "060 Tue");
	si.start_real.tv_sec = 0;
	si.start_real.tv_nsec = 1;
	K_CHECK_STR_EQ(render("%START_TIME%", &si), "1970-01-01T00:00:00.000Z");

	/* Cross-check against libc over a spread of instants. */
	int bad = 0;
	for (int64_t t = -86400LL * 400; t < 86400LL * 365 * 500; t += 86400LL * 13 + 3607) {
		struct tm a, b;
		time_t tt = (time_t)t;
		utc_tm(t, &a);
		gmtime_r(&tt, &b);
		if (a.tm_year != b.tm_year || a.tm_mon != b.tm_mon || a.tm_mday != b.tm_mday ||
		    a.tm_hour != b.tm_hour || a.tm_min != b.tm_min || a.tm_sec != b.tm_sec ||
		    a.tm_wday != b.tm_wday || a.tm_yday != b.tm_yday)
			bad++;
	}
	K_CHECK_INT_EQ(bad, 0);
}

static void test_flags(void)
{
	char buf[64];
	K_CHECK_INT_EQ(kp_response_flags_str(0, buf, sizeof(buf)), 1);
	K_CHECK_STR_EQ(buf, "-");
	kp_response_flags_str(KP_RF_URX | KP_RF_UF, buf, sizeof(buf));
	K_CHECK_STR_EQ(buf, "UF,URX");
	kp_response_flags_str(KP_RF_NC | KP_RF_UH | KP_RF_DC | KP_RF_UT, buf, sizeof(buf));
	K_CHECK_STR_EQ(buf, "UH,UT,DC,NC");
	kp_response_flags_str(KP_RF_DI | KP_RF_FI, buf, sizeof(buf));
	K_CHECK_STR_EQ(buf, "DI,FI");
	kp_response_flags_str(0xfffff, buf, sizeof(buf));
	K_CHECK_STR_EQ(buf, "UH,UT,LR,UR,UF,UC,UO,NR,DI,FI,RL,UAEX,DC,URX,SI,"
			    "DPE,DT,UPE,NC");
	K_CHECK_INT_EQ(kp_response_flags_str(KP_RF_UF | KP_RF_UO, buf, 4), 3);
	K_CHECK_STR_EQ(buf, "UF,");
	K_CHECK_INT_EQ(kp_response_flags_str(KP_RF_UF, buf, 0), 0);

	struct kp_stream_info si;
	fill(&si);
	si.response_flags = KP_RF_UF | KP_RF_URX;
	K_CHECK_STR_EQ(render("%RESPONSE_FLAGS%", &si), "UF,URX");
}

static void test_truncation(void)
{
	struct kp_stream_info si;
	fill(&si);
	char err[128];
	struct kp_access_log_fmt *f =
		kp_access_log_fmt_compile(KP_ACCESS_LOG_DEFAULT_FORMAT, 0, err, sizeof(err));
	K_CHECK(f != NULL);
	if (!f)
		return;
	char full[1024];
	size_t n = kp_access_log_render(f, &si, full, sizeof(full));
	/* Every size from 0 up: never overflow, NUL-terminated, a prefix
	 * of the full line except the newline kept at the end. */
	for (size_t cap = 0; cap <= n + 1; cap++) {
		char *buf = malloc(cap ? cap : 1);
		size_t m = kp_access_log_render(f, &si, buf, cap);
		if (cap == 0) {
			K_CHECK_INT_EQ(m, 0);
		} else if (cap > n) {
			K_CHECK_INT_EQ(m, n);
			K_CHECK(memcmp(buf, full, n + 1) == 0);
		} else {
			K_CHECK_INT_EQ(m, cap - 1);
			K_CHECK(buf[m] == '\0');
			if (m > 0) {
				K_CHECK(memcmp(buf, full, m - 1) == 0);
				K_CHECK(buf[m - 1] == '\n');
			}
		}
		free(buf);
	}
	kp_access_log_fmt_free(f);

	/* Without a trailing newline in the format, a cut is a plain cut. */
	f = kp_access_log_fmt_compile("%REQ(USER-AGENT)%", 0, err, sizeof(err));
	char small[5];
	K_CHECK_INT_EQ(kp_access_log_render(f, &si, small, sizeof(small)), 4);
	K_CHECK_STR_EQ(small, "curl");
	kp_access_log_fmt_free(f);
}

static void test_errors(void)
{
	static const struct {
		const char *fmt;
		const char *err;
	} cases[] = {
		{"[%START_TIME%] %FOO%", "unknown command operator %FOO% at offset 15"},
		{"%DURATION", "unterminated command operator at offset 0"},
		{"abc %REQ(USER-AGENT", "unterminated command operator at offset 4"},
		{"%REQ%", "%REQ% needs a header name, as in %REQ(USER-AGENT)% (offset 0)"},
		{"%RESP()%", "%RESP% needs a header name, as in %RESP(USER-AGENT)% (offset 0)"},
		{"%DURATION(x)%", "command operator %DURATION% takes no argument (offset 0)"},
		{"50% done",
		 "'%' at offset 2 does not start a command operator (write %% for a literal '%')"},
		{"%REQ(A B)%", "invalid header name \"A B\" in command operator at offset 0"},
		{"%REQ(:FOO)%", "unknown pseudo-header \":FOO\" at offset 0"},
		{"%REQ(X?)%", "empty header name in command operator at offset 0"},
		{"%REQ(X):0%", "invalid maximum length in command operator at offset 0"},
		{"%REQ(X):%", "invalid maximum length in command operator at offset 0"},
		{"%REQ(X):99999999999%", "invalid maximum length in command operator at offset 0"},
		{"%REQ(X)x%", "unexpected 'x' in command operator %REQ at offset 0"},
		{"%",
		 "'%' at offset 0 does not start a command operator (write %% for a literal '%')"},
		{"%start_time%",
		 "'%' at offset 0 does not start a command operator (write %% for a literal '%')"},
	};
	for (size_t i = 0; i < K_ARRAY_LEN(cases); i++) {
		char err[256] = "unset";
		struct kp_access_log_fmt *f =
			kp_access_log_fmt_compile(cases[i].fmt, 0, err, sizeof(err));
		K_CHECK(f == NULL);
		kp_access_log_fmt_free(f);
		K_CHECK_STR_EQ(err, cases[i].err);
	}
	char err[64];
	K_CHECK(kp_access_log_fmt_compile("x", 1, err, sizeof(err)) == NULL);
	K_CHECK(kp_access_log_fmt_compile(NULL, 0, err, sizeof(err)) == NULL);
	/* A tiny error buffer still gets a terminated message. */
	char tiny[8];
	K_CHECK(kp_access_log_fmt_compile("%FOO%", 0, tiny, sizeof(tiny)) == NULL);
	K_CHECK_STR_EQ(tiny, "unknown");

	/* Istio's default format compiles. */
	static const char istio[] =
		"[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% "
		"%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% "
		"%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
		"\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% "
		"%BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
		"\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
		"\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" "
		"%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% "
		"%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
		"%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";
	struct kp_access_log_fmt *f = kp_access_log_fmt_compile(istio, 0, err, sizeof(err));
	K_CHECK(f != NULL);
	kp_access_log_fmt_free(f);
}

K_TEST_MAIN(test_default_format, test_operators, test_start_time, test_flags, test_truncation,
	    test_errors)
