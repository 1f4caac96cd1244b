#include "buf.h"

int kp_rbuf_get(struct kp_buf_pool *p, struct kp_rbuf *b)
{
	if (b->data)
		return 0;
	b->data = p->n_free ? p->free[--p->n_free] : malloc(KP_BUF_SIZE);
	if (!b->data)
		return K_ENOMEM;
	b->cap = KP_BUF_SIZE;
	b->start = b->end = 0;
	p->in_use++;
	return 0;
}

void kp_rbuf_release(struct kp_buf_pool *p, struct kp_rbuf *b)
{
	if (!b->data)
		return;
#ifdef K_POOL_NO_CACHE
	if (0) /* sanitizer builds: free at once so use-after-free is caught */
#else
	if (b->cap == KP_BUF_SIZE && p->n_free < KP_BUF_POOL_MAX)
#endif
		p->free[p->n_free++] = b->data;
	else
		free(b->data);
	p->in_use--;
	b->data = NULL;
	b->cap = b->start = b->end = 0;
}

void kp_rbuf_put_if_empty(struct kp_buf_pool *p, struct kp_rbuf *b)
{
	if (b->data && b->start == b->end)
		kp_rbuf_release(p, b);
}

int kp_rbuf_make_room(struct kp_buf_pool *p, struct kp_rbuf *b, uint32_t want)
{
	int rc = kp_rbuf_get(p, b);
	if (rc)
		return rc;
	if (b->start == b->end) {
		b->start = b->end = 0;
	} else if (b->start > 0 && b->end == b->cap) {
		memmove(b->data, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
	if (b->end == b->cap && want > b->cap) {
		uint32_t ncap = b->cap * 2 < want ? want : b->cap * 2;
		if (ncap > want)
			ncap = want;
		char *n = malloc(ncap);
		if (!n)
			return K_ENOMEM;
		memcpy(n, b->data + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
		uint32_t keep_end = b->end;
		kp_rbuf_release(p, b);
		p->in_use++;
		b->data = n;
		b->cap = ncap;
		b->end = keep_end;
	}
	return (int)(b->cap - b->end);
}

void kp_buf_pool_destroy(struct kp_buf_pool *p)
{
	while (p->n_free)
		free(p->free[--p->n_free]);
}
