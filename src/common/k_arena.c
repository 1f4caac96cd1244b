#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k_arena.h"

struct k_arena_block {
	struct k_arena_block *next;
	size_t size;
	char data[];
};

void k_arena_init(struct k_arena *a, void *buf, size_t size, size_t limit)
{
	a->first = buf;
	a->first_size = size;
	a->cur = buf;
	a->end = (char *)buf + size;
	a->chain = NULL;
	a->used_total = 0;
	a->limit = limit;
}

void *k_arena_alloc(struct k_arena *a, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	if (a->limit && a->used_total + n > a->limit)
		return NULL;
	uintptr_t p = ((uintptr_t)a->cur + 7) & ~(uintptr_t)7;
	if (a->cur && p + n <= (uintptr_t)a->end) {
		a->cur = (char *)(p + n);
		a->used_total += n;
		return (void *)p;
	}
	size_t bsize = n > 4096 ? n : 4096;
	struct k_arena_block *b = malloc(sizeof(*b) + bsize);
	if (!b)
		return NULL;
	b->size = bsize;
	b->next = a->chain;
	a->chain = b;
	a->cur = b->data + n;
	a->end = b->data + bsize;
	a->used_total += n;
	return b->data;
}

char *k_arena_strndup(struct k_arena *a, const char *s, size_t n)
{
	char *d = k_arena_alloc(a, n + 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

void k_arena_reset(struct k_arena *a)
{
	k_arena_free(a);
	a->cur = a->first;
	a->end = a->first ? a->first + a->first_size : NULL;
	a->used_total = 0;
}

void k_arena_free(struct k_arena *a)
{
	struct k_arena_block *b = a->chain;
	while (b) {
		struct k_arena_block *n = b->next;
		free(b);
		b = n;
	}
	a->chain = NULL;
}
