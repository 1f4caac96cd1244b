/* k_arena.h — bump allocator for per-request memory.
 *
 * Everything a request allocates (rewritten headers, log fields, route
 * scratch) comes from its arena and is released at once when the request
 * ends. The first block lives inside the arena struct's owner (no malloc for
 * small requests); larger needs chain malloc'd blocks, bounded by `limit`. */
#ifndef K_ARENA_H
#define K_ARENA_H

#include <stddef.h>

struct k_arena_block;

struct k_arena {
	char *cur, *end;	     /* free space in the current block */
	struct k_arena_block *chain; /* malloc'd blocks, newest first */
	char *first;		     /* caller-provided first block */
	size_t first_size;
	size_t used_total; /* bytes handed out, for the limit */
	size_t limit;	   /* 0: unlimited */
};

/* Use buf[0..size) as the first block. limit bounds the total (0: none). */
void k_arena_init(struct k_arena *a, void *buf, size_t size, size_t limit);
/* 8-byte-aligned memory, or NULL if out of memory or over the limit. Valid
 * until k_arena_reset/k_arena_free. */
void *k_arena_alloc(struct k_arena *a, size_t n);
/* Copy of s[0..n) plus a NUL. NULL on failure. */
char *k_arena_strndup(struct k_arena *a, const char *s, size_t n);
/* Release everything; the first block is reused, chained blocks freed. */
void k_arena_reset(struct k_arena *a);
void k_arena_free(struct k_arena *a);

#endif
