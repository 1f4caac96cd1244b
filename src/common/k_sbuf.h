/* k_sbuf.h — growable, NUL-terminated string builder for output that is
 * not on the hot path (admin pages, stats dumps, JSON).
 *
 * Allocation failure is sticky: after it every append is a no-op and
 * `oom` stays set, so a caller builds the whole text and checks once. */
#ifndef K_SBUF_H
#define K_SBUF_H

#include <stddef.h>

struct k_sbuf {
	char *p; /* malloc'd, NUL-terminated once anything was added */
	size_t len, cap;
	int oom;
};

/* Make room for `more` bytes plus the NUL. */
void k_sbuf_reserve(struct k_sbuf *b, size_t more);
void k_sbuf_add(struct k_sbuf *b, const char *s, size_t n);
void k_sbuf_adds(struct k_sbuf *b, const char *s);
void k_sbuf_printf(struct k_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (NULL: "") as a JSON string literal, quotes included; control bytes
 * as \u00XX, other bytes (UTF-8) as they are. */
void k_sbuf_json_str(struct k_sbuf *b, const char *s);
void k_sbuf_free(struct k_sbuf *b);

#endif
