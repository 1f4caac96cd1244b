/* config.c — Envoy v3 Bootstrap → kp_config.
 *
 * The schema is Envoy's whole API (api/), so a config can name fields this
 * proxy does not implement yet. Ignoring such a field silently would route
 * traffic differently from what the user wrote, so each message kind lists
 * the fields we honour (or that cannot change behaviour), and any other
 * field that is set is an error naming its path: one mechanism instead of a
 * check per field. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "access_log.h"
#include "config.h"
#include "k_pbjson.h"

/* Field paths are built in fixed buffers; a path long enough to be cut
 * is still a useful message, so truncation is fine here. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap Bootstrap;
typedef Envoy__Config__Listener__V3__Listener Listener;
typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager Hcm;
typedef Envoy__Config__Route__V3__RouteConfiguration RouteConfiguration;
typedef Envoy__Config__Route__V3__VirtualHost VirtualHost;
typedef Envoy__Config__Route__V3__Route Route;
typedef Envoy__Config__Core__V3__Address Address;
typedef Google__Protobuf__Duration Duration;

#define HCM_TYPE    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_TYPE "envoy.extensions.filters.http.router.v3.Router"

struct cc {
	char *err;
	size_t errlen;
	struct kp_config *cfg;
};

__attribute__((format(printf, 2, 3))) static int fail(struct cc *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return K_EINVAL;
}

/* ------------------------------------------------ generic field checks */

static int field_is_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)(base + f->quantifier_offset) != 0;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
		return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
	const void *p = base + f->offset;
	switch (f->type) {
	case PROTOBUF_C_TYPE_MESSAGE: return *(void *const *)p != NULL;
	case PROTOBUF_C_TYPE_STRING: return *(char *const *)p && **(char *const *)p;
	case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len != 0;
	case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p != 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_DOUBLE: return *(const uint64_t *)p != 0;
	default: return *(const uint32_t *)p != 0;
	}
}

/* Fail on the first set field of m not named in `allowed` (a NULL-ended
 * list). path is m's own path. */
static int only_fields(struct cc *c, const void *msg, const char *path, const char *const *allowed)
{
	const ProtobufCMessage *m = msg;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (!field_is_set(m, f))
			continue;
		int ok = 0;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = strcmp(*a, f->name) == 0;
		if (!ok)
			return fail(c,
				    "%s%s%s: not supported by kite-proxy yet (%s.%s); remove it or "
				    "see docs/proxy.md",
				    path, *path ? "." : "", f->name, d->name, f->name);
	}
	return 0;
}

#define ONLY(c, msg, path, ...)                                                                    \
	do {                                                                                       \
		static const char *const allowed_[] = {__VA_ARGS__, NULL};                         \
		int rc_ = only_fields((c), (msg), (path), allowed_);                               \
		if (rc_)                                                                           \
			return rc_;                                                                \
	} while (0)

static int duration_ms(struct cc *c, const Duration *d, const char *path, uint64_t def,
		       uint64_t *out)
{
	if (!d) {
		*out = def;
		return 0;
	}
	if (d->seconds < 0 || d->nanos < 0)
		return fail(c, "%s: must not be negative", path);
	if (d->seconds > 315576000000LL)
		return fail(c, "%s: too large", path);
	*out = (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
	if (*out == 0 && d->nanos > 0)
		*out = 1; /* sub-millisecond timeouts round up, not to "disabled" */
	return 0;
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

void kp_sockaddr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const void *)sa;
		inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof(ip));
		snprintf(out, outlen, "[%s]:%u", ip, ntohs(in->sin6_port));
	} else {
		snprintf(out, outlen, "?");
	}
}

static int compile_address(struct cc *c, const Address *a, const char *path,
			   struct sockaddr_storage *ss, socklen_t *len, char *str, size_t strlen_)
{
	char p[512];
	if (!a)
		return fail(c, "%s: required", path);
	if (a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
		return fail(c, "%s: only socket_address is supported", path);
	const Envoy__Config__Core__V3__SocketAddress *sa = a->socket_address;
	snprintf(p, sizeof(p), "%s.socket_address", path);
	ONLY(c, sa, p, "protocol", "address", "port_value", "ipv4_compat");
	if (sa->protocol != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__TCP)
		return fail(c, "%s.protocol: only TCP is supported", p);
	if (sa->port_specifier_case !=
	    ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE)
		return fail(c, "%s.port_value: required", p);
	if (sa->port_value > 65535)
		return fail(c, "%s.port_value: %u is not a TCP port (0-65535)", p, sa->port_value);
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;
	if (inet_pton(AF_INET, sa->address, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)sa->port_value);
		*len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, sa->address, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)sa->port_value);
		*len = sizeof(*in6);
	} else {
		return fail(c,
			    "%s.address: \"%s\" is not an IP address (hostnames need a STRICT_DNS "
			    "cluster, not supported yet)",
			    p, sa->address);
	}
	kp_sockaddr_str((struct sockaddr *)ss, str, strlen_);
	return 0;
}

/* ----------------------------------------------------------- clusters */

static int compile_cluster(struct cc *c, const Cluster *cl, uint32_t idx,
			   struct kp_cluster_cfg *out)
{
	char path[256], p[512];
	snprintf(path, sizeof(path), "static_resources.clusters[%u]", idx);
	ONLY(c, cl, path, "name", "alt_stat_name", "type", "connect_timeout",
	     "per_connection_buffer_limit_bytes", "lb_policy", "load_assignment",
	     "max_requests_per_connection", "circuit_breakers", "common_http_protocol_options",
	     "http_protocol_options", "typed_extension_protocol_options", "dns_lookup_family",
	     "dns_refresh_rate", "respect_dns_ttl", "metadata", "round_robin_lb_config",
	     "least_request_lb_config", "common_lb_config", "upstream_connection_options");
	if (!cl->name || !*cl->name)
		return fail(c, "%s.name: required", path);
	for (uint32_t j = 0; j < idx; j++)
		if (strcmp(c->cfg->clusters[j].name, cl->name) == 0)
			return fail(c, "%s.name: duplicate cluster name \"%s\" (also clusters[%u])",
				    path, cl->name, j);
	out->name = xstrdup(cl->name);
	out->index = idx;
	if (cl->cluster_discovery_type_case ==
		    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
	    cl->type != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC)
		return fail(
			c, "%s.type: %s clusters are not supported yet (STATIC only)", path,
			protobuf_c_enum_descriptor_get_value(
				&envoy__config__cluster__v3__cluster__discovery_type__descriptor,
				cl->type)
				->name);
	if (cl->cluster_discovery_type_case ==
	    ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE)
		return fail(c, "%s.cluster_type: custom cluster types are not supported", path);
	switch (cl->lb_policy) {
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN:
		out->lb = KP_LB_ROUND_ROBIN;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM: out->lb = KP_LB_RANDOM; break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST:
		out->lb = KP_LB_LEAST_REQUEST;
		break;
	default:
		return fail(c,
			    "%s.lb_policy: %s is not supported yet (ROUND_ROBIN, LEAST_REQUEST, "
			    "RANDOM)",
			    path,
			    protobuf_c_enum_descriptor_get_value(
				    &envoy__config__cluster__v3__cluster__lb_policy__descriptor,
				    cl->lb_policy)
				    ->name);
	}
	snprintf(p, sizeof(p), "%s.connect_timeout", path);
	if (duration_ms(c, cl->connect_timeout, p, 5000, &out->connect_timeout_ms))
		return K_EINVAL;
	out->idle_timeout_ms = 3600 * 1000;
	out->max_connections = out->max_pending_requests = out->max_requests = 1024;
	if (cl->max_requests_per_connection)
		out->max_requests_per_connection = cl->max_requests_per_connection->value;
	if (cl->common_http_protocol_options) {
		const Envoy__Config__Core__V3__HttpProtocolOptions *o =
			cl->common_http_protocol_options;
		snprintf(p, sizeof(p), "%s.common_http_protocol_options", path);
		ONLY(c, o, p, "idle_timeout", "max_requests_per_connection", "max_headers_count");
		snprintf(p, sizeof(p), "%s.common_http_protocol_options.idle_timeout", path);
		if (duration_ms(c, o->idle_timeout, p, out->idle_timeout_ms, &out->idle_timeout_ms))
			return K_EINVAL;
		if (o->max_requests_per_connection)
			out->max_requests_per_connection = o->max_requests_per_connection->value;
	}
	if (cl->circuit_breakers) {
		for (size_t i = 0; i < cl->circuit_breakers->n_thresholds; i++) {
			const Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t =
				cl->circuit_breakers->thresholds[i];
			snprintf(p, sizeof(p), "%s.circuit_breakers.thresholds[%zu]", path, i);
			ONLY(c, t, p, "priority", "max_connections", "max_pending_requests",
			     "max_requests", "max_retries", "track_remaining");
			if (t->priority != ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__DEFAULT)
				continue; /* HIGH priority routes do not exist yet */
			if (t->max_connections)
				out->max_connections = t->max_connections->value;
			if (t->max_pending_requests)
				out->max_pending_requests = t->max_pending_requests->value;
			if (t->max_requests)
				out->max_requests = t->max_requests->value;
		}
	}
	for (size_t i = 0; i < cl->n_typed_extension_protocol_options; i++) {
		const Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
			cl->typed_extension_protocol_options[i];
		snprintf(p, sizeof(p), "%s.typed_extension_protocol_options[\"%s\"]", path, e->key);
		if (!e->value)
			continue;
		ProtobufCMessage *m = NULL;
		char aerr[256];
		if (k_pb_any_unpack(
			    e->value->type_url, e->value->value.data, e->value->value.len,
			    &envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor,
			    &m, aerr, sizeof(aerr)))
			return fail(c, "%s: %s", p, aerr);
		Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions *h = (void *)m;
		int bad =
			h->upstream_protocol_options_case ==
				ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_EXPLICIT_HTTP_CONFIG &&
			h->explicit_http_config->protocol_config_case !=
				ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP_PROTOCOL_OPTIONS;
		if (!bad && h->common_http_protocol_options) {
			const Envoy__Config__Core__V3__HttpProtocolOptions *o =
				h->common_http_protocol_options;
			uint64_t ms = out->idle_timeout_ms;
			int rc = duration_ms(c, o->idle_timeout, p, ms, &out->idle_timeout_ms);
			if (o->max_requests_per_connection)
				out->max_requests_per_connection =
					o->max_requests_per_connection->value;
			if (rc) {
				protobuf_c_message_free_unpacked(m, NULL);
				return rc;
			}
		}
		protobuf_c_message_free_unpacked(m, NULL);
		if (bad)
			return fail(c,
				    "%s.explicit_http_config: only HTTP/1.1 upstreams are "
				    "supported yet (http_protocol_options)",
				    p);
	}
	/* Endpoints. */
	const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = cl->load_assignment;
	size_t n = 0;
	if (la)
		for (size_t i = 0; i < la->n_endpoints; i++)
			n += la->endpoints[i]->n_lb_endpoints;
	out->endpoints = n ? calloc(n, sizeof(*out->endpoints)) : NULL;
	if (n && !out->endpoints)
		return K_ENOMEM;
	for (size_t i = 0; la && i < la->n_endpoints; i++) {
		const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *lle = la->endpoints[i];
		snprintf(p, sizeof(p), "%s.load_assignment.endpoints[%zu]", path, i);
		ONLY(c, lle, p, "locality", "lb_endpoints", "load_balancing_weight", "metadata");
		for (size_t j = 0; j < lle->n_lb_endpoints; j++) {
			const Envoy__Config__Endpoint__V3__LbEndpoint *le = lle->lb_endpoints[j];
			char ep_path[640];
			snprintf(ep_path, sizeof(ep_path), "%s.lb_endpoints[%zu]", p, j);
			ONLY(c, le, ep_path, "endpoint", "health_status", "load_balancing_weight",
			     "metadata");
			if (le->host_identifier_case !=
			    ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT)
				return fail(c, "%s.endpoint: required", ep_path);
			struct kp_endpoint *ep = &out->endpoints[out->n_endpoints];
			char a_path[700];
			snprintf(a_path, sizeof(a_path), "%s.endpoint.address", ep_path);
			if (compile_address(c, le->endpoint->address, a_path, &ep->addr,
					    &ep->addrlen, ep->name, sizeof(ep->name)))
				return K_EINVAL;
			if (le->health_status ==
				    ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNHEALTHY ||
			    le->health_status == ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__DRAINING ||
			    le->health_status == ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__TIMEOUT)
				continue; /* not a candidate for new requests */
			ep->weight =
				le->load_balancing_weight ? le->load_balancing_weight->value : 1;
			if (ep->weight == 0)
				return fail(c, "%s.load_balancing_weight: must be at least 1",
					    ep_path);
			out->n_endpoints++;
		}
	}
	int s = kp_stat_layout_add_scope(&c->cfg->stats, "cluster",
					 cl->alt_stat_name && *cl->alt_stat_name ? cl->alt_stat_name
										 : cl->name);
	if (s < 0)
		return s;
	out->stats = (uint32_t)s;
	return 0;
}

/* -------------------------------------------------------------- routes */

static int compile_domain(struct cc *c, const char *d, const char *path, struct kp_domain *out)
{
	size_t n = strlen(d);
	if (n == 0)
		return fail(c, "%s: empty domain", path);
	if (strcmp(d, "*") == 0) {
		out->kind = KP_DOMAIN_ANY;
		n = 0;
	} else if (d[0] == '*') {
		out->kind = KP_DOMAIN_SUFFIX;
		d++, n--;
	} else if (d[n - 1] == '*') {
		out->kind = KP_DOMAIN_PREFIX;
		n--;
	} else {
		out->kind = KP_DOMAIN_EXACT;
	}
	if (memchr(d, '*', n))
		return fail(c, "%s: \"*\" may only lead or trail a domain", path);
	out->text = strndup(d, n);
	if (!out->text)
		return K_ENOMEM;
	for (size_t i = 0; i < n; i++)
		out->text[i] = (char)tolower((unsigned char)out->text[i]);
	out->len = n;
	return 0;
}

static int read_data_source(struct cc *c, const Envoy__Config__Core__V3__DataSource *ds,
			    const char *path, char **out, size_t *len)
{
	switch (ds->specifier_case) {
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
		*len = strlen(ds->inline_string);
		*out = strdup(ds->inline_string);
		break;
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
		*len = ds->inline_bytes.len;
		*out = malloc(*len + 1);
		if (*out)
			memcpy(*out, ds->inline_bytes.data, *len), (*out)[*len] = 0;
		break;
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME: {
		FILE *f = fopen(ds->filename, "rb");
		if (!f)
			return fail(c, "%s.filename: cannot read \"%s\": %s", path, ds->filename,
				    strerror(errno));
		*out = malloc(4097);
		*len = *out ? fread(*out, 1, 4097, f) : 0;
		fclose(f);
		if (*out && *len > 4096)
			return fail(c, "%s.filename: \"%s\" is larger than 4096 bytes", path,
				    ds->filename);
		if (*out)
			(*out)[*len] = 0;
		break;
	}
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE: {
		const char *v = getenv(ds->environment_variable);
		if (!v)
			return fail(c, "%s.environment_variable: \"%s\" is not set", path,
				    ds->environment_variable);
		*len = strlen(v);
		*out = strdup(v);
		break;
	}
	default: *out = strdup(""); *len = 0;
	}
	return *out ? 0 : K_ENOMEM;
}

static int compile_route(struct cc *c, const Route *r, const char *path, struct kp_route *out)
{
	char p[640];
	ONLY(c, r, path, "name", "match", "route", "direct_response", "metadata", "decorator",
	     "stat_prefix");
	out->name = xstrdup(r->name);
	snprintf(p, sizeof(p), "%s.match", path);
	if (!r->match)
		return fail(c, "%s: required", p);
	ONLY(c, r->match, p, "prefix", "path", "path_separated_prefix", "case_sensitive");
	out->case_sensitive = r->match->case_sensitive ? r->match->case_sensitive->value : 1;
	const char *v = NULL;
	switch (r->match->path_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX:
		out->match = KP_MATCH_PREFIX, v = r->match->prefix;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH:
		out->match = KP_MATCH_PATH, v = r->match->path;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH_SEPARATED_PREFIX:
		out->match = KP_MATCH_PATH_SEPARATED_PREFIX, v = r->match->path_separated_prefix;
		if (!*v || v[0] != '/' || v[strlen(v) - 1] == '/' || strpbrk(v, "?#"))
			return fail(c,
				    "%s.path_separated_prefix: must start with '/', not end with "
				    "'/', and hold no '?' or '#'",
				    p);
		break;
	default: return fail(c, "%s: one of prefix, path or path_separated_prefix is required", p);
	}
	out->value = xstrdup(v);
	out->value_len = strlen(v);
	if (r->action_case == ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE) {
		const Envoy__Config__Route__V3__DirectResponseAction *d = r->direct_response;
		snprintf(p, sizeof(p), "%s.direct_response", path);
		ONLY(c, d, p, "status", "body");
		if (d->status < 200 || d->status > 599)
			return fail(c, "%s.status: %u is not in [200, 599]", p, d->status);
		out->kind = KP_ROUTE_DIRECT_RESPONSE;
		out->direct_status = (int)d->status;
		if (d->body) {
			char bp[700];
			snprintf(bp, sizeof(bp), "%s.body", p);
			return read_data_source(c, d->body, bp, &out->direct_body,
						&out->direct_body_len);
		}
		return 0;
	}
	if (r->action_case != ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE)
		return fail(c,
			    "%s: one of route or direct_response is required (redirect is not "
			    "supported yet)",
			    path);
	const Envoy__Config__Route__V3__RouteAction *a = r->route;
	snprintf(p, sizeof(p), "%s.route", path);
	ONLY(c, a, p, "cluster", "timeout", "idle_timeout", "cluster_not_found_response_code",
	     "priority");
	if (a->cluster_specifier_case !=
	    ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER)
		return fail(c, "%s.cluster: required", p);
	out->kind = KP_ROUTE_CLUSTER;
	const struct kp_cluster_cfg *cl = kp_config_cluster(c->cfg, a->cluster);
	if (!cl)
		return fail(c, "%s.cluster: unknown cluster \"%s\"", p, a->cluster);
	out->cluster = (int)cl->index;
	char tp[700];
	snprintf(tp, sizeof(tp), "%s.timeout", p);
	if (duration_ms(c, a->timeout, tp, 15000, &out->timeout_ms))
		return K_EINVAL;
	snprintf(tp, sizeof(tp), "%s.idle_timeout", p);
	return duration_ms(c, a->idle_timeout, tp, KP_TIMEOUT_UNSET, &out->idle_timeout_ms);
}

static int compile_route_config(struct cc *c, const RouteConfiguration *rc, const char *path,
				struct kp_route_table *t)
{
	char p[512];
	ONLY(c, rc, path, "name", "virtual_hosts", "validate_clusters",
	     "max_direct_response_body_size_bytes");
	t->name = xstrdup(rc->name);
	t->vhosts = rc->n_virtual_hosts ? calloc(rc->n_virtual_hosts, sizeof(*t->vhosts)) : NULL;
	if (rc->n_virtual_hosts && !t->vhosts)
		return K_ENOMEM;
	int any_seen = 0;
	for (size_t i = 0; i < rc->n_virtual_hosts; i++) {
		const VirtualHost *vh = rc->virtual_hosts[i];
		struct kp_vhost *o = &t->vhosts[t->n_vhosts++];
		snprintf(p, sizeof(p), "%s.virtual_hosts[%zu]", path, i);
		ONLY(c, vh, p, "name", "domains", "routes", "metadata");
		o->name = xstrdup(vh->name);
		if (!vh->n_domains)
			return fail(c, "%s.domains: at least one domain is required", p);
		o->domains = calloc(vh->n_domains, sizeof(*o->domains));
		o->routes = vh->n_routes ? calloc(vh->n_routes, sizeof(*o->routes)) : NULL;
		if (!o->domains || (vh->n_routes && !o->routes))
			return K_ENOMEM;
		for (size_t j = 0; j < vh->n_domains; j++) {
			char dp[600];
			snprintf(dp, sizeof(dp), "%s.domains[%zu]", p, j);
			int rc2 =
				compile_domain(c, vh->domains[j], dp, &o->domains[o->n_domains++]);
			if (rc2)
				return rc2;
			if (o->domains[j].kind == KP_DOMAIN_ANY && any_seen++)
				return fail(c, "%s: only one virtual host may use the domain \"*\"",
					    dp);
			/* Envoy rejects a domain that two virtual hosts claim. */
			for (uint32_t k = 0; k + 1 < t->n_vhosts; k++)
				for (uint32_t m = 0; m < t->vhosts[k].n_domains; m++)
					if (t->vhosts[k].domains[m].kind == o->domains[j].kind &&
					    strcmp(t->vhosts[k].domains[m].text,
						   o->domains[j].text) == 0 &&
					    o->domains[j].kind != KP_DOMAIN_ANY)
						return fail(c,
							    "%s: domain \"%s\" is also in "
							    "virtual_hosts[%u]",
							    dp, vh->domains[j], k);
		}
		for (size_t j = 0; j < vh->n_routes; j++) {
			char rp[600];
			snprintf(rp, sizeof(rp), "%s.routes[%zu]", p, j);
			int rc2 = compile_route(c, vh->routes[j], rp, &o->routes[o->n_routes++]);
			if (rc2)
				return rc2;
		}
	}
	return 0;
}

/* --------------------------------------------- connection manager, logs */

static int compile_access_log(struct cc *c, const Envoy__Config__Accesslog__V3__AccessLog *al,
			      const char *path, struct kp_access_log_cfg *out)
{
	ONLY(c, al, path, "name", "typed_config");
	if (!al->typed_config)
		return fail(c, "%s.typed_config: required", path);
	const char *url = al->typed_config->type_url;
	const char *fmt = NULL;
	ProtobufCMessage *m = NULL;
	char aerr[256], p[600];
	snprintf(p, sizeof(p), "%s.typed_config", path);
	int rc = k_pb_any_unpack(url, al->typed_config->value.data, al->typed_config->value.len,
				 NULL, &m, aerr, sizeof(aerr));
	if (rc)
		return fail(c, "%s: %s", p, aerr);
	const Envoy__Config__Core__V3__SubstitutionFormatString *sfs = NULL;
	if (m->descriptor ==
	    &envoy__extensions__access_loggers__stream__v3__stdout_access_log__descriptor) {
		out->sink = KP_LOG_STDOUT;
		Envoy__Extensions__AccessLoggers__Stream__V3__StdoutAccessLog *s = (void *)m;
		sfs = s->access_log_format_case ? s->log_format : NULL;
	} else if (m->descriptor ==
		   &envoy__extensions__access_loggers__stream__v3__stderr_access_log__descriptor) {
		out->sink = KP_LOG_STDERR;
		Envoy__Extensions__AccessLoggers__Stream__V3__StderrAccessLog *s = (void *)m;
		sfs = s->access_log_format_case ? s->log_format : NULL;
	} else if (m->descriptor ==
		   &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor) {
		Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *f = (void *)m;
		out->sink = KP_LOG_FILE;
		out->path = xstrdup(f->path);
		if (!*f->path) {
			protobuf_c_message_free_unpacked(m, NULL);
			return fail(c, "%s.path: required", p);
		}
		if (f->access_log_format_case ==
		    ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_FORMAT)
			fmt = f->format;
		else if (
			f->access_log_format_case ==
			ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_LOG_FORMAT)
			sfs = f->log_format;
		else if (f->access_log_format_case)
			rc = fail(
				c,
				"%s: json_format is not supported yet; use log_format.text_format",
				p);
	} else {
		rc = fail(c,
			  "%s: unsupported access logger %s (stdout, stderr and file loggers are "
			  "supported)",
			  p, m->descriptor->name);
	}
	if (!rc && sfs) {
		if (sfs->format_case ==
		    ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT)
			fmt = sfs->text_format;
		else if (sfs->format_case)
			rc = fail(c, "%s.log_format: only text_format is supported yet", p);
	}
	if (!rc) {
		char ferr[256];
		out->fmt = kp_access_log_fmt_compile(
			fmt && *fmt ? fmt : KP_ACCESS_LOG_DEFAULT_FORMAT, 0, ferr, sizeof(ferr));
		if (!out->fmt)
			rc = fail(c, "%s: %s", p, ferr);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static int compile_hcm(struct cc *c, const Hcm *h, const char *path, struct kp_hcm_cfg *o)
{
	char p[600];
	ONLY(c, h, path, "codec_type", "stat_prefix", "route_config", "http_filters",
	     "common_http_protocol_options", "http_protocol_options", "server_name",
	     "server_header_transformation", "max_request_headers_kb", "stream_idle_timeout",
	     "request_timeout", "request_headers_timeout", "drain_timeout", "access_log",
	     "use_remote_address", "xff_num_trusted_hops", "generate_request_id",
	     "preserve_external_request_id", "always_set_request_id_in_response", "normalize_path",
	     "merge_slashes", "internal_address_config", "add_user_agent", "delayed_close_timeout",
	     "stream_error_on_invalid_http_message");
	if (!*h->stat_prefix)
		return fail(c, "%s.stat_prefix: required", path);
	o->stat_prefix = xstrdup(h->stat_prefix);
	if (h->codec_type ==
		    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP2 ||
	    h->codec_type ==
		    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP3)
		return fail(
			c,
			"%s.codec_type: only HTTP1 and AUTO (serving HTTP/1.1) are supported yet",
			path);
	if (h->normalize_path && h->normalize_path->value)
		return fail(c, "%s.normalize_path: not supported by kite-proxy yet", path);
	if (h->merge_slashes)
		return fail(c, "%s.merge_slashes: not supported by kite-proxy yet", path);
	if (h->http_protocol_options) {
		snprintf(p, sizeof(p), "%s.http_protocol_options", path);
		ONLY(c, h->http_protocol_options, p, "accept_http_10", "default_host_for_http_10");
	}
	/* Filters: the router is the only one yet and must be last. */
	if (!h->n_http_filters)
		return fail(c,
			    "%s.http_filters: the router filter (envoy.filters.http.router) is "
			    "required",
			    path);
	for (size_t i = 0; i < h->n_http_filters; i++) {
		const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter
			*f = h->http_filters[i];
		snprintf(p, sizeof(p), "%s.http_filters[%zu]", path, i);
		const char *type = f->config_type_case ? f->typed_config->type_url : "";
		const char *slash = strrchr(type, '/');
		type = slash ? slash + 1 : type;
		int is_router = strcmp(type, ROUTER_TYPE) == 0 ||
				(!*type && strcmp(f->name, "envoy.filters.http.router") == 0);
		if (f->disabled)
			continue;
		if (!is_router) {
			if (f->is_optional)
				continue; /* Envoy skips unknown optional filters */
			return fail(c,
				    "%s: unsupported HTTP filter \"%s\"%s%s (supported: "
				    "envoy.filters.http.router)",
				    p, f->name, *type ? " of type " : "", type);
		}
		if (i != h->n_http_filters - 1)
			return fail(c, "%s: the router filter must be the last HTTP filter", p);
	}
	uint32_t kb = h->max_request_headers_kb ? h->max_request_headers_kb->value : 60;
	if (kb < 1 || kb > 8192)
		return fail(c, "%s.max_request_headers_kb: %u is not in [1, 8192]", path, kb);
	o->limits.max_head_bytes = kb * 1024;
	o->limits.max_headers = 100;
	o->idle_timeout_ms = 3600 * 1000;
	if (h->common_http_protocol_options) {
		const Envoy__Config__Core__V3__HttpProtocolOptions *cp =
			h->common_http_protocol_options;
		snprintf(p, sizeof(p), "%s.common_http_protocol_options", path);
		ONLY(c, cp, p, "idle_timeout", "max_headers_count", "max_connection_duration",
		     "headers_with_underscores_action");
		if (cp->max_headers_count) {
			if (cp->max_headers_count->value < 1 ||
			    cp->max_headers_count->value > 10000)
				return fail(c, "%s.max_headers_count: %u is not in [1, 10000]", p,
					    cp->max_headers_count->value);
			o->limits.max_headers = cp->max_headers_count->value;
		}
		char tp[700];
		snprintf(tp, sizeof(tp), "%s.idle_timeout", p);
		if (duration_ms(c, cp->idle_timeout, tp, o->idle_timeout_ms, &o->idle_timeout_ms))
			return K_EINVAL;
		snprintf(tp, sizeof(tp), "%s.max_connection_duration", p);
		if (duration_ms(c, cp->max_connection_duration, tp, 0,
				&o->max_connection_duration_ms))
			return K_EINVAL;
	}
#define DUR(field, def, dst)                                                                       \
	do {                                                                                       \
		snprintf(p, sizeof(p), "%s." #field, path);                                        \
		if (duration_ms(c, h->field, p, (def), &o->dst))                                   \
			return K_EINVAL;                                                           \
	} while (0)
	DUR(stream_idle_timeout, 300000, stream_idle_timeout_ms);
	DUR(request_timeout, 0, request_timeout_ms);
	DUR(request_headers_timeout, 0, request_headers_timeout_ms);
	DUR(drain_timeout, 5000, drain_timeout_ms);
#undef DUR
	o->use_remote_address = h->use_remote_address && h->use_remote_address->value;
	o->xff_num_trusted_hops = h->xff_num_trusted_hops;
	o->generate_request_id = h->generate_request_id ? h->generate_request_id->value : 1;
	o->preserve_external_request_id = h->preserve_external_request_id;
	o->always_set_request_id_in_response = h->always_set_request_id_in_response;
	o->server_name = xstrdup(*h->server_name ? h->server_name : "kite");
	o->server_header_mode = (int)h->server_header_transformation;
	for (const char *s = o->server_name; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return fail(c,
				    "%s.server_name: control characters are not allowed in a "
				    "header value",
				    path);
	if (h->n_access_log) {
		o->access_logs = calloc(h->n_access_log, sizeof(*o->access_logs));
		if (!o->access_logs)
			return K_ENOMEM;
	}
	for (size_t i = 0; i < h->n_access_log; i++) {
		snprintf(p, sizeof(p), "%s.access_log[%zu]", path, i);
		int rc = compile_access_log(c, h->access_log[i], p,
					    &o->access_logs[o->n_access_logs++]);
		if (rc)
			return rc;
	}
	if (h->route_specifier_case !=
	    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG)
		return fail(
			c,
			"%s.route_config: required (rds needs a control plane, not supported yet)",
			path);
	snprintf(p, sizeof(p), "%s.route_config", path);
	int rc = compile_route_config(c, h->route_config, p, &o->routes);
	if (rc)
		return rc;
	int s = kp_stat_layout_add_scope(&c->cfg->stats, "http", h->stat_prefix);
	if (s < 0)
		return s;
	o->stats = (uint32_t)s;
	return 0;
}

static int compile_listener(struct cc *c, const Listener *l, uint32_t idx,
			    struct kp_listener_cfg *out)
{
	char path[128], p[600];
	snprintf(path, sizeof(path), "static_resources.listeners[%u]", idx);
	ONLY(c, l, path, "name", "address", "stat_prefix", "filter_chains", "default_filter_chain",
	     "per_connection_buffer_limit_bytes", "metadata", "drain_type", "traffic_direction",
	     "bind_to_port", "listener_filters_timeout", "continue_on_listener_filters_timeout",
	     "enable_reuse_port");
	snprintf(p, sizeof(p), "%s.address", path);
	if (compile_address(c, l->address, p, &out->addr, &out->addrlen, out->addr_str,
			    sizeof(out->addr_str)))
		return K_EINVAL;
	if (l->bind_to_port && !l->bind_to_port->value)
		return fail(c,
			    "%s.bind_to_port: false (a listener reached only by redirection) is "
			    "not supported yet",
			    path);
	out->name = xstrdup(*l->name ? l->name : out->addr_str);
	for (uint32_t j = 0; j < idx; j++) {
		if (strcmp(c->cfg->listeners[j].name, out->name) == 0)
			return fail(c,
				    "%s.name: duplicate listener name \"%s\" (also listeners[%u])",
				    path, out->name, j);
		if (c->cfg->listeners[j].addrlen == out->addrlen &&
		    memcmp(&c->cfg->listeners[j].addr, &out->addr, out->addrlen) == 0 &&
		    ntohs(((struct sockaddr_in *)&out->addr)->sin_port) != 0)
			return fail(c, "%s.address: %s is also the address of listeners[%u]", path,
				    out->addr_str, j);
	}
	out->per_connection_buffer_limit = l->per_connection_buffer_limit_bytes
						   ? l->per_connection_buffer_limit_bytes->value
						   : 1024 * 1024;
	const Envoy__Config__Listener__V3__FilterChain *fc = NULL;
	if (l->n_filter_chains > 1)
		return fail(c,
			    "%s.filter_chains: more than one filter chain needs filter_chain_match "
			    "(not supported yet)",
			    path);
	if (l->n_filter_chains == 1) {
		fc = l->filter_chains[0];
		snprintf(p, sizeof(p), "%s.filter_chains[0]", path);
	} else if (l->default_filter_chain) {
		fc = l->default_filter_chain;
		snprintf(p, sizeof(p), "%s.default_filter_chain", path);
	} else {
		return fail(c, "%s.filter_chains: at least one filter chain is required", path);
	}
	ONLY(c, fc, p, "filters", "name", "metadata", "filter_chain_match");
	if (fc->filter_chain_match) {
		char mp[700];
		snprintf(mp, sizeof(mp), "%s.filter_chain_match", p);
		ONLY(c, fc->filter_chain_match, mp, "destination_port");
	}
	if (fc->n_filters != 1)
		return fail(c,
			    "%s.filters: exactly one network filter "
			    "(envoy.filters.network.http_connection_manager) is supported yet",
			    p);
	const Envoy__Config__Listener__V3__Filter *f = fc->filters[0];
	char fp[700];
	snprintf(fp, sizeof(fp), "%s.filters[0]", p);
	if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
		return fail(c, "%s.typed_config: required", fp);
	const char *slash = strrchr(f->typed_config->type_url, '/');
	const char *type = slash ? slash + 1 : f->typed_config->type_url;
	if (strcmp(type, HCM_TYPE) != 0)
		return fail(c,
			    "%s: unsupported network filter \"%s\" of type %s (supported: "
			    "envoy.filters.network.http_connection_manager)",
			    fp, f->name, type);
	ProtobufCMessage *m = NULL;
	char aerr[256];
	if (k_pb_any_unpack(
		    f->typed_config->type_url, f->typed_config->value.data,
		    f->typed_config->value.len,
		    &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
		    &m, aerr, sizeof(aerr)))
		return fail(c, "%s.typed_config: %s", fp, aerr);
	char hp[760];
	snprintf(hp, sizeof(hp), "%s.typed_config", fp);
	int rc = compile_hcm(c, (Hcm *)m, hp, &out->hcm);
	protobuf_c_message_free_unpacked(m, NULL);
	if (rc)
		return rc;
	char lname[80];
	snprintf(lname, sizeof(lname), "%s", out->addr_str);
	int s = kp_stat_layout_add_scope(&c->cfg->stats, "listener", lname);
	if (s < 0)
		return s;
	out->stats = (uint32_t)s;
	return 0;
}

/* ---------------------------------------------------------------- top */

const struct kp_cluster_cfg *kp_config_cluster(const struct kp_config *c, const char *name)
{
	for (uint32_t i = 0; i < c->n_clusters; i++)
		if (strcmp(c->clusters[i].name, name) == 0)
			return &c->clusters[i];
	return NULL;
}

static void free_route_table(struct kp_route_table *t)
{
	for (uint32_t i = 0; i < t->n_vhosts; i++) {
		struct kp_vhost *v = &t->vhosts[i];
		for (uint32_t j = 0; j < v->n_domains; j++)
			free(v->domains[j].text);
		for (uint32_t j = 0; j < v->n_routes; j++) {
			free(v->routes[j].name);
			free(v->routes[j].value);
			free(v->routes[j].direct_body);
		}
		free(v->domains);
		free(v->routes);
		free(v->name);
	}
	free(t->vhosts);
	free(t->name);
}

static void config_free(struct kp_config *c)
{
	for (uint32_t i = 0; i < c->n_listeners; i++) {
		struct kp_listener_cfg *l = &c->listeners[i];
		struct kp_hcm_cfg *h = &l->hcm;
		for (uint32_t j = 0; j < h->n_access_logs; j++) {
			kp_access_log_fmt_free(h->access_logs[j].fmt);
			free(h->access_logs[j].path);
		}
		free(h->access_logs);
		free(h->stat_prefix);
		free(h->server_name);
		free_route_table(&h->routes);
		free(l->name);
	}
	free(c->listeners);
	for (uint32_t i = 0; i < c->n_clusters; i++) {
		free(c->clusters[i].name);
		free(c->clusters[i].endpoints);
	}
	free(c->clusters);
	free(c->node_id);
	free(c->node_cluster);
	kp_stat_layout_free(&c->stats);
	if (c->bootstrap)
		protobuf_c_message_free_unpacked(c->bootstrap, NULL);
	free(c);
}

struct kp_config *kp_config_ref(struct kp_config *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void kp_config_unref(struct kp_config *c)
{
	if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(c);
}

int kp_config_compile(void *bootstrap, struct kp_config **out, char *err, size_t errlen)
{
	Bootstrap *b = bootstrap;
	struct kp_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		protobuf_c_message_free_unpacked(bootstrap, NULL);
		return K_ENOMEM;
	}
	cfg->refs = 1;
	cfg->bootstrap = b;
	struct cc cc = {err, errlen, cfg}, *c = &cc;
	int rc = only_fields(
		c, b, "",
		(const char *const[]){"node", "static_resources", "admin", "stats_flush_interval",
				      "layered_runtime", "overload_manager", "stats_config",
				      "enable_dispatcher_stats", "header_prefix", NULL});
	if (rc)
		goto fail;
	cfg->node_id = xstrdup(b->node ? b->node->id : "");
	cfg->node_cluster = xstrdup(b->node ? b->node->cluster : "");
	if (b->admin && b->admin->address) {
		rc = compile_address(c, b->admin->address, "admin.address", &cfg->admin_addr,
				     &cfg->admin_addrlen, cfg->admin_addr_str,
				     sizeof(cfg->admin_addr_str));
		if (rc)
			goto fail;
		cfg->has_admin = 1;
	}
	const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
	if (sr) {
		rc = only_fields(c, sr, "static_resources",
				 (const char *const[]){"listeners", "clusters", NULL});
		if (rc)
			goto fail;
		cfg->clusters =
			sr->n_clusters ? calloc(sr->n_clusters, sizeof(*cfg->clusters)) : NULL;
		cfg->listeners =
			sr->n_listeners ? calloc(sr->n_listeners, sizeof(*cfg->listeners)) : NULL;
		rc = K_ENOMEM;
		if ((sr->n_clusters && !cfg->clusters) || (sr->n_listeners && !cfg->listeners))
			goto fail;
		for (size_t i = 0; i < sr->n_clusters; i++) {
			rc = compile_cluster(c, sr->clusters[i], (uint32_t)i,
					     &cfg->clusters[cfg->n_clusters++]);
			if (rc)
				goto fail;
		}
		for (size_t i = 0; i < sr->n_listeners; i++) {
			rc = compile_listener(c, sr->listeners[i], (uint32_t)i,
					      &cfg->listeners[cfg->n_listeners++]);
			if (rc)
				goto fail;
		}
	}
	int s = kp_stat_layout_add_scope(&cfg->stats, "server", NULL);
	if (s < 0) {
		rc = s;
		goto fail;
	}
	cfg->server_stats = (uint32_t)s;
	*out = cfg;
	return 0;
fail:
	if (rc == K_ENOMEM)
		snprintf(err, errlen, "out of memory while compiling the configuration");
	config_free(cfg);
	*out = NULL;
	return rc;
}

int kp_config_load_file(const char *path, struct kp_config **out, char *err, size_t errlen)
{
	ProtobufCMessage *m = NULL;
	char derr[1024];
	int rc = k_pbjson_decode_file(path, &envoy__config__bootstrap__v3__bootstrap__descriptor,
				      &m, derr, sizeof(derr));
	if (rc) {
		snprintf(err, errlen, "%s", derr);
		return rc;
	}
	char cerr[1024];
	rc = kp_config_compile(m, out, cerr, sizeof(cerr));
	if (rc)
		snprintf(err, errlen, "%s: %s", path, cerr);
	return rc;
}
