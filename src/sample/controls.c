/* controls.c — the query-string controls of kite-sample requests.
 *
 * ?status=503 ?delay_ms=100 ?size=4096 (k/m/g suffixes) ?chunked=1 ?close=1
 * ?headers=k:v,k2:v2 ?drop=1|rst ?echo_headers=0 ?fail_on_call_error=1.
 * Parsing never fails the request on the spot: the first bad parameter is
 * remembered and answered with 400 once the body has been read, so the
 * connection stays in sync.
 */
#include <sys/types.h>

#include "h1_codec.h"
#include "sample.h"

#define MAX_DELAY_MS 600000u
#define MAX_SIZE     (1ull << 40)
static int str_to_u64(struct k_str s, uint64_t max, uint64_t *out)
{
	if (s.len == 0 || s.len > 20)
		return K_EINVAL;
	uint64_t v = 0;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return K_EINVAL;
		unsigned d = (unsigned)(s.p[i] - '0');
		if (v > (max - d) / 10)
			return K_ELIMIT;
		v = v * 10 + d;
	}
	*out = v;
	return K_OK;
}

static int parse_bool(struct k_str v, unsigned *out)
{
	if (k_str_eq(v, K_STR_LIT("1")) || k_str_ieq_lit(v, "true") || v.len == 0) {
		*out = 1;
		return K_OK;
	}
	if (k_str_eq(v, K_STR_LIT("0")) || k_str_ieq_lit(v, "false")) {
		*out = 0;
		return K_OK;
	}
	return K_EINVAL;
}

/* Walk ?headers=k:v,k2:v2. With out == NULL only validates; otherwise
 * appends "k: v\r\n" lines. Names and values are percent-decoded after
 * splitting, so "%2C" is a literal comma inside a value. */
int ctl_extra_headers(struct k_str raw, struct sbuf *out, const char **why)
{
	char name[256], value[4096];
	const char *p = raw.p, *end = raw.p + raw.len;
	while (p < end) {
		const char *ie = memchr(p, ',', (size_t)(end - p));
		if (!ie)
			ie = end;
		const char *colon = memchr(p, ':', (size_t)(ie - p));
		if (ie == p) {
			p = ie + 1;
			continue;
		}
		if (!colon) {
			*why = "each item must be name:value";
			return K_EINVAL;
		}
		ssize_t nl = k_pct_decode((struct k_str){p, (size_t)(colon - p)}, name,
					  sizeof(name), K_PCT_PLUS_SPACE);
		ssize_t vl = k_pct_decode((struct k_str){colon + 1, (size_t)(ie - colon - 1)},
					  value, sizeof(value), K_PCT_PLUS_SPACE);
		if (nl <= 0) {
			*why = "empty, too long or badly escaped header name";
			return K_EINVAL;
		}
		if (vl < 0) {
			*why = "too long or badly escaped header value";
			return K_EINVAL;
		}
		for (ssize_t i = 0; i < nl; i++)
			if (!k_h1_is_tchar((unsigned char)name[i])) {
				*why = "header name must be a token";
				return K_EINVAL;
			}
		for (ssize_t i = 0; i < vl; i++) {
			unsigned char ch = (unsigned char)value[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				*why = "control character in header value";
				return K_EINVAL;
			}
		}
		struct k_str n = {name, (size_t)nl};
		if (k_str_ieq_lit(n, "content-length") || k_str_ieq_lit(n, "transfer-encoding") ||
		    k_str_ieq_lit(n, "connection")) {
			*why = "framing headers (content-length, "
			       "transfer-encoding, connection) cannot be set";
			return K_EINVAL;
		}
		if (out) {
			sbuf_put(out, name, (size_t)nl);
			sbuf_put(out, ": ", 2);
			sbuf_put(out, value, (size_t)vl);
			sbuf_put(out, "\r\n", 2);
		}
		p = ie + 1;
	}
	return K_OK;
}

static void set_bad(struct controls *ctl, const char *param, const char *reason)
{
	if (!ctl->bad_param) {
		ctl->bad_param = param;
		ctl->bad_reason = reason;
	}
}

/* Read the controls out of the query string; unknown names are ignored so
 * that callers can add their own cache-busting parameters. */
void ctl_parse(struct k_str q, struct controls *ctl)
{
	const char *p = q.p, *end = q.p + q.len;
	while (p < end) {
		const char *ie = memchr(p, '&', (size_t)(end - p));
		if (!ie)
			ie = end;
		const char *eq = memchr(p, '=', (size_t)(ie - p));
		struct k_str k = {p, (size_t)((eq ? eq : ie) - p)};
		struct k_str v = {eq ? eq + 1 : ie, eq ? (size_t)(ie - eq - 1) : 0};
		uint64_t n;
		unsigned b;
		p = ie + 1;
		if (k.len == 0)
			continue;
		switch (k.p[0]) {
		case 's':
			if (k_str_eq(k, K_STR_LIT("status"))) {
				if (str_to_u64(v, 999, &n) != K_OK || n < 200 || n > 599)
					set_bad(ctl, "status",
						"must be an integer from 200 "
						"to "
						"599");
				else
					ctl->status = (int)n;
			} else if (k_str_eq(k, K_STR_LIT("size"))) {
				uint64_t mul = 1;
				if (v.len > 1) {
					switch (v.p[v.len - 1] | 0x20) {
					case 'k': mul = 1ull << 10; break;
					case 'm': mul = 1ull << 20; break;
					case 'g': mul = 1ull << 30; break;
					}
					if (mul != 1)
						v.len--;
				}
				if (str_to_u64(v, MAX_SIZE, &n) != K_OK || n > MAX_SIZE / mul)
					set_bad(ctl, "size",
						"must be a byte count up to "
						"2^40 "
						"(suffix k, m or g allowed)");
				else {
					ctl->size = n * mul;
					ctl->has_size = 1;
				}
			}
			break;
		case 'd':
			if (k_str_eq(k, K_STR_LIT("delay_ms"))) {
				if (str_to_u64(v, MAX_DELAY_MS, &n) != K_OK)
					set_bad(ctl, "delay_ms",
						"must be an integer from 0 to "
						"600000");
				else
					ctl->delay_ms = (uint32_t)n;
			} else if (k_str_eq(k, K_STR_LIT("drop"))) {
				if (k_str_ieq_lit(v, "rst") || k_str_ieq_lit(v, "reset"))
					ctl->drop = DROP_RST;
				else if (parse_bool(v, &b) != K_OK)
					set_bad(ctl, "drop",
						"must be 1, 0, true, false or "
						"rst");
				else
					ctl->drop = b ? DROP_FIN : DROP_NONE;
			}
			break;
		case 'c':
			if (k_str_eq(k, K_STR_LIT("chunked"))) {
				if (parse_bool(v, &b) != K_OK)
					set_bad(ctl, "chunked", "must be 1, 0, true or false");
				else
					ctl->chunked = b;
			} else if (k_str_eq(k, K_STR_LIT("close"))) {
				if (parse_bool(v, &b) != K_OK)
					set_bad(ctl, "close", "must be 1, 0, true or false");
				else
					ctl->close = b;
			}
			break;
		case 'f':
			if (k_str_eq(k, K_STR_LIT("fail_on_call_error"))) {
				if (parse_bool(v, &b) != K_OK)
					set_bad(ctl, "fail_on_call_error",
						"must be 1, 0, true or false");
				else
					ctl->fail_on_call_error = b;
			}
			break;
		case 'e':
			if (k_str_eq(k, K_STR_LIT("echo_headers"))) {
				if (parse_bool(v, &b) != K_OK)
					set_bad(ctl, "echo_headers", "must be 1, 0, true or false");
				else
					ctl->no_echo_headers = !b;
			}
			break;
		case 'h':
			if (k_str_eq(k, K_STR_LIT("headers"))) {
				const char *why = "";
				if (ctl_extra_headers(v, NULL, &why) != K_OK)
					set_bad(ctl, "headers", why);
				else
					ctl->headers = v;
			}
			break;
		}
	}
}
