/* Unit tests for the bootstrap compile step (config.c) and route matching
 * (route.c): what a user sees when a config is wrong, and which route a
 * request takes. */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "k_pbjson.h"
#include "k_test.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"

static char err[2048];

/* A bootstrap with one listener whose route_config and one cluster are
 * spliced in. */
#define TEMPLATE                                                                                   \
	"static_resources:\n"                                                                      \
	"  listeners:\n"                                                                           \
	"  - name: l\n"                                                                            \
	"    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }\n"             \
	"    filter_chains:\n"                                                                     \
	"    - filters:\n"                                                                         \
	"      - name: envoy.filters.network.http_connection_manager\n"                            \
	"        typed_config:\n"                                                                  \
	"          '@type': "                                                                      \
	"type.googleapis.com/"                                                                     \
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"      \
	"          stat_prefix: ingress\n"                                                         \
	"%s"                                                                                       \
	"          http_filters:\n"                                                                \
	"          - name: envoy.filters.http.router\n"                                            \
	"            typed_config: { '@type': "                                                    \
	"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }\n"                   \
	"  clusters:\n"                                                                            \
	"  - name: a\n"                                                                            \
	"    connect_timeout: 0.5s\n"                                                              \
	"%s"                                                                                       \
	"    load_assignment:\n"                                                                   \
	"      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "  \
	"127.0.0.1, port_value: 9080 } } } }] }]\n"                                                \
	"  - name: b\n"                                                                            \
	"    load_assignment:\n"                                                                   \
	"      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "  \
	"'::1', port_value: 9081 } } } }] }]\n"

static const char *ROUTES =
	"          route_config:\n"
	"            name: rc\n"
	"            virtual_hosts:\n"
	"            - name: exact\n"
	"              domains: ['api.example.com', 'api.example.com:8443']\n"
	"              routes:\n"
	"              - match: { path: /exact }\n"
	"                route: { cluster: a }\n"
	"              - match: { path_separated_prefix: /v1 }\n"
	"                route: { cluster: b, timeout: 0s }\n"
	"              - match: { prefix: /CI, case_sensitive: false }\n"
	"                route: { cluster: b }\n"
	"              - match: { prefix: / }\n"
	"                direct_response: { status: 403, body: { inline_string: nope } }\n"
	"            - name: suffix\n"
	"              domains: ['*.example.com']\n"
	"              routes: [{ match: { prefix: / }, route: { cluster: a } }]\n"
	"            - name: longer-suffix\n"
	"              domains: ['*.in.example.com']\n"
	"              routes: [{ match: { prefix: / }, route: { cluster: b } }]\n"
	"            - name: prefix\n"
	"              domains: ['www.*']\n"
	"              routes: [{ match: { prefix: / }, route: { cluster: b } }]\n"
	"            - name: any\n"
	"              domains: ['*']\n"
	"              routes: [{ match: { prefix: /only }, route: { cluster: a } }]\n";

static int compile(const char *routes, const char *cluster_extra, struct kp_config **out)
{
	char *yaml = NULL;
	if (asprintf(&yaml, TEMPLATE, routes, cluster_extra) < 0)
		return K_ENOMEM;
	ProtobufCMessage *m = NULL;
	int rc = k_pbjson_decode(yaml, strlen(yaml), "test.yaml",
				 &envoy__config__bootstrap__v3__bootstrap__descriptor, &m, err,
				 sizeof(err));
	free(yaml);
	if (rc)
		return rc;
	rc = kp_config_compile(m, out, err, sizeof(err));
	return rc;
}

static void test_valid_config(void)
{
	struct kp_config *c = NULL;
	K_CHECK_INT_EQ(compile(ROUTES, "", &c), 0);
	if (!c) {
		fprintf(stderr, "\t%s\n", err);
		return;
	}
	K_CHECK_INT_EQ(c->n_listeners, 1);
	K_CHECK_INT_EQ(c->n_clusters, 2);
	K_CHECK_STR_EQ(c->listeners[0].addr_str, "127.0.0.1:10000");
	K_CHECK_STR_EQ(c->clusters[1].endpoints[0].name, "[::1]:9081");
	K_CHECK_INT_EQ(c->clusters[0].connect_timeout_ms, 500);
	K_CHECK_INT_EQ(c->clusters[1].connect_timeout_ms, 5000); /* Envoy's default */
	const struct kp_hcm_cfg *h = &c->listeners[0].hcm;
	K_CHECK_INT_EQ(h->limits.max_head_bytes, 60 * 1024);
	K_CHECK_INT_EQ(h->limits.max_headers, 100);
	K_CHECK_INT_EQ(h->stream_idle_timeout_ms, 300000);
	K_CHECK(h->generate_request_id);
	kp_config_unref(c);
}

static const struct kp_route *match(const struct kp_config *c, const char *host, const char *path,
				    const char **vhost)
{
	const struct kp_vhost *vh = NULL;
	const struct kp_route *r =
		kp_route_match(&c->listeners[0].hcm.routes, (struct k_str){host, strlen(host)},
			       (struct k_str){path, strlen(path)}, &vh);
	*vhost = vh ? vh->name : "(none)";
	return r;
}

static void test_route_selection(void)
{
	struct kp_config *c = NULL;
	if (compile(ROUTES, "", &c)) {
		K_CHECK(!"compile failed");
		fprintf(stderr, "\t%s\n", err);
		return;
	}
	const char *vh;
	const struct kp_route *r;
	/* Virtual hosts: exact beats suffix, longer suffix beats shorter,
	 * port is ignored unless a domain names it, case-insensitive. */
	match(c, "API.Example.com", "/", &vh);
	K_CHECK_STR_EQ(vh, "exact");
	match(c, "api.example.com:8443", "/", &vh);
	K_CHECK_STR_EQ(vh, "exact");
	match(c, "api.example.com:9999", "/", &vh);
	K_CHECK_STR_EQ(vh, "any"); /* as Envoy: the port is part of the host */
	match(c, "x.example.com", "/", &vh);
	K_CHECK_STR_EQ(vh, "suffix");
	match(c, "x.in.example.com", "/", &vh);
	K_CHECK_STR_EQ(vh, "longer-suffix");
	match(c, "www.foo.org", "/", &vh);
	K_CHECK_STR_EQ(vh, "prefix");
	match(c, "example.com", "/", &vh);
	K_CHECK_STR_EQ(vh, "any"); /* "*.example.com" needs something before the dot */
	/* Routes: first match wins; path ignores the query; path_separated_prefix
	 * needs a '/' boundary; case_sensitive false. */
	r = match(c, "api.example.com", "/exact?x=1", &vh);
	K_CHECK(r && r->kind == KP_ROUTE_CLUSTER && r->cluster == 0);
	r = match(c, "api.example.com", "/exactly", &vh);
	K_CHECK(r && r->kind == KP_ROUTE_DIRECT_RESPONSE && r->direct_status == 403);
	r = match(c, "api.example.com", "/v1/users", &vh);
	K_CHECK(r && r->cluster == 1 && r->timeout_ms == 0);
	r = match(c, "api.example.com", "/v1", &vh);
	K_CHECK(r && r->cluster == 1);
	r = match(c, "api.example.com", "/v10", &vh);
	K_CHECK(r && r->kind == KP_ROUTE_DIRECT_RESPONSE);
	r = match(c, "api.example.com", "/ci/x", &vh);
	K_CHECK(r && r->cluster == 1);
	r = match(c, "other", "/nothing", &vh);
	K_CHECK(r == NULL);
	K_CHECK_STR_EQ(vh, "any");
	kp_config_unref(c);
}

/* Each bad config must fail with a message naming the field path and the
 * rule. */
static void expect_error(const char *routes, const char *cluster_extra, const char *want1,
			 const char *want2)
{
	struct kp_config *c = NULL;
	int rc = compile(routes, cluster_extra, &c);
	K_CHECK(rc != 0);
	K_CHECK(c == NULL);
	int ok = strstr(err, want1) && (!want2 || strstr(err, want2));
	K_CHECK(ok);
	if (!ok)
		fprintf(stderr, "\terror was: %s\n\twanted: %s / %s\n", err, want1,
			want2 ? want2 : "");
	kp_config_unref(c);
}

static void test_errors(void)
{
	expect_error(ROUTES, "    lb_policy: ROUNDROBIN\n",
		     "static_resources.clusters[0].lb_policy", "ROUNDROBIN");
	expect_error(ROUTES, "    lb_policy: MAGLEV\n",
		     "static_resources.clusters[0].lb_policy: MAGLEV is not supported yet", NULL);
	expect_error(ROUTES, "    type: EDS\n",
		     "static_resources.clusters[0].type: EDS clusters are not supported yet", NULL);
	expect_error(ROUTES, "    per_connection_buffer_limit_bytes: -5\n",
		     "per_connection_buffer_limit_bytes", NULL);
	expect_error(ROUTES, "    outlier_detection: {}\n",
		     "static_resources.clusters[0].outlier_detection: not supported", NULL);
	expect_error(
		"          route_config:\n"
		"            virtual_hosts:\n"
		"            - name: v\n"
		"              domains: ['*']\n"
		"              routes: [{ match: { prefix: / }, route: { cluster: nosuch } }]\n",
		"", "virtual_hosts[0].routes[0].route.cluster: unknown cluster \"nosuch\"", NULL);
	expect_error("          route_config:\n"
		     "            virtual_hosts:\n"
		     "            - name: v\n"
		     "              domains: ['*']\n"
		     "              routes: [{ match: { prefix: / , headers: [{ name: x, "
		     "present_match: true }] }, route: { cluster: a } }]\n",
		     "", "routes[0].match.headers: not supported by kite-proxy yet", NULL);
	expect_error("          route_config:\n"
		     "            virtual_hosts:\n"
		     "            - { name: v, domains: ['*'] }\n"
		     "            - { name: w, domains: ['*'] }\n",
		     "",
		     "virtual_hosts[1].domains[0]: only one virtual host may use the domain \"*\"",
		     NULL);
	expect_error("          route_config:\n"
		     "            virtual_hosts:\n"
		     "            - { name: v, domains: ['a*b'] }\n",
		     "", "domains[0]: \"*\" may only lead or trail a domain", NULL);
	expect_error("          max_request_headers_kb: 9000\n          route_config: {}\n", "",
		     "max_request_headers_kb: 9000 is not in [1, 8192]", NULL);
	expect_error("          rds: { route_config_name: x }\n", "",
		     "typed_config.rds: not supported by kite-proxy yet", NULL);
}

static void test_listener_errors(void)
{
	/* Istio's virtual listeners are never bound; binding one anyway would
	 * take a port the user did not ask for. */
	struct kp_config *c = NULL;
	const char *yaml =
		"static_resources:\n"
		"  listeners:\n"
		"  - name: virtual\n"
		"    address: { socket_address: { address: 127.0.0.1, port_value: 15001 } }\n"
		"    bind_to_port: false\n"
		"    filter_chains: []\n";
	ProtobufCMessage *m = NULL;
	K_CHECK_INT_EQ(k_pbjson_decode(yaml, strlen(yaml), "l.yaml",
				       &envoy__config__bootstrap__v3__bootstrap__descriptor, &m,
				       err, sizeof(err)),
		       0);
	if (!m)
		return;
	K_CHECK(kp_config_compile(m, &c, err, sizeof(err)) != 0);
	K_CHECK(strstr(err, "static_resources.listeners[0].bind_to_port: false") != NULL);
}

static void test_error_mentions_typo(void)
{
	/* Unknown fields are rejected by the decoder with the path. */
	expect_error(ROUTES, "    conect_timeout: 1s\n", "static_resources.clusters[0]",
		     "conect_timeout");
}

K_TEST_MAIN(test_valid_config, test_route_selection, test_errors, test_listener_errors,
	    test_error_mentions_typo)
