/* k_pbjson.c — YAML/JSON -> protobuf-c messages, driven by descriptors.
 *
 * libfyaml builds the document tree; we walk it beside the message
 * descriptor. Every value lands in a message that is always in a state
 * protobuf_c_message_free_unpacked() can release: arrays are attached
 * before they are filled and their counts grow one element at a time,
 * oneof cases are set together with their member. So on any error the
 * caller simply frees the top message.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfyaml.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

#include "k_pbjson.h"
#include "k_pbjson_yaml.h"

#define TYPE_URL_PREFIX "type.googleapis.com/"
/* Deeper than any real config, shallow enough for an 8 MiB stack. */
#define MAX_DEPTH 200
/* Aliases let a small text expand exponentially ("billion laughs"); past
 * this many nodes after expansion a document with aliases is refused. */
#define MAX_EXPANDED_NODES 1000000
#define MAX_FILE_SIZE	   (64u << 20)

/* ---- decoding context, paths and errors ---- */

struct dctx {
	const char *source;
	char *err;
	size_t errlen;
	int rc;	  /* first failure, 0 while all is well */
	int line; /* 1-based; where to point when a node has no token */
	int depth;
	size_t plen;
	char path[512];
};

/* One decoded scalar or message, before it is stored in its field. */
union pbval {
	int32_t i32;
	uint32_t u32;
	int64_t i64;
	uint64_t u64;
	float f;
	double d;
	protobuf_c_boolean b;
	char *s;
	ProtobufCBinaryData bd;
	ProtobufCMessage *m;
};

static size_t __attribute__((format(printf, 2, 3))) path_push(struct dctx *c, const char *fmt, ...)
{
	size_t old = c->plen;
	size_t room = sizeof(c->path) - c->plen;
	va_list ap;
	int n;

	if (room <= 1)
		return old;
	va_start(ap, fmt);
	n = vsnprintf(c->path + c->plen, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->plen += K_MIN((size_t)n, room - 1);
	return old;
}

static void path_pop(struct dctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

/* Input text as it may appear in a message: cut short, with control
 * characters as '?', so that an error stays one readable line. */
static const char *printable(const char *s, size_t len, char *buf, size_t size)
{
	size_t n = K_MIN(len, size - 1);

	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[n] = '\0';
	return buf;
}

static size_t path_push_name(struct dctx *c, const char *name, size_t len)
{
	char tmp[129];

	return path_push(c, "%s%s", c->plen ? "." : "", printable(name, len, tmp, sizeof(tmp)));
}

static void appendf(char *buf, size_t size, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t size, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off + 1 >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, size - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += K_MIN((size_t)n, size - *off - 1);
}

/* A scalar's text, which k_pbjson_prepare_scalars() stores in every scalar node's
 * meta pointer before decoding. */
static const char *scalar_text(struct fy_node *n, size_t *len)
{
	const struct qtext *q = n ? fy_node_get_meta(n) : NULL;
	const char *s;

	if (q) {
		*len = q->len;
		return q->s;
	}
	s = n ? fy_node_get_scalar(n, len) : NULL;
	if (!s) {
		*len = 0;
		return "";
	}
	return s;
}

/* libfyaml 0.7 only exposes positions through tokens, and only scalars have
 * one, so a collection is placed at its first scalar. */
static int node_line(struct dctx *c, struct fy_node *n)
{
	for (int guard = 0; n && guard < 100; guard++) {
		void *it = NULL;
		struct fy_node_pair *p;

		switch (fy_node_get_type(n)) {
		case FYNT_SCALAR: {
			struct fy_token *t = fy_node_get_scalar_token(n);
			const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
			return m ? m->line + 1 : c->line;
		}
		case FYNT_MAPPING:
			p = fy_node_mapping_iterate(n, &it);
			n = p ? fy_node_pair_key(p) : NULL;
			break;
		default: n = fy_node_sequence_iterate(n, &it); break;
		}
	}
	return c->line;
}

static int __attribute__((format(printf, 3, 4)))
fail(struct dctx *c, struct fy_node *n, const char *fmt, ...)
{
	size_t off = 0;
	va_list ap;

	if (c->rc)
		return c->rc;
	c->rc = K_EINVAL;
	if (!c->errlen)
		return c->rc;
	c->err[0] = '\0';
	appendf(c->err, c->errlen, &off, "%s:%d: ", c->source, node_line(c, n));
	if (c->plen)
		appendf(c->err, c->errlen, &off, "%s: ", c->path);
	if (off + 1 < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + off, c->errlen - off, fmt, ap);
		va_end(ap);
	}
	return c->rc;
}

static int oom(struct dctx *c)
{
	if (c->rc)
		return c->rc;
	c->rc = K_ENOMEM;
	if (c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory", c->source);
	return c->rc;
}

/* ---- node helpers ---- */

enum nkind { NK_NULL, NK_SCALAR, NK_MAP, NK_SEQ };

/* A quoted or block scalar (or one tagged !!str) is a string even if it
 * reads like a number, a boolean or null. */
static bool is_quoted(struct fy_node *n)
{
	size_t tlen = 0;
	const char *tag;

	switch (fy_node_get_style(n)) {
	case FYNS_SINGLE_QUOTED:
	case FYNS_DOUBLE_QUOTED:
	case FYNS_LITERAL:
	case FYNS_FOLDED: return true;
	default: break;
	}
	tag = fy_node_get_tag(n, &tlen);
	return tag && ((tlen == 5 && !memcmp(tag, "!!str", 5)) ||
		       (tlen == 21 && !memcmp(tag, "tag:yaml.org,2002:str", 21)));
}

static bool text_is(const char *s, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static enum nkind node_kind(struct fy_node *n)
{
	const char *s;
	size_t len;

	if (!n)
		return NK_NULL;
	switch (fy_node_get_type(n)) {
	case FYNT_MAPPING: return NK_MAP;
	case FYNT_SEQUENCE: return NK_SEQ;
	default: break;
	}
	if (is_quoted(n))
		return NK_SCALAR;
	s = scalar_text(n, &len);
	if (len == 0 || text_is(s, len, "~") || text_is(s, len, "null") ||
	    text_is(s, len, "Null") || text_is(s, len, "NULL"))
		return NK_NULL;
	return NK_SCALAR;
}

/* "a mapping", "a sequence", "null" or the scalar itself, quoted and cut
 * short, for "expected X, got Y". */
static const char *node_desc(struct fy_node *n, char *buf, size_t size)
{
	const char *s;
	size_t len, o = 0;

	switch (node_kind(n)) {
	case NK_NULL: return "null";
	case NK_MAP: return "a mapping";
	case NK_SEQ: return "a sequence";
	default: break;
	}
	s = scalar_text(n, &len);
	buf[o++] = '"';
	for (size_t i = 0; i < len && o + 6 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (i >= 60) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (ch == '"' || ch == '\\')
			buf[o++] = '\\';
		buf[o++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static int fail_type(struct dctx *c, struct fy_node *n, const char *expected)
{
	char d[80];

	return fail(c, n, "expected %s, got %s", expected, node_desc(n, d, sizeof(d)));
}

/* Copy a scalar into buf as a C string; false if it does not fit (no
 * number, duration or type URL we accept is that long). */
static bool scalar_cstr(struct fy_node *n, char *buf, size_t size)
{
	size_t len;
	const char *s = scalar_text(n, &len);

	if (len >= size || memchr(s, '\0', len))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return true;
}

/* ---- suggestions for misspelled names ---- */

static size_t edit_distance(const char *a, size_t al, const char *b, size_t bl)
{
	size_t row[65];

	if (al > 64 || bl > 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= bl; j++)
		row[j] = j;
	for (size_t i = 1; i <= al; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= bl; j++) {
			size_t up = row[j];
			int ca = tolower((unsigned char)a[i - 1]);
			int cb = tolower((unsigned char)b[j - 1]);
			size_t best = diag + (ca != cb);
			best = K_MIN(best, up + 1);
			best = K_MIN(best, row[j - 1] + 1);
			row[j] = best;
			diag = up;
		}
	}
	return row[bl];
}

/* Equal once case, '_' and '-' are ignored: catches lbPolicy vs LB_POLICY. */
static bool loose_eq(const char *a, size_t al, const char *b, size_t bl)
{
	size_t i = 0, j = 0;

	for (;;) {
		while (i < al && (a[i] == '_' || a[i] == '-'))
			i++;
		while (j < bl && (b[j] == '_' || b[j] == '-'))
			j++;
		if (i == al || j == bl)
			return i == al && j == bl;
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[j]))
			return false;
		i++;
		j++;
	}
}

struct suggest {
	const char *key;
	size_t klen;
	const char *best;
	size_t score;
};

static void suggest_try(struct suggest *s, const char *cand)
{
	size_t cl = strlen(cand);
	size_t d =
		loose_eq(s->key, s->klen, cand, cl) ? 0 : edit_distance(s->key, s->klen, cand, cl);
	size_t limit = s->klen < 5 ? 1 : s->klen < 10 ? 2 : 3;

	if (d <= limit && d < s->score) {
		s->score = d;
		s->best = cand;
	}
}

static void suggest_fmt(const struct suggest *s, char *buf, size_t size)
{
	buf[0] = '\0';
	if (s->best)
		snprintf(buf, size, ", did you mean \"%s\"?", s->best);
}

/* ---- fields ---- */

/* lowerCamelCase per protoc's json_name: drop each '_' and capitalise the
 * character after it. */
static bool camel_eq(const char *proto, const char *key, size_t klen)
{
	size_t j = 0;
	bool up = false;

	for (const char *p = proto; *p; p++) {
		char ch = *p;
		if (ch == '_') {
			up = true;
			continue;
		}
		if (up && ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		up = false;
		if (j >= klen || key[j] != ch)
			return false;
		j++;
	}
	return j == klen;
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
						  const char *key, size_t klen)
{
	for (unsigned i = 0; i < d->n_fields; i++)
		if (text_is(key, klen, d->fields[i].name))
			return &d->fields[i];
	for (unsigned i = 0; i < d->n_fields; i++)
		if (camel_eq(d->fields[i].name, key, klen))
			return &d->fields[i];
	return NULL;
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
	default: return sizeof(uint32_t); /* 32-bit ints and enums */
	}
}

/* Store a decoded value in a singular field, with its presence marker. */
static void store(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd, const union pbval *v)
{
	char *base = (char *)msg;

	memcpy(base + fd->offset, v, elem_size(fd->type));
	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		*(uint32_t *)(base + fd->quantifier_offset) = fd->id;
	else if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_STRING &&
		 fd->type != PROTOBUF_C_TYPE_MESSAGE)
		*(protobuf_c_boolean *)(base + fd->quantifier_offset) = 1;
}

static ProtobufCMessage *msg_new(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = malloc(d->sizeof_message);

	if (m)
		d->message_init(m);
	return m;
}

/* ---- scalars ---- */

static const char *int_type_name(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32: return "int32";
	case PROTOBUF_C_TYPE_SINT32: return "sint32";
	case PROTOBUF_C_TYPE_SFIXED32: return "sfixed32";
	case PROTOBUF_C_TYPE_UINT32: return "uint32";
	case PROTOBUF_C_TYPE_FIXED32: return "fixed32";
	case PROTOBUF_C_TYPE_INT64: return "int64";
	case PROTOBUF_C_TYPE_SINT64: return "sint64";
	case PROTOBUF_C_TYPE_SFIXED64: return "sfixed64";
	case PROTOBUF_C_TYPE_UINT64: return "uint64";
	case PROTOBUF_C_TYPE_FIXED64: return "fixed64";
	case PROTOBUF_C_TYPE_FLOAT: return "float";
	case PROTOBUF_C_TYPE_DOUBLE: return "double";
	default: return "enum";
	}
}

/* Only the JSON number shapes (plus a leading '+'): strtod alone would also
 * take "inf", "nan", hex and leading blanks. */
static bool number_syntax(const char *s)
{
	bool digits = false;

	if (*s == '-' || *s == '+')
		s++;
	while (isdigit((unsigned char)*s)) {
		s++;
		digits = true;
	}
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s)) {
			s++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

enum { NUM_OK = 0, NUM_SYNTAX = -1, NUM_RANGE = -2 };

/* An integer from "123", "-5", or an integral float form such as "1e3",
 * as the proto3 JSON mapping allows; bounds are [lo, hi] for signed types,
 * [0, uhi] when is_unsigned. */
static int parse_integer(const char *s, bool is_unsigned, int64_t lo, int64_t hi, uint64_t uhi,
			 union pbval *v)
{
	const char *p = s + (*s == '-');
	bool plain = *p != '\0';
	char *end;

	for (const char *q = p; *q; q++)
		if (!isdigit((unsigned char)*q))
			plain = false;
	if (plain) {
		errno = 0;
		if (is_unsigned) {
			unsigned long long u;
			if (*s == '-') {
				/* "-0" is zero; anything else is below 0 */
				for (const char *q = p; *q; q++)
					if (*q != '0')
						return NUM_RANGE;
				v->u64 = 0;
				return NUM_OK;
			}
			u = strtoull(s, &end, 10);
			if (errno == ERANGE || u > uhi)
				return NUM_RANGE;
			v->u64 = u;
		} else {
			long long i = strtoll(s, &end, 10);
			if (errno == ERANGE || i < lo || i > hi)
				return NUM_RANGE;
			v->i64 = i;
		}
		return NUM_OK;
	}
	if (!number_syntax(s))
		return NUM_SYNTAX;
	double d = strtod(s, &end);
	if (d != floor(d) || !isfinite(d))
		return isfinite(d) ? NUM_SYNTAX : NUM_RANGE;
	if (is_unsigned) {
		/* 2^64 is exactly representable; anything >= it is out */
		if (d < 0 || d >= 18446744073709551616.0 || (uint64_t)d > uhi)
			return NUM_RANGE;
		v->u64 = (uint64_t)d;
	} else {
		if (d < -9223372036854775808.0 || d >= 9223372036854775808.0 || (int64_t)d < lo ||
		    (int64_t)d > hi)
			return NUM_RANGE;
		v->i64 = (int64_t)d;
	}
	return NUM_OK;
}

static int dec_int(struct dctx *c, ProtobufCType t, struct fy_node *n, union pbval *v)
{
	char buf[128];
	union pbval tmp = {0};
	int r;

	if (node_kind(n) != NK_SCALAR)
		return fail_type(c, n, "an integer");
	if (!scalar_cstr(n, buf, sizeof(buf)))
		return fail_type(c, n, "an integer");
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		r = parse_integer(buf, false, INT32_MIN, INT32_MAX, 0, &tmp);
		v->i32 = (int32_t)tmp.i64;
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		r = parse_integer(buf, true, 0, 0, UINT32_MAX, &tmp);
		v->u32 = (uint32_t)tmp.u64;
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		r = parse_integer(buf, true, 0, 0, UINT64_MAX, &tmp);
		v->u64 = tmp.u64;
		break;
	default:
		r = parse_integer(buf, false, INT64_MIN, INT64_MAX, 0, &tmp);
		v->i64 = tmp.i64;
		break;
	}
	if (r == NUM_RANGE)
		return fail(c, n, "%s out of range for %s", buf, int_type_name(t));
	if (r != NUM_OK)
		return fail_type(c, n, "an integer");
	return 0;
}

static int dec_float(struct dctx *c, ProtobufCType t, struct fy_node *n, union pbval *v)
{
	char buf[128];
	const char *s = buf;
	double d;
	bool neg;

	if (node_kind(n) != NK_SCALAR || !scalar_cstr(n, buf, sizeof(buf)))
		return fail_type(c, n, "a number");
	neg = *s == '-';
	if (*s == '-' || *s == '+')
		s++;
	/* JSON's spellings first, then YAML's */
	if (!strcmp(buf, "NaN") || !strcmp(buf, ".nan") || !strcmp(buf, ".NaN") ||
	    !strcmp(buf, ".NAN")) {
		d = NAN;
	} else if (!strcmp(buf, "Infinity") || !strcmp(buf, "-Infinity") || !strcmp(s, ".inf") ||
		   !strcmp(s, ".Inf") || !strcmp(s, ".INF")) {
		d = neg ? -INFINITY : INFINITY;
	} else if (number_syntax(buf)) {
		if (t == PROTOBUF_C_TYPE_FLOAT) {
			/* strtof directly: no double rounding */
			float f = strtof(buf, NULL);
			if (isinf(f))
				return fail(c, n, "%s out of range for float", buf);
			v->f = f;
			return 0;
		}
		d = strtod(buf, NULL);
		if (isinf(d))
			return fail(c, n, "%s out of range for double", buf);
	} else {
		return fail_type(c, n, "a number");
	}
	if (t == PROTOBUF_C_TYPE_FLOAT)
		v->f = (float)d;
	else
		v->d = d;
	return 0;
}

static int dec_bool(struct dctx *c, struct fy_node *n, union pbval *v)
{
	size_t len;
	const char *s;

	if (node_kind(n) == NK_SCALAR) {
		s = scalar_text(n, &len);
		if (text_is(s, len, "true") || text_is(s, len, "True") || text_is(s, len, "TRUE")) {
			v->b = 1;
			return 0;
		}
		if (text_is(s, len, "false") || text_is(s, len, "False") ||
		    text_is(s, len, "FALSE")) {
			v->b = 0;
			return 0;
		}
	}
	return fail_type(c, n, "true or false");
}

static int dec_enum(struct dctx *c, const ProtobufCEnumDescriptor *ed, struct fy_node *n,
		    union pbval *v)
{
	const ProtobufCEnumValue *ev;
	struct suggest sg = {0};
	char name[128], hint[160];
	union pbval num;

	if (node_kind(n) != NK_SCALAR)
		return fail_type(c, n, "an enum name");
	if (!scalar_cstr(n, name, sizeof(name)))
		return fail(c, n, "enum value too long (%s)", ed->name);
	ev = protobuf_c_enum_descriptor_get_value_by_name(ed, name);
	if (ev) {
		v->i32 = ev->value;
		return 0;
	}
	/* proto3 enums are open: any int32 is a value */
	switch (parse_integer(name, false, INT32_MIN, INT32_MAX, 0, &num)) {
	case NUM_OK: v->i32 = (int32_t)num.i64; return 0;
	case NUM_RANGE: return fail(c, n, "%s out of range for enum %s", name, ed->name);
	default: break;
	}
	sg.key = name;
	sg.klen = strlen(name);
	sg.score = SIZE_MAX;
	for (unsigned i = 0; i < ed->n_values; i++)
		suggest_try(&sg, ed->values[i].name);
	suggest_fmt(&sg, hint, sizeof(hint));
	return fail(c, n, "unknown enum value \"%s\" (%s)%s", name, ed->name, hint);
}

static int dec_string(struct dctx *c, struct fy_node *n, union pbval *v)
{
	size_t len;
	const char *s;

	if (!n || fy_node_get_type(n) != FYNT_SCALAR)
		return fail_type(c, n, "a string");
	s = scalar_text(n, &len);
	if (memchr(s, '\0', len))
		return fail(c, n, "string contains a NUL character");
	if (!k_pbjson_utf8_valid((const unsigned char *)s, len))
		return fail(c, n, "string is not valid UTF-8");
	v->s = malloc(len + 1);
	if (!v->s)
		return oom(c);
	memcpy(v->s, s, len);
	v->s[len] = '\0';
	return 0;
}

static int dec_bytes(struct dctx *c, struct fy_node *n, union pbval *v)
{
	size_t len;
	const char *s;
	int rc;

	if (node_kind(n) != NK_SCALAR)
		return fail_type(c, n, "base64 bytes");
	s = scalar_text(n, &len);
	rc = k_pbjson_base64_decode(s, len, &v->bd.data, &v->bd.len);
	if (rc == K_ENOMEM)
		return oom(c);
	return rc ? fail_type(c, n, "base64 bytes") : 0;
}

/* ---- well-known types ---- */

static int dec_duration(struct dctx *c, struct fy_node *n, Google__Protobuf__Duration *dur)
{
	char buf[64], d[80];
	int rc = K_EINVAL;

	if (node_kind(n) == NK_SCALAR && scalar_cstr(n, buf, sizeof(buf)))
		rc = k_pbjson_parse_duration(buf, &dur->seconds, &dur->nanos);
	if (rc == K_ELIMIT)
		return fail(c, n, "duration \"%s\" out of range", buf);
	if (rc)
		return fail(c, n,
			    "invalid duration %s (expected e.g. \"5s\", "
			    "\"0.25s\")",
			    node_desc(n, d, sizeof(d)));
	return 0;
}

static int dec_timestamp(struct dctx *c, struct fy_node *n, Google__Protobuf__Timestamp *ts)
{
	char buf[64], d[80];
	int rc = K_EINVAL;

	if (node_kind(n) == NK_SCALAR && scalar_cstr(n, buf, sizeof(buf)))
		rc = k_pbjson_parse_timestamp(buf, &ts->seconds, &ts->nanos);
	if (rc == K_ELIMIT)
		return fail(c, n, "timestamp \"%s\" out of range", buf);
	if (rc)
		return fail(c, n,
			    "invalid timestamp %s (expected RFC 3339, e.g. "
			    "\"2024-01-31T12:00:00Z\")",
			    node_desc(n, d, sizeof(d)));
	return 0;
}

static int dec_message(struct dctx *c, const ProtobufCMessageDescriptor *d, struct fy_node *n,
		       ProtobufCMessage **out);
static int dec_fields(struct dctx *c, ProtobufCMessage *msg, struct fy_node *n, bool in_any);
static int dec_map(struct dctx *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd,
		   struct fy_node *n);
static int dec_repeated(struct dctx *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd,
			struct fy_node *n);

/* google.protobuf.Value: YAML's reading of a plain scalar decides its kind
 * (so `port: 80` is a number, `on: true` a bool); quoted text is a string. */
static int dec_struct_value(struct dctx *c, struct fy_node *n, Google__Protobuf__Value *v)
{
	ProtobufCMessage *sub = NULL;
	union pbval tmp = {0};
	char buf[128];
	size_t len;
	const char *s;
	int rc;

	switch (node_kind(n)) {
	case NK_NULL:
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
		v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
		return 0;
	case NK_MAP:
		rc = dec_message(c, &google__protobuf__struct__descriptor, n, &sub);
		if (rc)
			return rc;
		v->struct_value = (Google__Protobuf__Struct *)sub;
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
		return 0;
	case NK_SEQ:
		rc = dec_message(c, &google__protobuf__list_value__descriptor, n, &sub);
		if (rc)
			return rc;
		v->list_value = (Google__Protobuf__ListValue *)sub;
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
		return 0;
	default: break;
	}
	s = scalar_text(n, &len);
	if (!is_quoted(n)) {
		if (text_is(s, len, "true") || text_is(s, len, "True") || text_is(s, len, "TRUE") ||
		    text_is(s, len, "false") || text_is(s, len, "False") ||
		    text_is(s, len, "FALSE")) {
			v->bool_value = s[0] == 't' || s[0] == 'T';
			v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
			return 0;
		}
		if (scalar_cstr(n, buf, sizeof(buf)) && number_syntax(buf)) {
			double d = strtod(buf, NULL);
			if (!isfinite(d))
				return fail(c, n, "%s out of range for double", buf);
			v->number_value = d;
			v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
			return 0;
		}
	}
	rc = dec_string(c, n, &tmp);
	if (rc)
		return rc;
	v->string_value = tmp.s;
	v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	return 0;
}

static bool any_uses_value_key(const ProtobufCMessageDescriptor *d)
{
	return k_pbjson_wkt_of(d) != K_WKT_NONE;
}

static int dec_any(struct dctx *c, struct fy_node *n, Google__Protobuf__Any *any)
{
	struct fy_node *tnode = NULL, *vnode = NULL;
	const ProtobufCMessageDescriptor *td;
	ProtobufCMessage *inner = NULL;
	struct fy_node_pair *p;
	char url[512];
	void *it = NULL;
	size_t sz, klen;
	int rc;

	if (node_kind(n) != NK_MAP)
		return fail_type(c, n, "a mapping with \"@type\"");
	while ((p = fy_node_mapping_iterate(n, &it))) {
		const char *k = scalar_text(fy_node_pair_key(p), &klen);
		if (text_is(k, klen, "@type"))
			tnode = fy_node_pair_value(p);
	}
	if (!tnode) {
		if (fy_node_mapping_is_empty(n))
			return 0;
		return fail(c, n, "missing \"@type\" in a google.protobuf.Any");
	}
	if (node_kind(tnode) != NK_SCALAR || !scalar_cstr(tnode, url, sizeof(url)))
		return fail_type(c, tnode, "a type URL for \"@type\"");
	td = k_pb_registry_find(url);
	if (!td)
		return fail(c, tnode, "@type \"%s\" is not a known type", url);

	if (any_uses_value_key(td)) {
		/* its JSON form is not an object of fields, so it sits under
		 * "value" beside "@type" */
		it = NULL;
		while ((p = fy_node_mapping_iterate(n, &it))) {
			struct fy_node *kn = fy_node_pair_key(p);
			const char *k = scalar_text(kn, &klen);
			if (text_is(k, klen, "value")) {
				vnode = fy_node_pair_value(p);
			} else if (!text_is(k, klen, "@type")) {
				size_t old = path_push_name(c, k, klen);
				rc = fail(c, kn,
					  "unknown field (an Any holding %s has "
					  "only \"@type\" and \"value\")",
					  td->name);
				path_pop(c, old);
				return rc;
			}
		}
		size_t old = path_push(c, "%svalue", c->plen ? "." : "");
		rc = dec_message(c, td, vnode, &inner);
		path_pop(c, old);
	} else {
		inner = msg_new(td);
		if (!inner)
			return oom(c);
		if (++c->depth > MAX_DEPTH)
			rc = fail(c, n, "nesting too deep");
		else
			rc = dec_fields(c, inner, n, true);
		c->depth--;
	}
	if (rc)
		goto out;
	sz = protobuf_c_message_get_packed_size(inner);
	any->value.data = malloc(sz ? sz : 1);
	any->type_url = malloc(strlen(TYPE_URL_PREFIX) + strlen(td->name) + 1);
	if (!any->value.data || !any->type_url) {
		rc = oom(c);
		goto out; /* the caller frees the Any and so both buffers */
	}
	any->value.len = protobuf_c_message_pack(inner, any->value.data);
	strcpy(any->type_url, TYPE_URL_PREFIX);
	strcat(any->type_url, td->name);
out:
	if (inner)
		protobuf_c_message_free_unpacked(inner, NULL);
	return rc;
}

/* ---- messages, lists and maps ---- */

/* Decode one element of fd's type (a singular value, a list item, a map
 * value) into v. On failure v holds nothing to free. */
static int dec_single(struct dctx *c, const ProtobufCFieldDescriptor *fd, struct fy_node *n,
		      union pbval *v)
{
	memset(v, 0, sizeof(*v));
	switch (fd->type) {
	case PROTOBUF_C_TYPE_MESSAGE: return dec_message(c, fd->descriptor, n, &v->m);
	case PROTOBUF_C_TYPE_STRING: return dec_string(c, n, v);
	case PROTOBUF_C_TYPE_BYTES: return dec_bytes(c, n, v);
	case PROTOBUF_C_TYPE_BOOL: return dec_bool(c, n, v);
	case PROTOBUF_C_TYPE_ENUM: return dec_enum(c, fd->descriptor, n, v);
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: return dec_float(c, fd->type, n, v);
	default: return dec_int(c, fd->type, n, v);
	}
}

static bool is_value_type(const ProtobufCFieldDescriptor *fd)
{
	return fd->type == PROTOBUF_C_TYPE_MESSAGE &&
	       k_pbjson_wkt_of(fd->descriptor) == K_WKT_VALUE;
}

/* null leaves a field at its default, except that a singular
 * google.protobuf.Value field holds an explicit null. */
static bool null_ignored(const ProtobufCFieldDescriptor *fd, struct fy_node *n)
{
	return node_kind(n) == NK_NULL &&
	       (fd->label == PROTOBUF_C_LABEL_REPEATED || !is_value_type(fd));
}

/* A field's JSON value, decoded and stored. */
static int dec_field(struct dctx *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd,
		     struct fy_node *n)
{
	union pbval v;
	int rc;

	if (null_ignored(fd, n))
		return 0;
	if (fd->label == PROTOBUF_C_LABEL_REPEATED)
		return k_pbjson_is_map(fd) ? dec_map(c, msg, fd, n) : dec_repeated(c, msg, fd, n);
	rc = dec_single(c, fd, n, &v);
	if (rc)
		return rc;
	store(msg, fd, &v);
	return 0;
}

static int dec_repeated(struct dctx *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd,
			struct fy_node *n)
{
	size_t esz = elem_size(fd->type), count, *np;
	struct fy_node *item;
	void *it = NULL;
	char *arr;
	int saved_line = c->line, rc = 0;

	if (node_kind(n) != NK_SEQ)
		return fail_type(c, n, "a list");
	count = (size_t)fy_node_sequence_item_count(n);
	if (count == 0)
		return 0;
	arr = calloc(count, esz);
	if (!arr)
		return oom(c);
	np = (size_t *)((char *)msg + fd->quantifier_offset);
	*(void **)((char *)msg + fd->offset) = arr;
	*np = 0;
	while (!rc && *np < count && (item = fy_node_sequence_iterate(n, &it))) {
		size_t old = path_push(c, "[%zu]", *np);
		union pbval v;

		c->line = node_line(c, item);
		if (node_kind(item) == NK_NULL && !is_value_type(fd)) {
			rc = fail(c, item, "null is not allowed in a list");
		} else {
			rc = dec_single(c, fd, item, &v);
			if (!rc) {
				memcpy(arr + *np * esz, &v, esz);
				(*np)++;
			}
		}
		path_pop(c, old);
	}
	c->line = saved_line;
	return rc;
}

static int dec_map(struct dctx *c, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *fd,
		   struct fy_node *n)
{
	const ProtobufCMessageDescriptor *ed = fd->descriptor;
	const ProtobufCFieldDescriptor *kf = &ed->fields[0];
	const ProtobufCFieldDescriptor *vf = &ed->fields[1];
	bool dotted = k_pbjson_wkt_of(msg->descriptor) == K_WKT_STRUCT;
	ProtobufCMessage **arr;
	struct fy_node_pair *p;
	void *it = NULL;
	size_t count, *np;
	int saved_line = c->line, rc = 0;

	if (node_kind(n) != NK_MAP)
		return fail_type(c, n, "a mapping");
	count = (size_t)fy_node_mapping_item_count(n);
	if (count == 0)
		return 0;
	arr = calloc(count, sizeof(*arr));
	if (!arr)
		return oom(c);
	np = (size_t *)((char *)msg + fd->quantifier_offset);
	*(void **)((char *)msg + fd->offset) = arr;
	*np = 0;
	while (!rc && *np < count && (p = fy_node_mapping_iterate(n, &it))) {
		struct fy_node *kn = fy_node_pair_key(p);
		ProtobufCMessage *entry;
		size_t klen, old;
		const char *k = scalar_text(kn, &klen);
		union pbval kv;
		char tmp[129];

		c->line = node_line(c, kn);
		/* a Struct's keys read like fields, other maps' like keys */
		old = dotted ? path_push_name(c, k, klen)
			     : path_push(c, "[\"%s\"]", printable(k, klen, tmp, sizeof(tmp)));
		if (!kn || fy_node_get_type(kn) != FYNT_SCALAR) {
			rc = fail_type(c, kn ? kn : n, "a scalar map key");
			path_pop(c, old);
			break;
		}
		entry = msg_new(ed);
		if (!entry) {
			rc = oom(c);
			path_pop(c, old);
			break;
		}
		arr[(*np)++] = entry;
		rc = dec_single(c, kf, kn, &kv);
		if (!rc) {
			store(entry, kf, &kv);
			rc = dec_field(c, entry, vf, fy_node_pair_value(p));
		}
		path_pop(c, old);
	}
	c->line = saved_line;
	return rc;
}

static int fail_unknown(struct dctx *c, const ProtobufCMessageDescriptor *d, struct fy_node *kn,
			const char *k, size_t klen)
{
	struct suggest sg = {.key = k, .klen = klen, .score = SIZE_MAX};
	char hint[160], tmp[129];

	for (unsigned i = 0; i < d->n_fields; i++)
		suggest_try(&sg, d->fields[i].name);
	suggest_fmt(&sg, hint, sizeof(hint));
	return fail(c, kn, "unknown field (%s has no field \"%s\")%s", d->name,
		    printable(k, klen, tmp, sizeof(tmp)), hint);
}

/* The fields of msg from mapping n. in_any: n is an Any's object, whose
 * "@type" key is not a field. */
static int dec_fields(struct dctx *c, ProtobufCMessage *msg, struct fy_node *n, bool in_any)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	struct fy_node **seen;
	struct fy_node_pair *p;
	void *it = NULL;
	int saved_line = c->line, rc = 0;

	if (node_kind(n) != NK_MAP)
		return fail_type(c, n, "a mapping");
	seen = calloc(d->n_fields + 1, sizeof(*seen));
	if (!seen)
		return oom(c);
	while (!rc && (p = fy_node_mapping_iterate(n, &it))) {
		struct fy_node *kn = fy_node_pair_key(p);
		struct fy_node *vn = fy_node_pair_value(p);
		const ProtobufCFieldDescriptor *fd;
		const char *k;
		size_t klen, old;
		char tmp[129];

		c->line = node_line(c, kn);
		if (!kn || node_kind(kn) != NK_SCALAR) {
			rc = fail_type(c, kn ? kn : n, "a field name");
			break;
		}
		k = scalar_text(kn, &klen);
		if (in_any && text_is(k, klen, "@type"))
			continue;
		old = path_push_name(c, k, klen);
		fd = find_field(d, k, klen);
		if (!fd) {
			rc = fail_unknown(c, d, kn, k, klen);
		} else if (seen[fd - d->fields]) {
			size_t plen;
			const char *prev = scalar_text(seen[fd - d->fields], &plen);
			rc = fail(c, kn, "field set twice (also as \"%s\")",
				  printable(prev, plen, tmp, sizeof(tmp)));
		} else {
			uint32_t cs = 0;
			seen[fd - d->fields] = kn;
			if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !null_ignored(fd, vn))
				cs = *(uint32_t *)((char *)msg + fd->quantifier_offset);
			if (cs && cs != fd->id) {
				const ProtobufCFieldDescriptor *o =
					protobuf_c_message_descriptor_get_field(d, cs);
				rc = fail(c, kn, "two members of a oneof set: %s, %s",
					  o ? o->name : "?", fd->name);
			} else {
				rc = dec_field(c, msg, fd, vn);
			}
		}
		path_pop(c, old);
	}
	for (unsigned i = 0; !rc && i < d->n_fields; i++)
		if (d->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && !seen[i])
			rc = fail(c, n, "missing required field \"%s\"", d->fields[i].name);
	free(seen);
	c->line = saved_line;
	return rc;
}

static int dec_message(struct dctx *c, const ProtobufCMessageDescriptor *d, struct fy_node *n,
		       ProtobufCMessage **out)
{
	enum k_pbjson_wkt w = k_pbjson_wkt_of(d);
	ProtobufCMessage *msg;
	int rc = 0;

	*out = NULL;
	msg = msg_new(d);
	if (!msg)
		return oom(c);
	if (++c->depth > MAX_DEPTH) {
		rc = fail(c, n, "nesting too deep");
		goto out;
	}
	/* null (an Any's missing "value", a map's null value) is the default
	 * message, except that a Value records the null */
	if (node_kind(n) == NK_NULL && w != K_WKT_VALUE)
		goto out;
	switch (w) {
	case K_WKT_DURATION: rc = dec_duration(c, n, (Google__Protobuf__Duration *)msg); break;
	case K_WKT_TIMESTAMP: rc = dec_timestamp(c, n, (Google__Protobuf__Timestamp *)msg); break;
	case K_WKT_WRAPPER: rc = dec_field(c, msg, &d->fields[0], n); break;
	case K_WKT_STRUCT: rc = dec_map(c, msg, &d->fields[0], n); break;
	case K_WKT_LIST: rc = dec_repeated(c, msg, &d->fields[0], n); break;
	case K_WKT_VALUE: rc = dec_struct_value(c, n, (Google__Protobuf__Value *)msg); break;
	case K_WKT_ANY: rc = dec_any(c, n, (Google__Protobuf__Any *)msg); break;
	default: rc = dec_fields(c, msg, n, false); break;
	}
out:
	c->depth--;
	if (rc) {
		protobuf_c_message_free_unpacked(msg, NULL);
		return rc;
	}
	*out = msg;
	return 0;
}

/* ---- documents ---- */

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
	/* errors are collected and reported through err instead */
}

/* libfyaml's first error as "source:line: YAML syntax error: ..."; false if
 * there is none. Errors are collected rather than printed: besides keeping
 * stderr clean, printing draws the offending source excerpt, which crashes
 * libfyaml 0.7.12 on some long lines. */
static bool yaml_error(struct dctx *c, struct fy_diag *diag)
{
	struct fy_diag_error *e;
	void *it = NULL;

	while ((e = fy_diag_errors_iterate(diag, &it))) {
		if (e->type < FYET_ERROR)
			continue;
		c->rc = K_EINVAL;
		if (c->errlen)
			snprintf(c->err, c->errlen, "%s:%d: YAML syntax error: %s", c->source,
				 e->line > 0 ? e->line : 1,
				 e->msg && e->msg[0] ? e->msg : "malformed input");
		return true;
	}
	return false;
}

/* Count nodes with aliases expanded, stopping once past the cap, so a
 * document can be refused before resolving it materialises the copies.
 * Fails (with the reason in c) on too many nodes or an unsupported alias. */
struct expand {
	struct dctx *c;
	size_t budget;
	bool aliases;
};

static int check_expansion(struct expand *x, struct fy_node *n, int depth)
{
	struct fy_node_pair *p;
	struct fy_node *item;
	void *it = NULL;
	int rc = 0;

	if (!n)
		return 0;
	if (depth > MAX_DEPTH || (x->budget == 0 && x->aliases))
		return fail(x->c, NULL,
			    "document too large or deep once its "
			    "aliases are expanded");
	if (x->budget)
		x->budget--;
	if (fy_node_is_alias(n)) {
		size_t len;
		const char *name = fy_node_get_scalar(n, &len);
		/* libfyaml reads "*a/b" as a path below anchor a, parsing it
		 * with a diagnostic that writes to stderr; plain names only */
		if (name && memchr(name, '/', len))
			return fail(x->c, n,
				    "alias \"*%.*s\": alias paths are "
				    "not supported",
				    (int)K_MIN(len, 64), name);
		x->aliases = true;
		return check_expansion(x, fy_node_resolve_alias(n), depth + 1);
	}
	switch (fy_node_get_type(n)) {
	case FYNT_MAPPING:
		while (!rc && (p = fy_node_mapping_iterate(n, &it))) {
			rc = check_expansion(x, fy_node_pair_key(p), depth + 1);
			if (!rc)
				rc = check_expansion(x, fy_node_pair_value(p), depth + 1);
		}
		return rc;
	case FYNT_SEQUENCE:
		while (!rc && (item = fy_node_sequence_iterate(n, &it)))
			rc = check_expansion(x, item, depth + 1);
		return rc;
	default: return 0;
	}
}

static int parse_and_decode(struct dctx *c, struct fy_parser *fyp, const char *text, size_t len,
			    struct fy_diag *diag, const ProtobufCMessageDescriptor *desc,
			    ProtobufCMessage **out)
{
	struct fy_document *fyd, *extra;
	struct fy_node *root;
	struct expand x = {.c = c, .budget = MAX_EXPANDED_NODES};
	int rc;

	fyd = fy_parse_load_document(fyp);
	if (!fyd) {
		if (yaml_error(c, diag))
			return c->rc;
		return fail(c, NULL, "empty document");
	}
	extra = fy_parse_load_document(fyp);
	if (extra) {
		rc = fail(c, fy_document_root(extra),
			  "more than one document (expected exactly one)");
		fy_parse_document_destroy(fyp, extra);
		goto out;
	}
	if (yaml_error(c, diag)) {
		rc = c->rc;
		goto out;
	}
	root = fy_document_root(fyd);
	rc = check_expansion(&x, root, 0);
	if (rc)
		goto out;
	/* also when there are no aliases: "<<" may merge an inline mapping */
	if (fy_document_resolve(fyd)) {
		if (!yaml_error(c, diag))
			fail(c, NULL, "YAML syntax error: cannot resolve aliases");
		rc = c->rc;
		goto out;
	}
	root = fy_document_root(fyd);
	if (fy_document_register_meta(fyd, k_pbjson_qtext_free, NULL)) {
		rc = oom(c);
		goto out;
	}
	rc = k_pbjson_prepare_scalars(root, text, len);
	if (rc == K_ENOMEM) {
		rc = oom(c);
		goto out;
	} else if (rc) {
		rc = fail(c, root, "YAML syntax error: unreadable scalar");
		goto out;
	}
	if (node_kind(root) == NK_NULL) {
		rc = fail(c, root, "empty document");
		goto out;
	}
	rc = dec_message(c, desc, root, out);
out:
	fy_parse_document_destroy(fyp, fyd);
	return rc;
}

int k_pbjson_decode(const char *text, size_t len, const char *source,
		    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, char *err,
		    size_t errlen)
{
	struct dctx c = {
		.source = source ? source : "<input>",
		.err = err,
		.errlen = errlen,
		.line = 1,
	};
	struct fy_parse_cfg pcfg = {0};
	struct fy_diag_cfg dcfg;
	char *copy = NULL;
	uint32_t cp;
	size_t bad;
	struct fy_diag *diag;
	struct fy_parser *fyp;
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = diag_discard;
	dcfg.colorize = false;
	diag = fy_diag_create(&dcfg);
	if (!diag)
		return oom(&c);
	fy_diag_set_collect_errors(diag, true);
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_AUTO;
	pcfg.diag = diag;
	fyp = fy_parser_create(&pcfg);
	if (!fyp) {
		fy_diag_destroy(diag);
		return oom(&c);
	}
	if (len == 0) {
		/* libfyaml wants a non-empty input */
		rc = fail(&c, NULL, "empty document");
	} else if ((bad = k_pbjson_utf8_invalid_at((const unsigned char *)text, len)) < len) {
		/* YAML and JSON are UTF-8 here; and libfyaml 0.7.12 can spin
		 * forever on some invalid sequences, so they never reach it */
		c.line = k_pbjson_line_at(text, bad);
		rc = fail(&c, NULL, "invalid UTF-8 (byte 0x%02x at offset %zu)",
			  (unsigned char)text[bad], bad);
	} else if ((bad = k_pbjson_nonprintable_at((const unsigned char *)text, len, &cp)) < len) {
		c.line = k_pbjson_line_at(text, bad);
		rc = fail(&c, NULL, "character U+%04X (offset %zu) is not allowed in YAML", cp,
			  bad);
	} else if (memchr(text, '\r', len) && !(text = copy = k_pbjson_lf_only(text, &len))) {
		rc = oom(&c);
	} else if ((bad = k_pbjson_tab_indent_at(text, len)) < len) {
		c.line = k_pbjson_line_at(text, bad);
		rc = fail(&c, NULL, "YAML syntax error: tab in indentation (use spaces)");
	} else if (fy_parser_set_string(fyp, text, len)) {
		rc = oom(&c);
	} else {
		rc = parse_and_decode(&c, fyp, text, len, diag, desc, out);
	}
	fy_parser_destroy(fyp);
	free(copy);
	/* destroy, not unref: only destroy frees the collected errors */
	fy_diag_destroy(diag);
	if (rc && *out) {
		protobuf_c_message_free_unpacked(*out, NULL);
		*out = NULL;
	}
	return rc;
}

int k_pbjson_decode_file(const char *path, const ProtobufCMessageDescriptor *desc,
			 ProtobufCMessage **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		goto io_error;
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE_SIZE) {
		if (errlen)
			snprintf(err, errlen, "%s: %s", path,
				 S_ISREG(st.st_mode) ? "file too large" : "not a regular file");
		close(fd);
		return K_EIO;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		if (errlen)
			snprintf(err, errlen, "%s: out of memory", path);
		return K_ENOMEM;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto io_error;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	rc = k_pbjson_decode(buf, len, path, desc, out, err, errlen);
	free(buf);
	return rc;
io_error:
	if (errlen)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
	return K_EIO;
}

int k_pb_any_unpack(const char *type_url, const uint8_t *data, size_t len,
		    const ProtobufCMessageDescriptor *expect, ProtobufCMessage **out, char *err,
		    size_t errlen)
{
	const ProtobufCMessageDescriptor *d = k_pb_registry_find(type_url);

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!d) {
		if (errlen)
			snprintf(err, errlen, "unknown type URL \"%s\"", type_url);
		return K_ENOENT;
	}
	if (expect && d != expect) {
		if (errlen)
			snprintf(err, errlen, "type URL \"%s\": expected %s", type_url,
				 expect->name);
		return K_EINVAL;
	}
	*out = protobuf_c_message_unpack(d, NULL, len, data);
	if (!*out) {
		if (errlen)
			snprintf(err, errlen, "cannot decode %s from %zu bytes", d->name, len);
		return K_EINVAL;
	}
	return 0;
}
