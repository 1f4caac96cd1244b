/* stats.h — Envoy-named counters and gauges, sharded per worker.
 *
 * The config compile step lays out every statistic a snapshot can touch
 * ("cluster.backend.upstream_rq_total", ...) as a slot in one table. Each
 * worker owns a private array of uint64 values indexed by slot and is the
 * only writer; the main thread sums the shards when /stats is read. Writes
 * are plain relaxed stores (no lock prefix on the hot path); reads are
 * relaxed loads, so a reader sees each value whole, maybe a moment old.
 *
 * Slots are grouped by scope: a scope (one cluster, one listener, one HTTP
 * connection manager) allocates a contiguous block of its kind's fields, so
 * code indexes them as base + field. */
#ifndef KP_STATS_H
#define KP_STATS_H

#include <stdint.h>

enum kp_stat_kind { KP_COUNTER, KP_GAUGE };

/* Fields of an HTTP connection manager scope: "http.<stat_prefix>.<field>". */
#define KP_HTTP_STATS(X)                                                                           \
	X(COUNTER, downstream_cx_total)                                                            \
	X(GAUGE, downstream_cx_active)                                                             \
	X(COUNTER, downstream_cx_http1_total)                                                      \
	X(COUNTER, downstream_cx_destroy)                                                          \
	X(COUNTER, downstream_cx_protocol_error)                                                   \
	X(COUNTER, downstream_cx_idle_timeout)                                                     \
	X(COUNTER, downstream_cx_drain_close)                                                      \
	X(COUNTER, downstream_cx_rx_bytes_total)                                                   \
	X(COUNTER, downstream_cx_tx_bytes_total)                                                   \
	X(COUNTER, downstream_rq_total)                                                            \
	X(COUNTER, downstream_rq_http1_total)                                                      \
	X(GAUGE, downstream_rq_active)                                                             \
	X(COUNTER, downstream_rq_completed)                                                        \
	X(COUNTER, downstream_rq_1xx)                                                              \
	X(COUNTER, downstream_rq_2xx)                                                              \
	X(COUNTER, downstream_rq_3xx)                                                              \
	X(COUNTER, downstream_rq_4xx)                                                              \
	X(COUNTER, downstream_rq_5xx)                                                              \
	X(COUNTER, downstream_rq_rx_reset)                                                         \
	X(COUNTER, downstream_rq_tx_reset)                                                         \
	X(COUNTER, downstream_rq_timeout)                                                          \
	X(COUNTER, downstream_rq_idle_timeout)                                                     \
	X(COUNTER, downstream_rq_header_timeout)                                                   \
	X(COUNTER, downstream_rq_too_large)                                                        \
	X(COUNTER, no_route)                                                                       \
	X(COUNTER, no_cluster)                                                                     \
	X(COUNTER, rq_direct_response)

/* Fields of a cluster scope: "cluster.<name>.<field>". */
#define KP_CLUSTER_STATS(X)                                                                        \
	X(COUNTER, upstream_cx_total)                                                              \
	X(GAUGE, upstream_cx_active)                                                               \
	X(COUNTER, upstream_cx_http1_total)                                                        \
	X(COUNTER, upstream_cx_connect_fail)                                                       \
	X(COUNTER, upstream_cx_connect_timeout)                                                    \
	X(COUNTER, upstream_cx_destroy)                                                            \
	X(COUNTER, upstream_cx_destroy_local)                                                      \
	X(COUNTER, upstream_cx_destroy_remote)                                                     \
	X(COUNTER, upstream_cx_overflow)                                                           \
	X(COUNTER, upstream_cx_none_healthy)                                                       \
	X(COUNTER, upstream_cx_idle_timeout)                                                       \
	X(COUNTER, upstream_cx_protocol_error)                                                     \
	X(COUNTER, upstream_cx_rx_bytes_total)                                                     \
	X(COUNTER, upstream_cx_tx_bytes_total)                                                     \
	X(COUNTER, upstream_rq_total)                                                              \
	X(GAUGE, upstream_rq_active)                                                               \
	X(COUNTER, upstream_rq_completed)                                                          \
	X(COUNTER, upstream_rq_1xx)                                                                \
	X(COUNTER, upstream_rq_2xx)                                                                \
	X(COUNTER, upstream_rq_3xx)                                                                \
	X(COUNTER, upstream_rq_4xx)                                                                \
	X(COUNTER, upstream_rq_5xx)                                                                \
	X(COUNTER, upstream_rq_timeout)                                                            \
	X(COUNTER, upstream_rq_rx_reset)                                                           \
	X(COUNTER, upstream_rq_tx_reset)                                                           \
	X(COUNTER, upstream_rq_pending_overflow)                                                   \
	X(GAUGE, membership_total)                                                                 \
	X(GAUGE, membership_healthy)

/* Fields of a listener scope: "listener.<address>.<field>". */
#define KP_LISTENER_STATS(X)                                                                       \
	X(COUNTER, downstream_cx_total)                                                            \
	X(GAUGE, downstream_cx_active)                                                             \
	X(COUNTER, downstream_cx_overflow)                                                         \
	X(COUNTER, downstream_cx_destroy)

/* Process-wide: "server.<field>". Filled by the main thread. */
#define KP_SERVER_STATS(X)                                                                         \
	X(GAUGE, live)                                                                             \
	X(GAUGE, state)                                                                            \
	X(GAUGE, uptime)                                                                           \
	X(GAUGE, concurrency)                                                                      \
	X(GAUGE, memory_allocated)                                                                 \
	X(GAUGE, memory_physical_size)                                                             \
	X(GAUGE, total_connections)                                                                \
	X(GAUGE, days_until_first_cert_expiring)

#define KP_STAT_ENUM(kind, name) name,
/* Listener fields repeat HTTP field names (downstream_cx_total, ...), and
 * C enumerators share one namespace, so the listener ones carry a prefix:
 * listener_downstream_cx_total. The listener list is ordered so the shared
 * names also have the HTTP values (checked below): listener base +
 * downstream_cx_destroy lands on the listener's own slot either way. */
#define KP_LISTENER_STAT_ENUM(kind, name) listener_##name,
enum kp_http_stat { KP_HTTP_STATS(KP_STAT_ENUM) KP_HTTP_STAT_COUNT };
enum kp_cluster_stat { KP_CLUSTER_STATS(KP_STAT_ENUM) KP_CLUSTER_STAT_COUNT };
enum kp_listener_stat { KP_LISTENER_STATS(KP_LISTENER_STAT_ENUM) KP_LISTENER_STAT_COUNT };
enum kp_server_stat { KP_SERVER_STATS(KP_STAT_ENUM) KP_SERVER_STAT_COUNT };
#undef KP_LISTENER_STAT_ENUM
#undef KP_STAT_ENUM
_Static_assert((int)listener_downstream_cx_total == (int)downstream_cx_total &&
		       (int)listener_downstream_cx_active == (int)downstream_cx_active &&
		       (int)listener_downstream_cx_destroy == (int)downstream_cx_destroy,
	       "listener and HTTP downstream_cx_* fields must share offsets");

/* The layout: names and kinds of every slot, plus Prometheus tag data.
 * Immutable once built; owned by a config snapshot. */
struct kp_stat_def {
	char *name; /* full Envoy name: "cluster.backend.upstream_rq_total" */
	enum kp_stat_kind kind;
	/* Prometheus form: envoy_<prom_name>{<tag_name>="<tag_value>"} */
	char *prom_name; /* "cluster_upstream_rq_total" */
	char *tag_name;	 /* "envoy_cluster_name", or NULL */
	char *tag_value; /* "backend" */
	/* Every label of the series, values escaped, without braces:
	 * "envoy_response_code_class=\"2\",envoy_cluster_name=\"backend\""
	 * ("" for server.*). Envoy also extracts the response code class
	 * from "..._rq_2xx", whose prom_name is then "..._rq_xx". */
	char *prom_labels;
	/* name, prom_name, tag_name, tag_value and prom_labels share one
	 * allocation starting at name; kp_stat_layout_free releases it. */
};

struct kp_stat_layout {
	struct kp_stat_def *defs;
	uint32_t n, cap;
};

/* Append a scope of `count` fields named "<scope_kind>.<scope_name>.<field>"
 * and return the index of its first slot, or a negative K_E* code.
 * scope_kind is "cluster", "http", "listener" or "server" (server has no
 * scope_name: pass NULL). ':' in scope_name becomes '_' as in Envoy
 * ("listener.127.0.0.1_10000."). Adding a scope whose kind and name are
 * already laid out returns the existing block: two connection managers
 * with one stat_prefix share their counters, as in Envoy (and Prometheus
 * never sees a series twice).
 * K_EINVAL: unknown scope_kind, or scope_name NULL/empty for a non-server
 * scope. K_ENOMEM: the layout is unchanged. */
int kp_stat_layout_add_scope(struct kp_stat_layout *l, const char *scope_kind,
			     const char *scope_name);
/* Free every name and the defs array; leaves *l empty (reusable). */
void kp_stat_layout_free(struct kp_stat_layout *l);

/* Rendering for the admin endpoints (main thread).
 *   shards: n_shards arrays, each with at least l->n slots; each value is
 *           the sum over shards (gauges modulo 2^64, printed signed).
 *   filter: POSIX extended regex searched in the Envoy name
 *           ("cluster.backend.upstream_rq_total"), or NULL for all.
 *   used_only: skip stats no shard has touched (every shard holds 0).
 * Return a malloc'd NUL-terminated string (caller frees) and its length in
 * *len, or NULL with err set: the filter is not a valid regex ("invalid
 * regex \"(\": ..." — a 400 for the admin) or memory ran out.
 *
 * Text: Envoy's /stats, "name: value\n" sorted by name. */
char *kp_stats_render_text(const struct kp_stat_layout *l, const uint64_t *const *shards,
			   uint32_t n_shards, const char *filter, int used_only, size_t *len,
			   char *err, size_t errlen);
/* JSON: {"stats":[{"name":"...","value":N},...]} sorted by name. */
char *kp_stats_render_json(const struct kp_stat_layout *l, const uint64_t *const *shards,
			   uint32_t n_shards, const char *filter, int used_only, size_t *len,
			   char *err, size_t errlen);
/* Prometheus text exposition 0.0.4: one "# TYPE envoy_x counter|gauge"
 * line per metric, followed by all of its series. */
char *kp_stats_render_prometheus(const struct kp_stat_layout *l, const uint64_t *const *shards,
				 uint32_t n_shards, const char *filter, int used_only, size_t *len,
				 char *err, size_t errlen);

/* One worker's values. Single writer. */
static inline void kp_stat_inc(uint64_t *shard, uint32_t slot)
{
	__atomic_store_n(&shard[slot], __atomic_load_n(&shard[slot], __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
}
static inline void kp_stat_add(uint64_t *shard, uint32_t slot, uint64_t v)
{
	__atomic_store_n(&shard[slot], __atomic_load_n(&shard[slot], __ATOMIC_RELAXED) + v,
			 __ATOMIC_RELAXED);
}
/* Gauges can go down: stored as uint64 but summed modulo 2^64, so a shard
 * may hold "negative" values as long as the sum is right. */
static inline void kp_stat_dec(uint64_t *shard, uint32_t slot)
{
	__atomic_store_n(&shard[slot], __atomic_load_n(&shard[slot], __ATOMIC_RELAXED) - 1,
			 __ATOMIC_RELAXED);
}
static inline void kp_stat_set(uint64_t *shard, uint32_t slot, uint64_t v)
{
	__atomic_store_n(&shard[slot], v, __ATOMIC_RELAXED);
}
static inline uint64_t kp_stat_get(const uint64_t *shard, uint32_t slot)
{
	return __atomic_load_n(&shard[slot], __ATOMIC_RELAXED);
}

#endif
