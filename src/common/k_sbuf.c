#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k_sbuf.h"

void k_sbuf_reserve(struct k_sbuf *b, size_t more)
{
	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return;
	}
	b->p = p;
	b->cap = cap;
}

void k_sbuf_add(struct k_sbuf *b, const char *s, size_t n)
{
	k_sbuf_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void k_sbuf_adds(struct k_sbuf *b, const char *s)
{
	k_sbuf_add(b, s, strlen(s));
}

void k_sbuf_printf(struct k_sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	k_sbuf_reserve(b, (size_t)n);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void k_sbuf_json_str(struct k_sbuf *b, const char *s)
{
	k_sbuf_add(b, "\"", 1);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			char e[2] = {'\\', (char)ch};
			k_sbuf_add(b, e, 2);
		} else if (ch < 0x20) {
			k_sbuf_printf(b, "\\u%04x", ch);
		} else {
			k_sbuf_add(b, s, 1);
		}
	}
	k_sbuf_add(b, "\"", 1);
}

void k_sbuf_free(struct k_sbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}
