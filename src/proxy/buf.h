/* buf.h — per-worker pool of fixed-size I/O buffers and the read buffer
 * each connection direction owns.
 *
 * A connection holds a buffer only while it has bytes in flight: idle
 * keep-alive connections give theirs back, which is what keeps an idle
 * sidecar small. The pool keeps at most KP_BUF_POOL_MAX free buffers per
 * worker and returns the rest to malloc. A head larger than one buffer
 * grows the buffer (up to the head limit) with malloc; such buffers are
 * freed, not pooled. */
#ifndef KP_BUF_H
#define KP_BUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "k_common.h"

#define KP_BUF_SIZE	(16u * 1024u)
#define KP_BUF_POOL_MAX 64u

struct kp_buf_pool {
	void *free[KP_BUF_POOL_MAX];
	uint32_t n_free;
	uint64_t in_use; /* buffers handed out, for /memory and tests */
};

/* Bytes [start, end) of data are unconsumed input; [end, cap) is free. */
struct kp_rbuf {
	char *data;
	uint32_t cap, start, end;
};

static inline uint32_t kp_rbuf_len(const struct kp_rbuf *b)
{
	return b->end - b->start;
}

/* Ensure a buffer exists. K_ENOMEM on failure. */
int kp_rbuf_get(struct kp_buf_pool *p, struct kp_rbuf *b);
/* Return the buffer to the pool if it holds no unconsumed bytes. */
void kp_rbuf_put_if_empty(struct kp_buf_pool *p, struct kp_rbuf *b);
/* Release unconditionally (connection teardown). */
void kp_rbuf_release(struct kp_buf_pool *p, struct kp_rbuf *b);
/* Make room at the end: move unconsumed bytes to the front, and when that
 * is not enough and want > cap, grow to `want` (at most). Returns free
 * bytes at the end afterwards, or K_ENOMEM. */
int kp_rbuf_make_room(struct kp_buf_pool *p, struct kp_rbuf *b, uint32_t want);
void kp_buf_pool_destroy(struct kp_buf_pool *p);

#define KP_MAX_IOV	    24
#define KP_CHUNK_HEADER_MAX 20

/* One direction's queued write. It lives in the connection that owns the
 * socket, not in the stream: libuv may call back (with UV_ECANCELED) after
 * the stream is gone, but never after the connection's close callback.
 * The iovecs and chunk-size lines must outlive uv_write, hence here. */
struct kp_wq {
	uv_write_t req;
	uv_buf_t iov[KP_MAX_IOV];
	char chunk_hdr[KP_MAX_IOV / 2][KP_CHUNK_HEADER_MAX];
	unsigned busy : 1;
};

#endif
