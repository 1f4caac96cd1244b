/* worker.c — worker threads: loop setup, listeners, commands from the main
 * thread, buffered access-log output. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

#include "hcm.h"
#include "k_log.h"
#include "server.h"
#include "upstream.h"
#include "worker.h"

#define LOG_BUF_CAP (64u * 1024u)

uint64_t kp_worker_rand(struct kp_worker *w)
{
	/* xorshift128+: fast, and request ids need uniqueness, not secrecy. */
	uint64_t s1 = w->rng[0];
	const uint64_t s0 = w->rng[1];
	w->rng[0] = s0;
	s1 ^= s1 << 23;
	w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return w->rng[1] + s0;
}

static void log_flush(struct kp_log_buf *b)
{
	uint32_t off = 0;
	while (off < b->len) {
		ssize_t n = write(b->fd, b->data + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* a broken log sink must not stop traffic */
		off += (uint32_t)n;
	}
	b->len = 0;
}

static void log_flush_all(struct kp_worker *w)
{
	for (int i = 0; i < 3; i++)
		if (w->logs[i].len)
			log_flush(&w->logs[i]);
	for (uint32_t i = 0; i < w->n_file_logs; i++)
		if (w->file_logs[i].len)
			log_flush(&w->file_logs[i]);
}

static struct kp_log_buf *log_file(struct kp_worker *w, const char *path)
{
	/* The path is interned in the config snapshot, so pointer identity
	 * finds the buffer; the few file sinks make a scan fine. */
	for (uint32_t i = 0; i < w->n_file_logs; i++)
		if (w->file_logs[i].data &&
		    strcmp((const char *)w->file_logs[i].data + LOG_BUF_CAP, path) == 0)
			return &w->file_logs[i];
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		k_warn("access log %s: %s", path, strerror(errno));
		return NULL;
	}
	struct kp_log_buf *n = realloc(w->file_logs, (w->n_file_logs + 1) * sizeof(*n));
	size_t plen = strlen(path) + 1;
	char *data = malloc(LOG_BUF_CAP + plen);
	if (!n || !data) {
		free(data);
		if (n)
			w->file_logs = n;
		close(fd);
		return NULL;
	}
	w->file_logs = n;
	memcpy(data + LOG_BUF_CAP, path, plen);
	n[w->n_file_logs] = (struct kp_log_buf){fd, data, 0, LOG_BUF_CAP};
	return &n[w->n_file_logs++];
}

void kp_worker_log(struct kp_worker *w, int sink, const char *path, const char *line, size_t len)
{
	struct kp_log_buf *b = sink == KP_LOG_FILE ? log_file(w, path) : &w->logs[sink];
	if (!b)
		return;
	if (!b->data) {
		b->data = malloc(LOG_BUF_CAP);
		b->cap = LOG_BUF_CAP;
		b->fd = sink == KP_LOG_STDERR ? STDERR_FILENO : STDOUT_FILENO;
		if (!b->data)
			return;
	}
	if (b->len + len > b->cap)
		log_flush(b);
	if (len > b->cap)
		len = b->cap;
	memcpy(b->data + b->len, line, len);
	b->len += (uint32_t)len;
}

void kp_worker_conn_gone(struct kp_worker *w)
{
	__atomic_sub_fetch(&w->n_conns, 1, __ATOMIC_RELAXED);
}

uint64_t kp_worker_active(const struct kp_worker *w)
{
	return __atomic_load_n(&w->n_conns, __ATOMIC_RELAXED);
}

const uint64_t *kp_worker_stats(const struct kp_worker *w)
{
	return w->stats;
}

static void prepare_cb(uv_prepare_t *p)
{
	struct kp_worker *w = p->data;
	w->iter++;
}

static void tick_cb(uv_timer_t *t)
{
	log_flush_all(t->data);
}

static void close_listeners(struct kp_worker *w)
{
	for (uint32_t i = 0; i < w->n_listens; i++)
		if (!uv_is_closing((uv_handle_t *)&w->listens[i].tcp))
			uv_close((uv_handle_t *)&w->listens[i].tcp, NULL);
}

static void async_cb(uv_async_t *a)
{
	struct kp_worker *w = a->data;
	int cmd = __atomic_exchange_n(&w->cmd, 0, __ATOMIC_ACQ_REL);
	if ((cmd & KP_CMD_DRAIN) && !w->draining) {
		w->draining = 1;
		close_listeners(w);
		kp_hcm_drain(w);
	}
	if ((cmd & KP_CMD_STOP) && !w->stopping) {
		w->stopping = 1;
		w->draining = 1;
		close_listeners(w);
		kp_hcm_close_all(w);
		for (uint32_t i = 0; i < w->cfg->n_clusters; i++)
			kp_cluster_rt_close(&w->clusters[i]);
		log_flush_all(w);
		uv_close((uv_handle_t *)&w->tick, NULL);
		uv_close((uv_handle_t *)&w->prepare, NULL);
		uv_close((uv_handle_t *)&w->async, NULL);
	}
}

static void worker_main(void *arg)
{
	struct kp_worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "worker-%u", w->id);
	k_log_set_thread_name(name);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	log_flush_all(w);
}

int kp_worker_start(struct kp_server *srv, uint32_t id, struct kp_config *cfg,
		    const int *listen_fds, struct kp_worker **out, char *err, size_t errlen)
{
	struct kp_worker *w = calloc(1, sizeof(*w));
	if (!w)
		goto nomem;
	w->id = id;
	w->srv = srv;
	w->cfg = kp_config_ref(cfg);
	w->stats = calloc(cfg->stats.n ? cfg->stats.n : 1, sizeof(uint64_t));
	w->clusters = calloc(cfg->n_clusters ? cfg->n_clusters : 1, sizeof(*w->clusters));
	w->listens = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*w->listens));
	w->hdr_scratch_cap = 1;
	for (uint32_t i = 0; i < cfg->n_listeners; i++)
		w->hdr_scratch_cap =
			K_MAX(w->hdr_scratch_cap, cfg->listeners[i].hcm.limits.max_headers);
	w->hdr_scratch = calloc(w->hdr_scratch_cap, sizeof(*w->hdr_scratch));
	if (!w->stats || !w->clusters || !w->listens || !w->hdr_scratch)
		goto nomem;
	w->dconn_pool = (struct k_pool)K_POOL_INIT(struct kp_dconn, 256);
	w->stream_pool = (struct k_pool)K_POOL_INIT(struct kp_stream, 256);
	w->uconn_pool = (struct k_pool)K_POOL_INIT(struct kp_uconn, 256);
	k_list_init(&w->conns);
	if (getrandom(w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || (!w->rng[0] && !w->rng[1]))
		w->rng[0] = 0x9e3779b97f4a7c15ull ^ (uint64_t)id, w->rng[1] = kp_now_ns() | 1;
	uv_loop_init(&w->loop);
	for (uint32_t i = 0; i < cfg->n_clusters; i++)
		if (kp_cluster_rt_init(&w->clusters[i], w, &cfg->clusters[i]))
			goto nomem;
	for (uint32_t i = 0; i < cfg->n_listeners; i++) {
		struct kp_listen *l = &w->listens[i];
		l->w = w;
		l->cfg = &cfg->listeners[i];
		l->index = i;
		uv_tcp_init(&w->loop, &l->tcp);
		l->tcp.data = l;
		w->n_listens++;
		int rc = uv_tcp_open(&l->tcp, listen_fds[i]);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&l->tcp, 4096, kp_hcm_on_accept);
		if (rc < 0) {
			snprintf(err, errlen, "listen %s: %s", l->cfg->addr_str, uv_strerror(rc));
			return K_EIO; /* process exits; no cleanup needed */
		}
	}
	uv_async_init(&w->loop, &w->async, async_cb);
	w->async.data = w;
	uv_prepare_init(&w->loop, &w->prepare);
	w->prepare.data = w;
	uv_prepare_start(&w->prepare, prepare_cb);
	uv_timer_init(&w->loop, &w->tick);
	w->tick.data = w;
	uv_timer_start(&w->tick, tick_cb, 1000, 1000);
	if (uv_thread_create(&w->thread, worker_main, w) != 0) {
		snprintf(err, errlen, "cannot start worker thread %u", id);
		return K_EIO;
	}
	*out = w;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory starting worker %u", id);
	return K_ENOMEM;
}

void kp_worker_drain(struct kp_worker *w)
{
	__atomic_or_fetch(&w->cmd, KP_CMD_DRAIN, __ATOMIC_ACQ_REL);
	uv_async_send(&w->async);
}

void kp_worker_stop(struct kp_worker *w)
{
	__atomic_or_fetch(&w->cmd, KP_CMD_STOP, __ATOMIC_ACQ_REL);
	uv_async_send(&w->async);
}

void kp_worker_join(struct kp_worker *w)
{
	uv_thread_join(&w->thread);
	uv_loop_close(&w->loop);
	for (uint32_t i = 0; i < w->cfg->n_clusters; i++)
		free(w->clusters[i].hosts);
	for (int i = 0; i < 3; i++)
		free(w->logs[i].data);
	for (uint32_t i = 0; i < w->n_file_logs; i++) {
		close(w->file_logs[i].fd);
		free(w->file_logs[i].data);
	}
	free(w->file_logs);
	kp_buf_pool_destroy(&w->bufs);
	k_pool_drain(&w->dconn_pool);
	k_pool_drain(&w->stream_pool);
	k_pool_drain(&w->uconn_pool);
	free(w->clusters);
	free(w->listens);
	free(w->hdr_scratch);
	kp_config_unref(w->cfg);
	/* The stats shard is freed by the server after the last read. */
}
