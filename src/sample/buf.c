/* buf.c — growable byte buffer, JSON string escaping and JSON validation. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sample.h"

int sbuf_reserve(struct sbuf *b, size_t extra)
{
	if (b->oom)
		return K_ENOMEM;
	if (b->cap - b->len >= extra)
		return K_OK;
	size_t need = b->len + extra;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return K_ENOMEM;
	}
	b->p = p;
	b->cap = cap;
	return K_OK;
}

void sbuf_put(struct sbuf *b, const void *p, size_t n)
{
	if (K_UNLIKELY(b->cap - b->len < n) && sbuf_reserve(b, n) != K_OK)
		return;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

void sbuf_puts(struct sbuf *b, const char *s)
{
	sbuf_put(b, s, strlen(s));
}

void sbuf_putc(struct sbuf *b, char ch)
{
	if (K_UNLIKELY(b->cap == b->len) && sbuf_reserve(b, 1) != K_OK)
		return;
	b->p[b->len++] = ch;
}

void sbuf_put_u64(struct sbuf *b, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sbuf_put(b, tmp + i, sizeof(tmp) - i);
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || sbuf_reserve(b, (size_t)n + 1) != K_OK)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void sbuf_free(struct sbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}

void sbuf_trim(struct sbuf *b, size_t keep)
{
	if (b->cap > keep)
		sbuf_free(b);
	b->len = 0;
	b->oom = 0;
}

/* Bytes that need escaping in a JSON string: controls, quote, backslash,
 * and bytes >= 0x80. Those are escaped as the Latin-1 code point (\u00XX)
 * because header values are opaque octets, not UTF-8 (RFC 9110 5.5), and
 * the output must stay valid JSON whatever a client sent. */
static inline int json_plain(unsigned char ch)
{
	return ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\';
}

void json_esc(struct sbuf *b, const char *p, size_t n, int lower)
{
	static const char hex[] = "0123456789abcdef";
	/* Worst case every byte becomes \u00XX: reserve once. */
	if (sbuf_reserve(b, n * 6) != K_OK)
		return;
	char *o = b->p + b->len;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (K_LIKELY(json_plain(ch))) {
			if (lower && ch >= 'A' && ch <= 'Z')
				ch |= 0x20;
			*o++ = (char)ch;
			continue;
		}
		*o++ = '\\';
		switch (ch) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	b->len = (size_t)(o - b->p);
}

void json_str(struct sbuf *b, const char *p, size_t n, int lower)
{
	sbuf_putc(b, '"');
	json_esc(b, p, n, lower);
	sbuf_putc(b, '"');
}

/* ---- validation: a recursive-descent recogniser, nothing is built ------- */

#define JSON_MAX_DEPTH 64

struct jv {
	const char *p;
	const char *end;
};

static int jv_value(struct jv *v, int depth);

static void jv_ws(struct jv *v)
{
	while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
		v->p++;
}

static int jv_lit(struct jv *v, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(v->end - v->p) < n || memcmp(v->p, lit, n) != 0)
		return 0;
	v->p += n;
	return 1;
}

static int is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static int jv_string(struct jv *v)
{
	if (v->p >= v->end || *v->p != '"')
		return 0;
	v->p++;
	while (v->p < v->end) {
		unsigned char ch = (unsigned char)*v->p++;
		if (ch == '"')
			return 1;
		if (ch < 0x20)
			return 0;
		if (ch != '\\')
			continue;
		if (v->p >= v->end)
			return 0;
		ch = (unsigned char)*v->p++;
		if (ch == 'u') {
			if (v->end - v->p < 4)
				return 0;
			for (int i = 0; i < 4; i++)
				if (!is_hex(v->p[i]))
					return 0;
			v->p += 4;
		} else if (!strchr("\"\\/bfnrt", ch) || ch == 0) {
			return 0;
		}
	}
	return 0;
}

static int jv_digits(struct jv *v)
{
	const char *s = v->p;
	while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
		v->p++;
	return v->p > s;
}

static int jv_number(struct jv *v)
{
	if (v->p < v->end && *v->p == '-')
		v->p++;
	if (v->p < v->end && *v->p == '0')
		v->p++;
	else if (!jv_digits(v))
		return 0;
	if (v->p < v->end && *v->p == '.') {
		v->p++;
		if (!jv_digits(v))
			return 0;
	}
	if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
		v->p++;
		if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
			v->p++;
		if (!jv_digits(v))
			return 0;
	}
	return 1;
}

/* Members or elements after the opening bracket: handles [] and {} too. */
static int jv_container(struct jv *v, int depth, char close, int object)
{
	v->p++;
	jv_ws(v);
	if (v->p < v->end && *v->p == close) {
		v->p++;
		return 1;
	}
	for (;;) {
		if (object) {
			jv_ws(v);
			if (!jv_string(v))
				return 0;
			jv_ws(v);
			if (v->p >= v->end || *v->p != ':')
				return 0;
			v->p++;
		}
		if (!jv_value(v, depth + 1))
			return 0;
		jv_ws(v);
		if (v->p >= v->end)
			return 0;
		if (*v->p == close) {
			v->p++;
			return 1;
		}
		if (*v->p != ',')
			return 0;
		v->p++;
	}
}

static int jv_value(struct jv *v, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return 0;
	jv_ws(v);
	if (v->p >= v->end)
		return 0;
	switch (*v->p) {
	case '{': return jv_container(v, depth, '}', 1);
	case '[': return jv_container(v, depth, ']', 0);
	case '"': return jv_string(v);
	case 't': return jv_lit(v, "true");
	case 'f': return jv_lit(v, "false");
	case 'n': return jv_lit(v, "null");
	default: return jv_number(v);
	}
}

int json_valid(const char *p, size_t n)
{
	struct jv v = {p, p + n};
	if (!jv_value(&v, 0))
		return 0;
	jv_ws(&v);
	return v.p == v.end;
}
