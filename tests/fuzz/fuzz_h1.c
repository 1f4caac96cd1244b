/* fuzz_h1.c — libFuzzer target for the HTTP/1 codec.
 *
 * The first input byte picks limits and request flags; the rest is parsed
 * as a request and as a response. Every result is checked against the
 * contract (spans inside the input, lengths in range, fields that pass
 * really are well formed), a head split at a point taken from the input
 * must parse exactly as the whole, and a body is decoded once whole and
 * once in pieces of input-derived sizes, which must agree. Any breach
 * aborts so the fuzzer records the input. */
#include "h1_codec.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define NHDR 128

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64: deterministic per input, so crashes reproduce */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static int in_span(struct k_str s, const char *b, size_t n)
{
	return (s.len == 0 && s.p >= b && s.p <= b + n) ||
	       (s.p >= b && s.len <= n && s.p + s.len <= b + n);
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void check_msg(const struct k_h1_msg *m, const char *b, size_t n, int rc, uint32_t max_hdrs,
		      int resp)
{
	CHECK((size_t)rc <= n && m->head_len == (uint32_t)rc);
	CHECK(m->nheaders <= max_hdrs);
	CHECK(m->host_idx >= -1 && m->host_idx < (int)m->nheaders);
	CHECK(m->minor == 0 || m->minor == 1);
	if (resp) {
		CHECK(m->status >= 100 && m->status <= 599);
		CHECK(in_span(m->reason, b, (size_t)rc));
	} else {
		CHECK(m->method.len > 0 && in_span(m->method, b, (size_t)rc));
		CHECK(m->target.len > 0 && in_span(m->target, b, (size_t)rc));
		CHECK(m->body != K_H1_BODY_CLOSE);
		for (size_t i = 0; i < m->method.len; i++)
			CHECK(k_h1_is_tchar((unsigned char)m->method.p[i]));
		for (size_t i = 0; i < m->target.len; i++)
			CHECK(m->target.p[i] > 0x20 && m->target.p[i] < 0x7f);
		if (m->minor == 1)
			CHECK(m->host_idx >= 0);
	}
	if (m->body == K_H1_BODY_LENGTH)
		CHECK(m->content_length > 0 && m->content_length <= UINT64_C(0x7fffffffffffffff));
	if (m->body == K_H1_BODY_CLOSE)
		CHECK(!m->keep_alive);
	for (uint32_t i = 0; i < m->nheaders; i++) {
		const struct k_h1_header *h = &m->headers[i];
		CHECK(h->name.len > 0 && in_span(h->name, b, (size_t)rc));
		CHECK(in_span(h->value, b, (size_t)rc));
		for (size_t j = 0; j < h->name.len; j++)
			CHECK(k_h1_is_tchar((unsigned char)h->name.p[j]));
		for (size_t j = 0; j < h->value.len; j++)
			CHECK(k_h1_is_field_char((unsigned char)h->value.p[j]));
		if (h->value.len)
			CHECK(!is_ows(h->value.p[0]) && !is_ows(h->value.p[h->value.len - 1]));
	}
}

static void check_err(int rc, const struct k_h1_error *e, size_t n, int resp)
{
	CHECK(rc == K_EINVAL || rc == K_ELIMIT || rc == K_ENOTSUP);
	CHECK(e->reason && e->reason[0]);
	CHECK(e->offset <= n || e->offset <= K_H1_DEFAULT_MAX_HEAD_BYTES);
	if (resp)
		CHECK(e->status == 502);
	else
		CHECK(e->status == 400 || e->status == 431 || e->status == 501 || e->status == 505);
}

/* Decodes b[0..n) in pieces whose sizes come from rng() (max 0: whole);
 * returns a digest of payload, end offset and final state. */
struct body_result {
	uint64_t hash;
	size_t payload;
	size_t end;
	int rc; /* 0 done, 1 wants more, <0 error */
	const char *reason;
};

static struct body_result decode(const struct k_h1_msg *m, const struct k_h1_limits *lim,
				 const char *b, size_t n, size_t maxpiece)
{
	struct k_h1_body_dec d;
	struct body_result r = {1469598103934665603u, 0, 0, 1, NULL};
	size_t pos = 0, avail = 0;
	struct k_h1_error e;

	k_h1_body_init(&d, m, lim);
	for (;;) {
		size_t add = maxpiece ? (size_t)(rng() % (maxpiece + 1)) : n;
		avail = avail + add > n ? n : avail + add;
		while (pos < avail && !d.done) {
			struct k_str s;
			int rc = k_h1_body_decode(&d, b + pos, avail - pos, &s, &e);
			if (rc < 0) {
				CHECK(rc == K_EINVAL || rc == K_ELIMIT);
				CHECK(e.reason && e.reason[0]);
				CHECK(d.failed);
				CHECK(e.offset < avail - pos);
				r.rc = rc;
				r.reason = e.reason;
				r.end = pos + e.offset; /* absolute fault offset */
				return r;
			}
			CHECK((size_t)rc <= avail - pos);
			CHECK(rc > 0); /* progress whenever bytes are offered */
			CHECK(s.len <= (size_t)rc);
			CHECK(s.p >= b + pos && s.p + s.len <= b + pos + rc);
			for (size_t i = 0; i < s.len; i++)
				r.hash = (r.hash ^ (unsigned char)s.p[i]) * 1099511628211u;
			r.payload += s.len;
			pos += (size_t)rc;
		}
		if (d.done) {
			struct k_str s;
			CHECK(k_h1_body_decode(&d, b + pos, n - pos, &s, &e) == 0);
			r.rc = 0;
			r.end = pos;
			return r;
		}
		if (avail == n) {
			CHECK(pos == n);
			r.end = pos;
			return r;
		}
	}
}

static void one(const char *b, size_t n, const struct k_h1_limits *lim, int resp, unsigned flags)
{
	static struct k_h1_header h[NHDR], h2[NHDR];
	struct k_h1_msg m, m2;
	struct k_h1_error e, e2;
	uint32_t cap = (uint32_t)(rng() % 3 == 0 ? 8 : NHDR);
	uint32_t max_hdrs = lim->max_headers ? lim->max_headers : K_H1_DEFAULT_MAX_HEADERS;
	int rc, rc2;
	size_t k;

	if (cap < max_hdrs)
		max_hdrs = cap;

#define PARSE(len, prev, mm, hh, ee)                                                               \
	(resp ? k_h1_parse_response(b, (len), (prev), lim, flags, (mm), (hh), cap, (ee))           \
	      : k_h1_parse_request(b, (len), (prev), lim, (mm), (hh), cap, (ee)))

	rc = PARSE(n, 0, &m, h, &e);
	if (rc > 0)
		check_msg(&m, b, n, rc, max_hdrs, resp);
	else if (rc != K_EAGAIN)
		check_err(rc, &e, n, resp);

	/* the same head split in two reads */
	k = n ? (size_t)(rng() % n) : 0;
	rc2 = PARSE(k, 0, &m2, h2, &e2);
	if (rc2 == K_EAGAIN) {
		rc2 = PARSE(n, k, &m2, h2, &e2);
		/* an incremental call may still wait where the whole buffer
		 * was already refused, never the other way round */
		if (rc2 == K_EAGAIN && rc < 0)
			return;
		CHECK(rc2 == rc);
		if (rc > 0)
			CHECK(m2.head_len == m.head_len && m2.nheaders == m.nheaders &&
			      m2.body == m.body && m2.content_length == m.content_length &&
			      m2.keep_alive == m.keep_alive);
		else if (rc < 0 && rc != K_EAGAIN)
			CHECK(e2.status == e.status && e2.reason == e.reason);
	} else if (rc2 > 0) {
		CHECK(rc == rc2); /* a complete prefix is the whole head */
	} else {
		CHECK(rc2 == rc && e2.status == e.status);
	}

	if (rc <= 0)
		return;
	if (!resp) {
		struct k_str tok = {b, (size_t)(rng() % 12)};
		(void)k_h1_connection_has(&m, tok);
	}
	{
		const char *body = b + rc;
		size_t blen = n - (size_t)rc;
		struct body_result whole = decode(&m, lim, body, blen, 0);
		struct body_result split = decode(&m, lim, body, blen, 1 + (size_t)(rng() % 17));
		struct body_result bytes = decode(&m, lim, body, blen, 1);
		CHECK(whole.rc == split.rc && whole.end == split.end && whole.hash == split.hash &&
		      whole.payload == split.payload && whole.reason == split.reason);
		CHECK(whole.rc == bytes.rc && whole.end == bytes.end && whole.hash == bytes.hash);
		if (m.body == K_H1_BODY_LENGTH && whole.rc == 0)
			CHECK(whole.payload == m.content_length);
	}
#undef PARSE
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct k_h1_limits lim = {0, 0};
	unsigned flags;
	const char *b;
	size_t n;

	if (size < 1)
		return 0;
	/* config byte: small limits make the limit paths reachable */
	if (data[0] & 1)
		lim.max_head_bytes = 64 + (data[0] >> 4) * 16;
	if (data[0] & 2)
		lim.max_headers = 1 + ((data[0] >> 4) & 7);
	flags = (data[0] >> 2) & 3;
	b = (const char *)data + 1;
	n = size - 1;

	rng_state = size;
	for (size_t i = 0; i < size && i < 64; i++)
		rng_state = rng_state * 31 + data[i];

	one(b, n, &lim, 0, 0);
	one(b, n, &lim, 1, flags);
	return 0;
}
