/* config.h — the compiled, immutable runtime configuration of kite-proxy.
 *
 * One compile step turns an Envoy v3 Bootstrap message (decoded from YAML or
 * JSON by k_pbjson, or later assembled from xDS resources) into a
 * kp_config: flat arrays, resolved cluster references, parsed addresses,
 * millisecond timeouts and a stats layout. Workers read it without locks;
 * it is never modified after kp_config_compile returns and is freed when
 * the last reference is dropped. */
#ifndef KP_CONFIG_H
#define KP_CONFIG_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "k_common.h"
#include "h1_codec.h"
#include "stats.h"

struct kp_access_log_fmt; /* access_log.h */

enum kp_lb_policy { KP_LB_ROUND_ROBIN, KP_LB_RANDOM, KP_LB_LEAST_REQUEST };

struct kp_endpoint {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char name[64]; /* "127.0.0.1:9080", for logs, x-kite-error, /clusters */
	uint32_t weight;
};

struct kp_cluster_cfg {
	char *name;
	uint32_t index;
	enum kp_lb_policy lb;
	uint64_t connect_timeout_ms;	      /* Envoy default 5 s */
	uint64_t idle_timeout_ms;	      /* pooled connection idle limit; 0: none */
	uint32_t max_connections;	      /* circuit breaker, per worker; default 1024 */
	uint32_t max_pending_requests;	      /* default 1024 */
	uint32_t max_requests;		      /* default 1024 */
	uint32_t max_requests_per_connection; /* 0: unlimited */
	struct kp_endpoint *endpoints;
	uint32_t n_endpoints;
	uint32_t stats; /* first slot of this cluster's KP_CLUSTER_STATS */
};

enum kp_path_match { KP_MATCH_PREFIX, KP_MATCH_PATH, KP_MATCH_PATH_SEPARATED_PREFIX };
enum kp_route_kind { KP_ROUTE_CLUSTER, KP_ROUTE_DIRECT_RESPONSE };

/* A timeout the configuration did not set (0 means "disabled"). */
#define KP_TIMEOUT_UNSET UINT64_MAX

struct kp_route {
	char *name;
	enum kp_path_match match;
	char *value; /* prefix or path, NUL-terminated */
	size_t value_len;
	int case_sensitive; /* Envoy default: true */
	enum kp_route_kind kind;
	int cluster;		  /* index into kp_config.clusters (KP_ROUTE_CLUSTER) */
	uint64_t timeout_ms;	  /* 0: disabled; Envoy default 15 s */
	uint64_t idle_timeout_ms; /* KP_TIMEOUT_UNSET: the manager's stream_idle_timeout */
	int direct_status;	  /* KP_ROUTE_DIRECT_RESPONSE */
	char *direct_body;
	size_t direct_body_len;
};

enum kp_domain_kind { KP_DOMAIN_EXACT, KP_DOMAIN_SUFFIX, KP_DOMAIN_PREFIX, KP_DOMAIN_ANY };

struct kp_domain {
	enum kp_domain_kind kind;
	char *text; /* lower-cased; for SUFFIX/PREFIX without the '*' */
	size_t len;
};

struct kp_vhost {
	char *name;
	struct kp_domain *domains;
	uint32_t n_domains;
	struct kp_route *routes;
	uint32_t n_routes;
};

struct kp_route_table {
	char *name;
	struct kp_vhost *vhosts;
	uint32_t n_vhosts;
};

enum kp_access_log_sink { KP_LOG_STDOUT, KP_LOG_STDERR, KP_LOG_FILE };

struct kp_access_log_cfg {
	enum kp_access_log_sink sink;
	char *path; /* KP_LOG_FILE */
	struct kp_access_log_fmt *fmt;
};

struct kp_hcm_cfg {
	char *stat_prefix;
	struct kp_route_table routes;
	struct k_h1_limits limits;	     /* max_request_headers_kb, max_headers_count */
	uint64_t stream_idle_timeout_ms;     /* default 5 min */
	uint64_t request_timeout_ms;	     /* default 0 (none) */
	uint64_t request_headers_timeout_ms; /* default 0 (none) */
	uint64_t idle_timeout_ms;	     /* connection idle; default 1 h */
	uint64_t drain_timeout_ms;	     /* default 5 s */
	uint64_t max_connection_duration_ms; /* 0: none */
	int use_remote_address;
	uint32_t xff_num_trusted_hops;
	int generate_request_id; /* default true */
	int preserve_external_request_id;
	int always_set_request_id_in_response;
	char *server_name; /* "server" header; default "kite" */
	enum {
		KP_SERVER_OVERWRITE,
		KP_SERVER_APPEND_IF_ABSENT,
		KP_SERVER_PASS_THROUGH
	} server_header_mode;
	struct kp_access_log_cfg *access_logs;
	uint32_t n_access_logs;
	uint32_t stats; /* first slot of KP_HTTP_STATS */
};

struct kp_listener_cfg {
	char *name;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char addr_str[64];		      /* "127.0.0.1:10000" */
	uint32_t per_connection_buffer_limit; /* default 1 MiB */
	struct kp_hcm_cfg hcm;
	uint32_t stats; /* first slot of KP_LISTENER_STATS */
};

struct kp_config {
	int refs; /* atomic */
	/* The source message, kept for /config_dump; owned. */
	void *bootstrap; /* Envoy__Config__Bootstrap__V3__Bootstrap * */
	struct kp_listener_cfg *listeners;
	uint32_t n_listeners;
	struct kp_cluster_cfg *clusters;
	uint32_t n_clusters;
	int has_admin;
	struct sockaddr_storage admin_addr;
	socklen_t admin_addrlen;
	char admin_addr_str[64];
	char *node_id;
	char *node_cluster;
	struct kp_stat_layout stats;
	uint32_t server_stats; /* first slot of KP_SERVER_STATS */
};

/* Compile a decoded bootstrap. Takes ownership of `bootstrap` in all cases.
 * Returns 0 and *out (refs = 1), or K_EINVAL with err naming the field path
 * and rule ("static_resources.listeners[0].filter_chains[0].filters[0]:
 * unsupported network filter \"envoy.filters.network.redis_proxy\"") or
 * K_ENOMEM. */
int kp_config_compile(void *bootstrap, struct kp_config **out, char *err, size_t errlen);

/* Load a bootstrap file (YAML or JSON) and compile it. */
int kp_config_load_file(const char *path, struct kp_config **out, char *err, size_t errlen);

struct kp_config *kp_config_ref(struct kp_config *c);
void kp_config_unref(struct kp_config *c);

/* Render an address as "127.0.0.1:80" or "[::1]:80" into out (NUL-terminated). */
void kp_sockaddr_str(const struct sockaddr *sa, char *out, size_t outlen);

/* Find a cluster by name; NULL if absent. */
const struct kp_cluster_cfg *kp_config_cluster(const struct kp_config *c, const char *name);

/* Route matching (route.c). `host` is the Host/authority value as received
 * (port and case are handled), `path` the origin-form path incl. query.
 * Returns the matched route or NULL (no vhost or no route: caller sends 404
 * NR); *vhost_out gets the virtual host when one matched. */
const struct kp_route *kp_route_match(const struct kp_route_table *t, struct k_str host,
				      struct k_str path, const struct kp_vhost **vhost_out);

#endif
