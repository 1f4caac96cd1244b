/* k_pool.h — typed free-list for fixed-size objects (connections, streams).
 * Single-threaded: one pool per worker. Keeps at most max_free objects so an
 * idle process gives memory back. */
#ifndef K_POOL_H
#define K_POOL_H

#include <stdint.h>
#include <stdlib.h>

struct k_pool {
	size_t size;
	void *free;
	uint32_t n_free, max_free;
};

#define K_POOL_INIT(type, max)                                                                     \
	{                                                                                          \
		sizeof(type), NULL, 0, (max)                                                       \
	}

/* Uninitialised object of p->size bytes, or NULL. */
static inline void *k_pool_get(struct k_pool *p)
{
	void *o = p->free;
	if (o) {
		p->free = *(void **)o;
		p->n_free--;
		return o;
	}
	return malloc(p->size < sizeof(void *) ? sizeof(void *) : p->size);
}

static inline void k_pool_put(struct k_pool *p, void *o)
{
#ifdef K_POOL_NO_CACHE
	/* Sanitizer builds: free at once so use-after-free is caught. */
	free(o);
	return;
#endif
	if (p->n_free >= p->max_free) {
		free(o);
		return;
	}
	*(void **)o = p->free;
	p->free = o;
	p->n_free++;
}

static inline void k_pool_drain(struct k_pool *p)
{
	while (p->free) {
		void *n = *(void **)p->free;
		free(p->free);
		p->free = n;
	}
	p->n_free = 0;
}

#endif
