/* k_pbjson_enc.c — protobuf-c messages -> proto3 JSON (for /config_dump),
 * and the text forms both directions share: which types are well-known,
 * UTF-8, base64, durations and timestamps.
 *
 * Field names are the proto names (snake_case), as Envoy's config dump
 * prints them. Output is always valid UTF-8 JSON, even for strings that
 * arrived over the wire with invalid UTF-8 (those bytes become U+FFFD).
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

#include "k_pbjson.h"

#define DURATION_MAX_SECONDS  315576000000LL
#define TIMESTAMP_MIN_SECONDS (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TIMESTAMP_MAX_SECONDS 253402300799LL   /* 9999-12-31T23:59:59Z */

/* An Any can hold an Any: without a bound, bytes from the wire could
 * recurse as deep as they like. */
#define MAX_DEPTH 100

/* ---- text forms, shared with the decoder ---- */

enum k_pbjson_wkt k_pbjson_wkt_of(const ProtobufCMessageDescriptor *desc)
{
	static const struct {
		const char *name;
		enum k_pbjson_wkt kind;
	} tab[] = {
		{"Any", K_WKT_ANY},
		{"Duration", K_WKT_DURATION},
		{"Timestamp", K_WKT_TIMESTAMP},
		{"Struct", K_WKT_STRUCT},
		{"Value", K_WKT_VALUE},
		{"ListValue", K_WKT_LIST},
		{"DoubleValue", K_WKT_WRAPPER},
		{"FloatValue", K_WKT_WRAPPER},
		{"Int64Value", K_WKT_WRAPPER},
		{"UInt64Value", K_WKT_WRAPPER},
		{"Int32Value", K_WKT_WRAPPER},
		{"UInt32Value", K_WKT_WRAPPER},
		{"BoolValue", K_WKT_WRAPPER},
		{"StringValue", K_WKT_WRAPPER},
		{"BytesValue", K_WKT_WRAPPER},
	};

	if (!desc->package_name || strcmp(desc->package_name, "google.protobuf"))
		return K_WKT_NONE;
	for (size_t i = 0; i < K_ARRAY_LEN(tab); i++)
		if (strcmp(desc->short_name, tab[i].name) == 0)
			return tab[i].kind;
	return K_WKT_NONE;
}

int k_pbjson_is_map(const ProtobufCFieldDescriptor *fd)
{
	const ProtobufCMessageDescriptor *ed = fd->descriptor;
	const char *want;
	bool cap = true;

	if (fd->label != PROTOBUF_C_LABEL_REPEATED || fd->type != PROTOBUF_C_TYPE_MESSAGE || !ed ||
	    ed->n_fields != 2 || ed->fields[0].id != 1 || ed->fields[1].id != 2 ||
	    strcmp(ed->fields[0].name, "key") || strcmp(ed->fields[1].name, "value"))
		return 0;
	/* protoc names the entry type after the field: foo_bar -> FooBarEntry.
	 * Checking that keeps a user message that merely looks like an entry
	 * from being taken for a map. */
	want = ed->short_name;
	for (const char *p = fd->name; *p; p++) {
		char ch = *p;
		if (ch == '_') {
			cap = true;
			continue;
		}
		if (cap && ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		cap = false;
		if (*want++ != ch)
			return 0;
	}
	return strcmp(want, "Entry") == 0;
}

size_t k_pbjson_utf8_seq(const unsigned char *s, size_t left)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 1;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 2;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 3;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (left <= n)
		return 0;
	for (size_t k = 1; k <= n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n + 1;
}

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

int k_pbjson_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
	size_t nd = 0, pad = 0, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	uint8_t *buf;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t')
			continue;
		if (ch == '=')
			pad++;
		else if (pad || b64_value(ch) < 0)
			return K_EINVAL;
		else
			nd++;
	}
	if (nd % 4 == 1 || pad > 2 || (pad && (nd + pad) % 4))
		return K_EINVAL;
	buf = malloc(nd * 3 / 4 + 1);
	if (!buf)
		return K_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int b = b64_value((unsigned char)s[i]);
		if (b < 0)
			continue;
		acc = (acc << 6) | (uint32_t)b;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	*out = buf;
	*outlen = o;
	return 0;
}

/* Up to nine digits of a fraction of a second, as nanoseconds. */
static int parse_frac(const char **sp, int32_t *nanos)
{
	const char *s = *sp;
	int32_t ns = 0;
	int digits = 0;

	while (isdigit((unsigned char)*s)) {
		if (++digits > 9)
			return -1;
		ns = ns * 10 + (*s++ - '0');
	}
	if (!digits)
		return -1;
	for (int i = digits; i < 9; i++)
		ns *= 10;
	*nanos = ns;
	*sp = s;
	return 0;
}

int k_pbjson_parse_duration(const char *s, int64_t *seconds, int32_t *nanos)
{
	bool neg = *s == '-', digits = false;
	int64_t sec = 0;
	int32_t ns = 0;

	s += neg;
	while (isdigit((unsigned char)*s)) {
		digits = true;
		sec = sec * 10 + (*s++ - '0');
		if (sec > DURATION_MAX_SECONDS)
			return K_ELIMIT;
	}
	if (*s == '.') {
		s++;
		if (parse_frac(&s, &ns))
			return K_EINVAL;
		digits = true;
	}
	if (!digits || s[0] != 's' || s[1] != '\0')
		return K_EINVAL;
	*seconds = neg ? -sec : sec;
	*nanos = neg ? -ns : ns;
	return 0;
}

static int digits_n(const char **sp, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*sp)[i]))
			return -1;
		v = v * 10 + ((*sp)[i] - '0');
	}
	*sp += n;
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date: the well-known
 * civil-date arithmetic with years starting in March, so the leap day is
 * last. civil_from_days is its inverse. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t days, int64_t *y, int64_t *m, int64_t *d)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yoe + era * 400 + (*m <= 2);
}

int k_pbjson_parse_timestamp(const char *s, int64_t *seconds, int32_t *nanos)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int32_t ns = 0;
	int64_t t;

	if (digits_n(&s, 4, &y) || *s++ != '-' || digits_n(&s, 2, &mo) || *s++ != '-' ||
	    digits_n(&s, 2, &d) || (*s != 'T' && *s != 't'))
		return K_EINVAL;
	s++;
	if (digits_n(&s, 2, &h) || *s++ != ':' || digits_n(&s, 2, &mi) || *s++ != ':' ||
	    digits_n(&s, 2, &sec))
		return K_EINVAL;
	if (*s == '.') {
		s++;
		if (parse_frac(&s, &ns))
			return K_EINVAL;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (digits_n(&s, 2, &oh) || *s++ != ':' || digits_n(&s, 2, &om) || oh > 23 ||
		    om > 59)
			return K_EINVAL;
	} else {
		return K_EINVAL;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59)
		return K_EINVAL;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return K_EINVAL;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
	    sign * (oh * 3600 + om * 60);
	if (t < TIMESTAMP_MIN_SECONDS || t > TIMESTAMP_MAX_SECONDS)
		return K_ELIMIT;
	*seconds = t;
	*nanos = ns;
	return 0;
}

/* ---- the encoder ---- */

struct jbuf {
	char *p;
	size_t len, cap;
	bool oom;
	int indent; /* spaces per level; 0 for compact output */
	int depth;
};

static bool reserve(struct jbuf *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->oom)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np) {
		b->oom = true;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

static void put(struct jbuf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct jbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) putf(struct jbuf *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, K_MIN((size_t)n, sizeof(tmp) - 1));
}

static void newline(struct jbuf *b, int level)
{
	if (!b->indent || !reserve(b, 1 + (size_t)(b->indent * level)))
		return;
	b->p[b->len++] = '\n';
	for (int i = 0; i < b->indent * level; i++)
		b->p[b->len++] = ' ';
	b->p[b->len] = '\0';
}

/* The code point of a valid n-byte UTF-8 sequence. */
static uint32_t utf8_decode(const unsigned char *s, size_t n)
{
	uint32_t cp = n == 1 ? s[0] : s[0] & (0x7f >> n);

	for (size_t k = 1; k < n; k++)
		cp = (cp << 6) | (s[k] & 0x3f);
	return cp;
}

static void put_str(struct jbuf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	put(b, "\"", 1);
	while (i < len) {
		size_t run = i;
		/* copy the plain stretch in one go */
		while (run < len && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' &&
		       u[run] != '\\')
			run++;
		put(b, s + i, run - i);
		i = run;
		if (i == len)
			break;
		unsigned char ch = u[i];
		size_t n;
		switch (ch) {
		case '"': puts_(b, "\\\""); break;
		case '\\': puts_(b, "\\\\"); break;
		case '\n': puts_(b, "\\n"); break;
		case '\r': puts_(b, "\\r"); break;
		case '\t': puts_(b, "\\t"); break;
		case '\b': puts_(b, "\\b"); break;
		case '\f': puts_(b, "\\f"); break;
		default:
			if (ch < 0x80) {
				putf(b, "\\u%04x", ch);
			} else if ((n = k_pbjson_utf8_seq(u + i, len - i))) {
				uint32_t cp = utf8_decode(u + i, n);
				/* characters a YAML reader would refuse or read
				 * as line breaks travel escaped */
				if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
				    cp == 0xfffe || cp == 0xffff)
					putf(b, "\\u%04x", (unsigned)cp);
				else
					put(b, s + i, n);
				i += n;
				continue;
			} else {
				puts_(b, "\\ufffd");
			}
			break;
		}
		i++;
	}
	put(b, "\"", 1);
}

static void put_cstr(struct jbuf *b, const char *s)
{
	put_str(b, s ? s : "", s ? strlen(s) : 0);
}

static void put_base64(struct jbuf *b, const uint8_t *d, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
				  "stuvwxyz0123456789+/";
	size_t i;

	if (!reserve(b, 2 + (len + 2) / 3 * 4))
		return;
	b->p[b->len++] = '"';
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
		b->p[b->len++] = tab[v >> 18];
		b->p[b->len++] = tab[(v >> 12) & 63];
		b->p[b->len++] = tab[(v >> 6) & 63];
		b->p[b->len++] = tab[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)d[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)d[i + 1] << 8;
		b->p[b->len++] = tab[v >> 18];
		b->p[b->len++] = tab[(v >> 12) & 63];
		b->p[b->len++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		b->p[b->len++] = '=';
	}
	b->p[b->len++] = '"';
	b->p[b->len] = '\0';
}

/* The shortest text that reads back as the same value. */
static void put_double(struct jbuf *b, double v, bool is_float)
{
	char tmp[40];

	if (isnan(v)) {
		puts_(b, "\"NaN\"");
		return;
	}
	if (isinf(v)) {
		puts_(b, v < 0 ? "\"-Infinity\"" : "\"Infinity\"");
		return;
	}
	for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (is_float ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v)
			break;
	}
	puts_(b, tmp);
}

/* Seconds and nanos as "1.500s": 0, 3, 6 or 9 fractional digits, as
 * protobuf's own printer does. */
static void put_frac(struct jbuf *b, int32_t nanos)
{
	if (nanos == 0)
		return;
	if (nanos % 1000000 == 0)
		putf(b, ".%03d", nanos / 1000000);
	else if (nanos % 1000 == 0)
		putf(b, ".%06d", nanos / 1000);
	else
		putf(b, ".%09d", nanos);
}

static void put_duration(struct jbuf *b, const Google__Protobuf__Duration *d)
{
	bool neg = d->seconds < 0 || d->nanos < 0;
	uint64_t s = d->seconds < 0 ? -(uint64_t)d->seconds : (uint64_t)d->seconds;
	int32_t ns = d->nanos < 0 ? -d->nanos : d->nanos;

	putf(b, "\"%s%" PRIu64, neg ? "-" : "", s);
	if (ns > 0 && ns < 1000000000)
		put_frac(b, ns);
	puts_(b, "s\"");
}

static void put_timestamp(struct jbuf *b, const Google__Protobuf__Timestamp *t)
{
	int64_t days = t->seconds / 86400, rem = t->seconds % 86400, y, m, d;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	putf(b, "\"%04" PRId64 "-%02" PRId64 "-%02" PRId64 "T%02d:%02d:%02d", y, m, d,
	     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
	if (t->nanos > 0 && t->nanos < 1000000000)
		put_frac(b, t->nanos);
	puts_(b, "Z\"");
}

static void enc_message(struct jbuf *b, const ProtobufCMessage *m, int level);

/* One value of fd's type stored at p. */
static void enc_value(struct jbuf *b, const ProtobufCFieldDescriptor *fd, const void *p, int level)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32: putf(b, "%" PRId32, *(const int32_t *)p); break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32: putf(b, "%" PRIu32, *(const uint32_t *)p); break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: putf(b, "\"%" PRId64 "\"", *(const int64_t *)p); break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: putf(b, "\"%" PRIu64 "\"", *(const uint64_t *)p); break;
	case PROTOBUF_C_TYPE_FLOAT: put_double(b, *(const float *)p, true); break;
	case PROTOBUF_C_TYPE_DOUBLE: put_double(b, *(const double *)p, false); break;
	case PROTOBUF_C_TYPE_BOOL:
		puts_(b, *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = fd->descriptor;
		int v = *(const int32_t *)p;
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
		if (!strcmp(ed->name, "google.protobuf.NullValue"))
			puts_(b, "null");
		else if (ev)
			put_cstr(b, ev->name);
		else
			putf(b, "%d", v);
		break;
	}
	case PROTOBUF_C_TYPE_STRING: put_cstr(b, *(char *const *)p); break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = p;
		put_base64(b, bd->data, bd->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
		if (sub)
			enc_message(b, sub, level);
		else
			puts_(b, "null");
		break;
	}
	}
}

/* Whether a singular field is set, under proto3 (and proto2) presence. */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)m;
	const void *p = base + fd->offset;

	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
	switch (fd->type) {
	case PROTOBUF_C_TYPE_MESSAGE: return *(void *const *)p != NULL;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		if (fd->label == PROTOBUF_C_LABEL_NONE)
			return s && s[0];
		return s && s != fd->default_value;
	}
	default: break;
	}
	if (fd->label == PROTOBUF_C_LABEL_OPTIONAL)
		return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
	if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
		return true;
	switch (fd->type) {
	case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len > 0;
	case PROTOBUF_C_TYPE_FLOAT: return *(const float *)p != 0;
	case PROTOBUF_C_TYPE_DOUBLE: return *(const double *)p != 0;
	case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p != 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: return *(const uint64_t *)p != 0;
	default: return *(const uint32_t *)p != 0;
	}
}

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
	case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
	case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
	default: return sizeof(uint32_t);
	}
}

/* A map key as a JSON object key: always a string. */
static void enc_map_key(struct jbuf *b, const ProtobufCFieldDescriptor *kf, const void *p)
{
	char tmp[32];

	switch (kf->type) {
	case PROTOBUF_C_TYPE_STRING: put_cstr(b, *(char *const *)p); return;
	case PROTOBUF_C_TYPE_BOOL:
		puts_(b, *(const protobuf_c_boolean *)p ? "\"true\"" : "\"false\"");
		return;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(tmp, sizeof(tmp), "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(tmp, sizeof(tmp), "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		snprintf(tmp, sizeof(tmp), "%" PRIu32, *(const uint32_t *)p);
		break;
	default: snprintf(tmp, sizeof(tmp), "%" PRId32, *(const int32_t *)p); break;
	}
	put_cstr(b, tmp);
}

static void put_key(struct jbuf *b, const char *name)
{
	put_cstr(b, name);
	puts_(b, b->indent ? ": " : ":");
}

/* A map field as an object; a NULL message value prints as null, which
 * reads back as the same absent value. */
static void enc_map(struct jbuf *b, const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *m,
		    int level)
{
	const ProtobufCMessageDescriptor *ed = fd->descriptor;
	const ProtobufCFieldDescriptor *kf = &ed->fields[0];
	const ProtobufCFieldDescriptor *vf = &ed->fields[1];
	size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
	ProtobufCMessage *const *arr =
		*(ProtobufCMessage *const *const *)((const char *)m + fd->offset);

	if (n == 0) {
		puts_(b, "{}");
		return;
	}
	puts_(b, "{");
	for (size_t i = 0; i < n; i++) {
		const char *e = (const char *)arr[i];
		if (i)
			puts_(b, ",");
		newline(b, level + 1);
		enc_map_key(b, kf, e + kf->offset);
		puts_(b, b->indent ? ": " : ":");
		enc_value(b, vf, e + vf->offset, level + 1);
	}
	newline(b, level);
	puts_(b, "}");
}

static void enc_repeated(struct jbuf *b, const ProtobufCFieldDescriptor *fd,
			 const ProtobufCMessage *m, int level)
{
	size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
	const char *arr = *(char *const *)((const char *)m + fd->offset);
	size_t esz = elem_size(fd->type);

	if (n == 0) {
		puts_(b, "[]");
		return;
	}
	puts_(b, "[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			puts_(b, ",");
		newline(b, level + 1);
		enc_value(b, fd, arr + i * esz, level + 1);
	}
	newline(b, level);
	puts_(b, "]");
}

/* The members of an object, without braces; *first tracks commas across
 * calls so an Any can put "@type" before its message's fields. */
static void enc_fields(struct jbuf *b, const ProtobufCMessage *m, int level, bool *first)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		bool repeated = fd->label == PROTOBUF_C_LABEL_REPEATED;

		if (repeated ? *(const size_t *)((const char *)m + fd->quantifier_offset) == 0
			     : !field_present(m, fd))
			continue;
		if (!*first)
			puts_(b, ",");
		*first = false;
		newline(b, level + 1);
		put_key(b, fd->name);
		if (repeated && k_pbjson_is_map(fd))
			enc_map(b, fd, m, level + 1);
		else if (repeated)
			enc_repeated(b, fd, m, level + 1);
		else
			enc_value(b, fd, (const char *)m + fd->offset, level + 1);
	}
}

static void enc_any(struct jbuf *b, const Google__Protobuf__Any *any, int level)
{
	ProtobufCMessage *inner = NULL;
	bool first = false;
	char err[16];
	const char *url = any->type_url ? any->type_url : "";

	if (!url[0] && !any->value.len) {
		puts_(b, "{}");
		return;
	}
	puts_(b, "{");
	newline(b, level + 1);
	put_key(b, "@type");
	put_cstr(b, url);
	if (k_pb_any_unpack(url, any->value.data, any->value.len, NULL, &inner, err, sizeof(err)) ==
		    0 &&
	    k_pbjson_wkt_of(inner->descriptor) == K_WKT_NONE) {
		enc_fields(b, inner, level, &first);
	} else {
		/* a well-known type keeps its own JSON form under "value";
		 * what we cannot decode stays as its bytes */
		puts_(b, ",");
		newline(b, level + 1);
		put_key(b, "value");
		if (inner)
			enc_message(b, inner, level + 1);
		else
			put_base64(b, any->value.data, any->value.len);
	}
	if (inner)
		protobuf_c_message_free_unpacked(inner, NULL);
	newline(b, level);
	puts_(b, "}");
}

static void enc_struct_value(struct jbuf *b, const Google__Protobuf__Value *v, int level)
{
	switch (v->kind_case) {
	case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
		put_double(b, v->number_value, false);
		break;
	case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE: put_cstr(b, v->string_value); break;
	case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
		puts_(b, v->bool_value ? "true" : "false");
		break;
	case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
		if (v->struct_value)
			enc_message(b, &v->struct_value->base, level);
		else
			puts_(b, "{}");
		break;
	case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
		if (v->list_value)
			enc_message(b, &v->list_value->base, level);
		else
			puts_(b, "[]");
		break;
	default: puts_(b, "null"); break;
	}
}

static void enc_message(struct jbuf *b, const ProtobufCMessage *m, int level)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	bool first = true;

	if (++b->depth > MAX_DEPTH) {
		puts_(b, "null");
		b->depth--;
		return;
	}
	switch (k_pbjson_wkt_of(d)) {
	case K_WKT_DURATION: put_duration(b, (const Google__Protobuf__Duration *)m); break;
	case K_WKT_TIMESTAMP: put_timestamp(b, (const Google__Protobuf__Timestamp *)m); break;
	case K_WKT_WRAPPER:
		enc_value(b, &d->fields[0], (const char *)m + d->fields[0].offset, level);
		break;
	case K_WKT_STRUCT: enc_map(b, &d->fields[0], m, level); break;
	case K_WKT_LIST: enc_repeated(b, &d->fields[0], m, level); break;
	case K_WKT_VALUE: enc_struct_value(b, (const Google__Protobuf__Value *)m, level); break;
	case K_WKT_ANY: enc_any(b, (const Google__Protobuf__Any *)m, level); break;
	default:
		puts_(b, "{");
		enc_fields(b, m, level, &first);
		if (!first)
			newline(b, level);
		puts_(b, "}");
		break;
	}
	b->depth--;
}

char *k_pbjson_encode(const ProtobufCMessage *msg, int indent)
{
	struct jbuf b = {.indent = indent > 0 ? K_MIN(indent, 16) : 0};

	enc_message(&b, msg, 0);
	if (b.indent)
		put(&b, "\n", 1);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
