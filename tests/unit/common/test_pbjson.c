/* test_pbjson.c — YAML/JSON <-> protobuf through k_pbjson: what a user of
 * `kite-proxy -c` and of /config_dump sees. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

#include "k_pbjson.h"
#include "k_test.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap Bootstrap;
typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager Hcm;

#define BOOTSTRAP (&envoy__config__bootstrap__v3__bootstrap__descriptor)
#define CLUSTER	  (&envoy__config__cluster__v3__cluster__descriptor)
#define HCM                                                                                        \
	(&envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor)

static char errbuf[1024];

static ProtobufCMessage *dec(const ProtobufCMessageDescriptor *d, const char *text)
{
	ProtobufCMessage *m = NULL;
	int rc = k_pbjson_decode(text, strlen(text), "x.yaml", d, &m, errbuf, sizeof(errbuf));
	if (rc) {
		fprintf(stderr, "\tunexpected decode failure: %s\n", errbuf);
		return NULL;
	}
	return m;
}

/* Decoding must fail with exactly this message (and leave nothing). */
static void expect_err(const ProtobufCMessageDescriptor *d, const char *text, const char *want)
{
	ProtobufCMessage *m = (ProtobufCMessage *)1;
	int rc = k_pbjson_decode(text, strlen(text), "x.yaml", d, &m, errbuf, sizeof(errbuf));
	K_CHECK_INT_EQ(rc, K_EINVAL);
	K_CHECK(m == NULL);
	K_CHECK_STR_EQ(errbuf, want);
	if (m && m != (ProtobufCMessage *)1)
		protobuf_c_message_free_unpacked(m, NULL);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(*len + 1);
	protobuf_c_message_pack(m, buf);
	return buf;
}

static int same_bytes(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t la, lb;
	uint8_t *pa = pack(a, &la), *pb = pack(b, &lb);
	int same = la == lb && memcmp(pa, pb, la) == 0;
	free(pa);
	free(pb);
	return same;
}

/* encode, decode again, compare the wire bytes */
static void check_roundtrip(const ProtobufCMessage *m)
{
	char *json = k_pbjson_encode(m, 2);
	ProtobufCMessage *m2 = NULL;

	K_CHECK(json != NULL);
	if (!json)
		return;
	K_CHECK_INT_EQ(k_pbjson_decode(json, strlen(json), "<enc>", m->descriptor, &m2, errbuf,
				       sizeof(errbuf)),
		       0);
	if (m2) {
		K_CHECK(same_bytes(m, m2));
		protobuf_c_message_free_unpacked(m2, NULL);
	} else {
		fprintf(stderr, "\tre-decode failed: %s\n%s\n", errbuf, json);
	}
	free(json);
}

static const char bootstrap_yaml[] =
	"# a sidecar-ish bootstrap\n"
	"node:\n"
	"  id: sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local\n"
	"  cluster: reviews\n"
	"  metadata:\n"
	"    ISTIO_VERSION: \"1.20\"\n"
	"    LABELS: {app: reviews, version: v1}\n"
	"    INTERCEPTION_MODE: REDIRECT\n"
	"    replicas: 3\n"
	"admin:\n"
	"  address:\n"
	"    socket_address: {address: 127.0.0.1, port_value: 15000}\n"
	"stats_flush_interval: 5s\n"
	"static_resources:\n"
	"  listeners:\n"
	"  - name: virtualInbound\n"
	"    address:\n"
	"      socket_address:\n"
	"        address: 0.0.0.0\n"
	"        port_value: 15006\n"
	"    filter_chains:\n"
	"    - filters:\n"
	"      - name: envoy.filters.network.http_connection_manager\n"
	"        typed_config:\n"
	"          \"@type\": type.googleapis.com/envoy.extensions.filters."
	"network.http_connection_manager.v3.HttpConnectionManager\n"
	"          stat_prefix: inbound_0.0.0.0_15006\n"
	"          codec_type: AUTO\n"
	"          route_config:\n"
	"            name: inbound|9080||\n"
	"            virtual_hosts:\n"
	"            - name: backend\n"
	"              domains: [\"*\"]\n"
	"              routes:\n"
	"              - match: {prefix: /}\n"
	"                route:\n"
	"                  cluster: 8080\n"
	"                  timeout: 15s\n"
	"          http_filters:\n"
	"          - name: envoy.filters.http.router\n"
	"            typed_config:\n"
	"              \"@type\": type.googleapis.com/envoy.extensions.filters."
	"http.router.v3.Router\n"
	"  clusters:\n"
	"  - name: backend\n"
	"    type: STRICT_DNS\n"
	"    connect_timeout: 0.25s\n"
	"    lb_policy: LEAST_REQUEST\n"
	"    per_connection_buffer_limit_bytes: 32768\n"
	"    circuit_breakers:\n"
	"      thresholds:\n"
	"      - max_connections: 100\n"
	"        max_retries: 3\n"
	"    load_assignment:\n"
	"      cluster_name: backend\n"
	"      endpoints:\n"
	"      - lb_endpoints:\n"
	"        - endpoint:\n"
	"            address:\n"
	"              socket_address: {address: backend.local, port_value: "
	"8080}\n";

/* The same configuration as JSON with the lowerCamelCase names. */
static const char bootstrap_json[] =
	"{\n"
	" \"node\": {\n"
	"  \"id\": "
	"\"sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local\",\n"
	"  \"cluster\": \"reviews\",\n"
	"  \"metadata\": {\"ISTIO_VERSION\": \"1.20\",\n"
	"   \"LABELS\": {\"app\": \"reviews\", \"version\": \"v1\"},\n"
	"   \"INTERCEPTION_MODE\": \"REDIRECT\", \"replicas\": 3}\n"
	" },\n"
	" \"admin\": {\"address\": {\"socketAddress\": {\"address\": "
	"\"127.0.0.1\", \"portValue\": 15000}}},\n"
	" \"statsFlushInterval\": \"5s\",\n"
	" \"staticResources\": {\n"
	"  \"listeners\": [{\n"
	"   \"name\": \"virtualInbound\",\n"
	"   \"address\": {\"socketAddress\": {\"address\": \"0.0.0.0\", "
	"\"portValue\": 15006}},\n"
	"   \"filterChains\": [{\"filters\": [{\n"
	"    \"name\": \"envoy.filters.network.http_connection_manager\",\n"
	"    \"typedConfig\": {\n"
	"     \"@type\": "
	"\"type.googleapis.com/envoy.extensions.filters.network."
	"http_connection_manager.v3.HttpConnectionManager\",\n"
	"     \"statPrefix\": \"inbound_0.0.0.0_15006\",\n"
	"     \"codecType\": \"AUTO\",\n"
	"     \"routeConfig\": {\"name\": \"inbound|9080||\", "
	"\"virtualHosts\": [{\n"
	"      \"name\": \"backend\", \"domains\": [\"*\"],\n"
	"      \"routes\": [{\"match\": {\"prefix\": \"/\"},\n"
	"                  \"route\": {\"cluster\": \"8080\", \"timeout\": "
	"\"15s\"}}]}]},\n"
	"     \"httpFilters\": [{\"name\": \"envoy.filters.http.router\",\n"
	"      \"typedConfig\": {\"@type\": \"type.googleapis.com/envoy."
	"extensions.filters.http.router.v3.Router\"}}]\n"
	"    }}]}]\n"
	"  }],\n"
	"  \"clusters\": [{\n"
	"   \"name\": \"backend\", \"type\": \"STRICT_DNS\", "
	"\"connectTimeout\": "
	"\"0.25s\",\n"
	"   \"lbPolicy\": \"LEAST_REQUEST\", "
	"\"perConnectionBufferLimitBytes\": "
	"\"32768\",\n"
	"   \"circuitBreakers\": {\"thresholds\": [{\"maxConnections\": 100, "
	"\"maxRetries\": 3}]},\n"
	"   \"loadAssignment\": {\"clusterName\": \"backend\", \"endpoints\": "
	"[{\"lbEndpoints\": [\n"
	"    {\"endpoint\": {\"address\": {\"socketAddress\": {\"address\": "
	"\"backend.local\", \"portValue\": 8080}}}}]}]}\n"
	"  }]\n"
	" }\n"
	"}\n";

static void test_bootstrap_yaml(void)
{
	Bootstrap *b = (Bootstrap *)dec(BOOTSTRAP, bootstrap_yaml);
	K_CHECK(b != NULL);
	if (!b)
		return;
	K_CHECK_STR_EQ(b->node->cluster, "reviews");
	K_CHECK_INT_EQ(b->admin->address->socket_address->port_value, 15000);
	K_CHECK_INT_EQ(b->stats_flush_interval->seconds, 5);

	Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
	K_CHECK_INT_EQ(sr->n_listeners, 1);
	K_CHECK_INT_EQ(sr->n_clusters, 1);
	Cluster *c = sr->clusters[0];
	K_CHECK_STR_EQ(c->name, "backend");
	K_CHECK_INT_EQ(c->cluster_discovery_type_case,
		       ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE);
	K_CHECK_INT_EQ(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS);
	K_CHECK_INT_EQ(c->connect_timeout->seconds, 0);
	K_CHECK_INT_EQ(c->connect_timeout->nanos, 250000000);
	K_CHECK_INT_EQ(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
	/* a wrapper is present even when it holds its default */
	K_CHECK(c->per_connection_buffer_limit_bytes != NULL);
	K_CHECK_INT_EQ(c->per_connection_buffer_limit_bytes->value, 32768);
	K_CHECK_INT_EQ(c->circuit_breakers->thresholds[0]->max_retries->value, 3);
	K_CHECK_STR_EQ(c->load_assignment->endpoints[0]
			       ->lb_endpoints[0]
			       ->endpoint->address->socket_address->address,
		       "backend.local");

	/* Struct from YAML: quoted "1.20" stays a string, plain 3 a number */
	Google__Protobuf__Struct *md = b->node->metadata;
	K_CHECK_INT_EQ(md->n_fields, 4);
	K_CHECK_STR_EQ(md->fields[0]->key, "ISTIO_VERSION");
	K_CHECK_INT_EQ(md->fields[0]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
	K_CHECK_STR_EQ(md->fields[0]->value->string_value, "1.20");
	K_CHECK_INT_EQ(md->fields[1]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
	K_CHECK_INT_EQ(md->fields[3]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE);
	K_CHECK(md->fields[3]->value->number_value == 3.0);

	/* typed_config: an Any packed from the fields beside "@type" */
	Envoy__Config__Listener__V3__Listener *l = sr->listeners[0];
	Envoy__Config__Listener__V3__Filter *f = l->filter_chains[0]->filters[0];
	K_CHECK_INT_EQ(f->config_type_case,
		       ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG);
	K_CHECK_STR_EQ(f->typed_config->type_url,
		       "type.googleapis.com/envoy.extensions.filters.network."
		       "http_connection_manager.v3.HttpConnectionManager");
	ProtobufCMessage *inner = NULL;
	K_CHECK_INT_EQ(k_pb_any_unpack(f->typed_config->type_url, f->typed_config->value.data,
				       f->typed_config->value.len, HCM, &inner, errbuf,
				       sizeof(errbuf)),
		       0);
	if (inner) {
		Hcm *h = (Hcm *)inner;
		K_CHECK_STR_EQ(h->stat_prefix, "inbound_0.0.0.0_15006");
		K_CHECK_INT_EQ(h->n_http_filters, 1);
		/* a plain scalar where a string is expected is that string */
		K_CHECK_STR_EQ(h->route_config->virtual_hosts[0]->routes[0]->route->cluster,
			       "8080");
		K_CHECK_STR_EQ(h->route_config->name, "inbound|9080||");
		protobuf_c_message_free_unpacked(inner, NULL);
	}
	/* asking for the wrong type is refused */
	K_CHECK_INT_EQ(k_pb_any_unpack(f->typed_config->type_url, f->typed_config->value.data,
				       f->typed_config->value.len, CLUSTER, &inner, errbuf,
				       sizeof(errbuf)),
		       K_EINVAL);
	K_CHECK(inner == NULL);
	K_CHECK_INT_EQ(k_pb_any_unpack("type.googleapis.com/no.Such", NULL, 0, NULL, &inner, errbuf,
				       sizeof(errbuf)),
		       K_ENOENT);
	K_CHECK_STR_EQ(errbuf, "unknown type URL \"type.googleapis.com/no.Such\"");

	/* the JSON spelling with camelCase names is the same message */
	ProtobufCMessage *j = dec(BOOTSTRAP, bootstrap_json);
	K_CHECK(j != NULL);
	if (j) {
		K_CHECK(same_bytes(&b->base, j));
		protobuf_c_message_free_unpacked(j, NULL);
	}
	/* Windows line endings read the same */
	size_t n = strlen(bootstrap_yaml), o = 0;
	char *crlf = malloc(2 * n + 1);
	for (size_t i = 0; i < n; i++) {
		if (bootstrap_yaml[i] == '\n')
			crlf[o++] = '\r';
		crlf[o++] = bootstrap_yaml[i];
	}
	crlf[o] = '\0';
	ProtobufCMessage *w = dec(BOOTSTRAP, crlf);
	K_CHECK(w != NULL);
	if (w) {
		K_CHECK(same_bytes(&b->base, w));
		protobuf_c_message_free_unpacked(w, NULL);
	}
	free(crlf);
	check_roundtrip(&b->base);
	protobuf_c_message_free_unpacked(&b->base, NULL);
}

static void test_file(void)
{
	char path[] = "/tmp/test_pbjson_XXXXXX";
	int fd = mkstemp(path);
	ProtobufCMessage *m = NULL;

	K_CHECK(fd >= 0);
	if (fd < 0)
		return;
	K_CHECK(write(fd, bootstrap_yaml, strlen(bootstrap_yaml)) ==
		(ssize_t)strlen(bootstrap_yaml));
	close(fd);
	K_CHECK_INT_EQ(k_pbjson_decode_file(path, BOOTSTRAP, &m, errbuf, sizeof(errbuf)), 0);
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	unlink(path);

	K_CHECK_INT_EQ(k_pbjson_decode_file("/nonexistent/kite.yaml", BOOTSTRAP, &m, errbuf,
					    sizeof(errbuf)),
		       K_EIO);
	K_CHECK(m == NULL);
	K_CHECK_STR_EQ(errbuf, "/nonexistent/kite.yaml: cannot read: No such "
			       "file or directory");
}

static void test_errors(void)
{
	expect_err(BOOTSTRAP,
		   "static_resources:\n"
		   "  clusters:\n"
		   "  - name: a\n"
		   "    lb_policy: ROUNDROBIN\n",
		   "x.yaml:4: static_resources.clusters[0].lb_policy: unknown "
		   "enum value \"ROUNDROBIN\" "
		   "(envoy.config.cluster.v3.Cluster.LbPolicy), did you mean "
		   "\"ROUND_ROBIN\"?");
	expect_err(BOOTSTRAP,
		   "static_resources:\n"
		   "  listeners:\n"
		   "  - name: a\n"
		   "    adress: {socket_address: {port_value: 80}}\n",
		   "x.yaml:4: static_resources.listeners[0].adress: unknown "
		   "field (envoy.config.listener.v3.Listener has no field "
		   "\"adress\"), did you mean \"address\"?");
	expect_err(BOOTSTRAP, "bogus: 1\n",
		   "x.yaml:1: bogus: unknown field "
		   "(envoy.config.bootstrap.v3.Bootstrap has no field "
		   "\"bogus\")");
	expect_err(BOOTSTRAP,
		   "static_resources:\n"
		   "  clusters:\n"
		   "  - name: a\n"
		   "    connect_timeout: 5\n",
		   "x.yaml:4: static_resources.clusters[0].connect_timeout: "
		   "invalid duration \"5\" (expected e.g. \"5s\", \"0.25s\")");
	expect_err(BOOTSTRAP,
		   "{\"admin\": {\"address\": {\"socketAddress\":\n"
		   "  {\"portValue\": \"5000000000\"}}}}",
		   "x.yaml:2: admin.address.socketAddress.portValue: "
		   "5000000000 out of range for uint32");
	expect_err(BOOTSTRAP,
		   "admin:\n  address:\n    socket_address:\n"
		   "      port_value: -1\n",
		   "x.yaml:4: admin.address.socket_address.port_value: -1 out "
		   "of range for uint32");
	expect_err(BOOTSTRAP,
		   "admin:\n  address:\n    socket_address:\n"
		   "      port_value: 1.5\n",
		   "x.yaml:4: admin.address.socket_address.port_value: "
		   "expected an integer, got \"1.5\"");
	expect_err(BOOTSTRAP,
		   "memory_allocator_manager:\n"
		   "  bytes_to_release: \"18446744073709551616\"\n",
		   "x.yaml:2: memory_allocator_manager.bytes_to_release: "
		   "18446744073709551616 out of range for uint64");
	expect_err(BOOTSTRAP, "static_resources:\n  clusters: {name: a}\n",
		   "x.yaml:2: static_resources.clusters: expected a list, got "
		   "a mapping");
	expect_err(BOOTSTRAP, "static_resources: [1, 2]\n",
		   "x.yaml:1: static_resources: expected a mapping, got a "
		   "sequence");
	expect_err(BOOTSTRAP, "node:\n  id: [a]\n",
		   "x.yaml:2: node.id: expected a string, got a sequence");
	expect_err(BOOTSTRAP, "enable_dispatcher_stats: yes\n",
		   "x.yaml:1: enable_dispatcher_stats: expected true or "
		   "false, got \"yes\"");
	expect_err(BOOTSTRAP,
		   "static_resources:\n"
		   "  clusters:\n"
		   "  - name: a\n"
		   "    type: STATIC\n"
		   "    cluster_type: {name: envoy.clusters.aggregate}\n",
		   "x.yaml:5: static_resources.clusters[0].cluster_type: two "
		   "members of a oneof set: type, cluster_type");
	expect_err(BOOTSTRAP,
		   "static_resources:\n"
		   "  clusters:\n"
		   "  - name: a\n"
		   "    connectTimeout: 1s\n"
		   "    connect_timeout: 2s\n",
		   "x.yaml:5: static_resources.clusters[0].connect_timeout: "
		   "field set twice (also as \"connectTimeout\")");
	expect_err(BOOTSTRAP,
		   "static_resources:\n"
		   "  listeners:\n"
		   "  - name: l\n"
		   "    filter_chains:\n"
		   "    - filters:\n"
		   "      - name: x\n"
		   "        typed_config:\n"
		   "          \"@type\": type.googleapis.com/foo\n",
		   "x.yaml:8: static_resources.listeners[0].filter_chains[0]."
		   "filters[0].typed_config: @type \"type.googleapis.com/foo\" "
		   "is not a known type");
	/* errors inside an Any name the packed message's fields */
	expect_err(BOOTSTRAP,
		   "static_resources:\n"
		   "  listeners:\n"
		   "  - filter_chains:\n"
		   "    - filters:\n"
		   "      - typed_config:\n"
		   "          \"@type\": type.googleapis.com/envoy.extensions."
		   "filters.network.http_connection_manager.v3."
		   "HttpConnectionManager\n"
		   "          stat_prefx: x\n",
		   "x.yaml:7: static_resources.listeners[0].filter_chains[0]."
		   "filters[0].typed_config.stat_prefx: unknown field "
		   "(envoy.extensions.filters.network.http_connection_manager."
		   "v3.HttpConnectionManager has no field \"stat_prefx\"), did "
		   "you mean \"stat_prefix\"?");
	expect_err(BOOTSTRAP,
		   "static_resources:\n"
		   "  listeners:\n"
		   "  - filter_chains:\n"
		   "    - filters:\n"
		   "      - typed_config: {stat_prefix: x}\n",
		   "x.yaml:5: static_resources.listeners[0].filter_chains[0]."
		   "filters[0].typed_config: missing \"@type\" in a "
		   "google.protobuf.Any");
	expect_err(BOOTSTRAP, "static_resources:\n  clusters:\n  - null\n",
		   "x.yaml:3: static_resources.clusters[0]: null is not "
		   "allowed in a list");
	expect_err(BOOTSTRAP, "node:\n  metadata: [1]\n",
		   "x.yaml:2: node.metadata: expected a mapping, got a "
		   "sequence");

	/* YAML trouble: syntax, document count, alias bombs */
	expect_err(BOOTSTRAP, "admin:\n  address: [1,\nnode: 2\n",
		   "x.yaml:3: YAML syntax error: wrongly indented flow "
		   "sequence");
	expect_err(BOOTSTRAP, "node: {id: a}\nnode: {id: b}\n",
		   "x.yaml:2: YAML syntax error: duplicate key");
	expect_err(BOOTSTRAP, "node: *nope\n", "x.yaml:1: YAML syntax error: invalid alias");
	expect_err(BOOTSTRAP, "node: {id: a}\n---\nadmin: {}\n",
		   "x.yaml:3: more than one document (expected exactly one)");
	expect_err(BOOTSTRAP, "", "x.yaml:1: empty document");
	expect_err(BOOTSTRAP, "# only a comment\n", "x.yaml:1: empty document");
	expect_err(BOOTSTRAP, "[]",
		   "x.yaml:1: expected a mapping, got a "
		   "sequence");

	expect_err(BOOTSTRAP, "node: {id: \"caf\xc3\xa9\"}\nadmin: {x: \"\xff\"}\n",
		   "x.yaml:2: invalid UTF-8 (byte 0xff at offset 32)");
	/* YAML's forbidden characters; libfyaml would trip over a NUL */
	ProtobufCMessage *nul = (ProtobufCMessage *)1;
	K_CHECK_INT_EQ(k_pbjson_decode("node:\n  id: a\0b\n", 15, "x.yaml", BOOTSTRAP, &nul, errbuf,
				       sizeof(errbuf)),
		       K_EINVAL);
	K_CHECK(nul == NULL);
	K_CHECK_STR_EQ(errbuf, "x.yaml:2: character U+0000 (offset 13) is not allowed in YAML");
	expect_err(BOOTSTRAP, "node: {id: \"\xc2\x9b\"}\n",
		   "x.yaml:1: character U+009B (offset 12) is not allowed in YAML");
	expect_err(BOOTSTRAP, "node: &n {id: a}\nadmin: *n/id\n",
		   "x.yaml:2: alias \"*n/id\": alias paths are not supported");

	/* a tab before a block indicator (libfyaml would crash on it) */
	expect_err(BOOTSTRAP, "node:\n  ? id:\t:\n",
		   "x.yaml:2: YAML syntax error: tab in indentation (use spaces)");
	/* a "billion laughs" document is refused before it is expanded */
	char bomb[2048];
	size_t o = (size_t)snprintf(bomb, sizeof(bomb), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 9; i++) {
		o += (size_t)snprintf(bomb + o, sizeof(bomb) - o, "a%d: &a%d [", i, i);
		for (int k = 0; k < 10; k++)
			o += (size_t)snprintf(bomb + o, sizeof(bomb) - o, "%s*a%d", k ? ", " : "",
					      i - 1);
		o += (size_t)snprintf(bomb + o, sizeof(bomb) - o, "]\n");
	}
	expect_err(BOOTSTRAP, bomb,
		   "x.yaml:1: document too large or deep once its aliases are "
		   "expanded");

	/* an unterminated buffer with no NUL: the length is what counts */
	ProtobufCMessage *m = NULL;
	K_CHECK_INT_EQ(k_pbjson_decode("node: {id: a}XXXX", 13, "x", BOOTSTRAP, &m, errbuf,
				       sizeof(errbuf)),
		       0);
	if (m) {
		K_CHECK_STR_EQ(((Bootstrap *)m)->node->id, "a");
		protobuf_c_message_free_unpacked(m, NULL);
	}
	/* a tiny error buffer still gets a terminated prefix */
	char small[12];
	K_CHECK_INT_EQ(
		k_pbjson_decode("bogus: 1", 8, "x.yaml", BOOTSTRAP, &m, small, sizeof(small)),
		K_EINVAL);
	K_CHECK_STR_EQ(small, "x.yaml:1: b");
}

static void test_yaml_features(void)
{
	/* anchors, aliases and merge keys; an anchor must sit on something
	 * the message has, so a "defaults" key of its own is an error */
	expect_err(BOOTSTRAP,
		   "defaults: &defaults\n"
		   "  connect_timeout: 1s\n"
		   "static_resources:\n"
		   "  clusters:\n"
		   "  - <<: *defaults\n"
		   "    name: one\n",
		   "x.yaml:1: defaults: unknown field "
		   "(envoy.config.bootstrap.v3.Bootstrap has no field "
		   "\"defaults\")");

	Bootstrap *b;
	b = (Bootstrap *)dec(BOOTSTRAP, "static_resources:\n"
					"  clusters:\n"
					"  - &base\n"
					"    name: one\n"
					"    connect_timeout: 1s\n"
					"    type: STATIC\n"
					"  - <<: *base\n"
					"    name: two\n"
					"  - *base\n");
	K_CHECK(b != NULL);
	if (b) {
		Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
		K_CHECK_INT_EQ(sr->n_clusters, 3);
		K_CHECK_STR_EQ(sr->clusters[1]->name, "two");
		K_CHECK_INT_EQ(sr->clusters[1]->connect_timeout->seconds, 1);
		K_CHECK_STR_EQ(sr->clusters[2]->name, "one");
		protobuf_c_message_free_unpacked(&b->base, NULL);
	}

	/* null, ~ and an empty value all mean "default" */
	b = (Bootstrap *)dec(BOOTSTRAP, "node: ~\nadmin: null\n"
					"static_resources:\n  clusters:\n");
	K_CHECK(b != NULL);
	if (b) {
		K_CHECK(b->node == NULL && b->admin == NULL);
		K_CHECK(b->static_resources != NULL);
		K_CHECK_INT_EQ(b->static_resources->n_clusters, 0);
		protobuf_c_message_free_unpacked(&b->base, NULL);
	}

	/* quoted "true" is a string; !!str too */
	b = (Bootstrap *)dec(BOOTSTRAP, "node: {id: \"123\", cluster: !!str true}\n"
					"header_prefix: 'null'\n");
	K_CHECK(b != NULL);
	if (b) {
		K_CHECK_STR_EQ(b->node->id, "123");
		K_CHECK_STR_EQ(b->node->cluster, "true");
		K_CHECK_STR_EQ(b->header_prefix, "null");
		protobuf_c_message_free_unpacked(&b->base, NULL);
	}

	/* single-quoted escapes and line folding */
	b = (Bootstrap *)dec(BOOTSTRAP, "node:\n"
					"  id: 'it''s ''''''''''''''''''''\n"
					"     folded  \n"
					"\n"
					"     twice'\n");
	K_CHECK(b != NULL);
	if (b) {
		K_CHECK_STR_EQ(b->node->id, "it's '''''''''' folded\ntwice");
		protobuf_c_message_free_unpacked(&b->base, NULL);
	}

	/* enums by number; integers from strings and exponents */
	Cluster *c = (Cluster *)dec(CLUSTER, "lb_policy: 1\n"
					     "per_connection_buffer_limit_bytes: \"1e3\"\n"
					     "max_requests_per_connection: '7'\n");
	K_CHECK(c != NULL);
	if (c) {
		K_CHECK_INT_EQ(c->lb_policy, 1);
		K_CHECK_INT_EQ(c->per_connection_buffer_limit_bytes->value, 1000);
		K_CHECK_INT_EQ(c->max_requests_per_connection->value, 7);
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
}

static void test_wkt(void)
{
	const ProtobufCMessageDescriptor *dur = &google__protobuf__duration__descriptor;
	struct {
		const char *in;
		int64_t s;
		int32_t ns;
		const char *out;
	} durs[] = {
		{"1.5s", 1, 500000000, "\"1.500s\""},
		{"\"-0.000000001s\"", 0, -1, "\"-0.000000001s\""},
		{"0s", 0, 0, "\"0s\""},
		{"315576000000s", 315576000000LL, 0, "\"315576000000s\""},
		{"-2.000100s", -2, -100000, "\"-2.000100s\""},
	};
	for (size_t i = 0; i < K_ARRAY_LEN(durs); i++) {
		Google__Protobuf__Duration *d = (Google__Protobuf__Duration *)dec(dur, durs[i].in);
		K_CHECK(d != NULL);
		if (!d)
			continue;
		K_CHECK_INT_EQ(d->seconds, durs[i].s);
		K_CHECK_INT_EQ(d->nanos, durs[i].ns);
		char *j = k_pbjson_encode(&d->base, 0);
		K_CHECK_STR_EQ(j, durs[i].out);
		free(j);
		protobuf_c_message_free_unpacked(&d->base, NULL);
	}
	expect_err(dur, "1.5",
		   "x.yaml:1: invalid duration \"1.5\" (expected "
		   "e.g. \"5s\", \"0.25s\")");
	expect_err(dur, "1.0000000001s",
		   "x.yaml:1: invalid duration \"1.0000000001s\" (expected "
		   "e.g. \"5s\", \"0.25s\")");
	expect_err(dur, "315576000001s", "x.yaml:1: duration \"315576000001s\" out of range");

	Google__Protobuf__Timestamp *ts = (Google__Protobuf__Timestamp *)dec(
		&google__protobuf__timestamp__descriptor, "2024-02-29T12:30:00.25+01:00");
	K_CHECK(ts != NULL);
	if (ts) {
		K_CHECK_INT_EQ(ts->seconds, 1709206200);
		K_CHECK_INT_EQ(ts->nanos, 250000000);
		char *j = k_pbjson_encode(&ts->base, 0);
		K_CHECK_STR_EQ(j, "\"2024-02-29T11:30:00.250Z\"");
		free(j);
		protobuf_c_message_free_unpacked(&ts->base, NULL);
	}
	expect_err(&google__protobuf__timestamp__descriptor, "2023-02-29T00:00:00Z",
		   "x.yaml:1: invalid timestamp \"2023-02-29T00:00:00Z\" "
		   "(expected RFC 3339, e.g. \"2024-01-31T12:00:00Z\")");

	/* wrappers are their bare value */
	Google__Protobuf__BytesValue *bv = (Google__Protobuf__BytesValue *)dec(
		&google__protobuf__bytes_value__descriptor, "aGk_-w");
	K_CHECK(bv != NULL);
	if (bv) {
		K_CHECK_INT_EQ(bv->value.len, 4);
		K_CHECK(memcmp(bv->value.data, "hi?\xfb", 4) == 0);
		char *j = k_pbjson_encode(&bv->base, 0);
		K_CHECK_STR_EQ(j, "\"aGk/+w==\"");
		free(j);
		protobuf_c_message_free_unpacked(&bv->base, NULL);
	}
	expect_err(&google__protobuf__bytes_value__descriptor, "\"a===\"",
		   "x.yaml:1: expected base64 bytes, got \"a===\"");
	Google__Protobuf__DoubleValue *dv = (Google__Protobuf__DoubleValue *)dec(
		&google__protobuf__double_value__descriptor, "\"-Infinity\"");
	K_CHECK(dv && isinf(dv->value) && dv->value < 0);
	if (dv)
		protobuf_c_message_free_unpacked(&dv->base, NULL);
	Google__Protobuf__Int64Value *iv = (Google__Protobuf__Int64Value *)dec(
		&google__protobuf__int64_value__descriptor, "\"-9223372036854775808\"");
	K_CHECK(iv != NULL);
	if (iv) {
		K_CHECK(iv->value == INT64_MIN);
		char *j = k_pbjson_encode(&iv->base, 0);
		K_CHECK_STR_EQ(j, "\"-9223372036854775808\"");
		free(j);
		protobuf_c_message_free_unpacked(&iv->base, NULL);
	}

	/* Any holding a well-known type uses "value" */
	Google__Protobuf__Any *any = (Google__Protobuf__Any *)dec(
		&google__protobuf__any__descriptor,
		"{\"@type\": \"type.googleapis.com/google.protobuf.Duration\", "
		"\"value\": \"1.5s\"}");
	K_CHECK(any != NULL);
	if (any) {
		K_CHECK_STR_EQ(any->type_url, "type.googleapis.com/"
					      "google.protobuf.Duration");
		char *j = k_pbjson_encode(&any->base, 0);
		K_CHECK_STR_EQ(j, "{\"@type\":\"type.googleapis.com/"
				  "google.protobuf.Duration\",\"value\":"
				  "\"1.500s\"}");
		free(j);
		check_roundtrip(&any->base);
		protobuf_c_message_free_unpacked(&any->base, NULL);
	}
	expect_err(&google__protobuf__any__descriptor,
		   "\"@type\": type.googleapis.com/google.protobuf.Duration\n"
		   "seconds: 1\n",
		   "x.yaml:2: seconds: unknown field (an Any holding "
		   "google.protobuf.Duration has only \"@type\" and "
		   "\"value\")");

	/* Struct: any JSON, encoded back in order */
	Google__Protobuf__Struct *st = (Google__Protobuf__Struct *)dec(
		&google__protobuf__struct__descriptor,
		"a: 1\nb: [x, \"2\", true, null, 1.5e3]\nc: {d: ~}\n");
	K_CHECK(st != NULL);
	if (st) {
		char *j = k_pbjson_encode(&st->base, 0);
		K_CHECK_STR_EQ(j, "{\"a\":1,\"b\":[\"x\",\"2\",true,null,1500],"
				  "\"c\":{\"d\":null}}");
		free(j);
		check_roundtrip(&st->base);
		protobuf_c_message_free_unpacked(&st->base, NULL);
	}
}

static void test_maps(void)
{
	Cluster *c = (Cluster *)dec(CLUSTER,
				    "name: c\n"
				    "metadata:\n"
				    "  filter_metadata:\n"
				    "    istio: {config: /apis/v1, weight: 2}\n"
				    "    envoy.lb: {canary: true}\n"
				    "typed_extension_protocol_options:\n"
				    "  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
				    "    \"@type\": type.googleapis.com/envoy.extensions.upstreams."
				    "http.v3.HttpProtocolOptions\n"
				    "    explicit_http_config: {http2_protocol_options: {}}\n");
	K_CHECK(c != NULL);
	if (!c)
		return;
	Envoy__Config__Core__V3__Metadata *md = c->metadata;
	K_CHECK_INT_EQ(md->n_filter_metadata, 2);
	K_CHECK_STR_EQ(md->filter_metadata[1]->key, "envoy.lb");
	K_CHECK_INT_EQ(md->filter_metadata[1]->value->n_fields, 1);
	K_CHECK_INT_EQ(c->n_typed_extension_protocol_options, 1);
	K_CHECK_STR_EQ(c->typed_extension_protocol_options[0]->value->type_url,
		       "type.googleapis.com/envoy.extensions.upstreams.http.v3."
		       "HttpProtocolOptions");

	char *j = k_pbjson_encode(&c->base, 0);
	K_CHECK_STR_EQ(j, "{\"name\":\"c\",\"metadata\":{\"filter_metadata\":{"
			  "\"istio\":{\"config\":\"/apis/v1\",\"weight\":2},"
			  "\"envoy.lb\":{\"canary\":true}}},"
			  "\"typed_extension_protocol_options\":{"
			  "\"envoy.extensions.upstreams.http.v3."
			  "HttpProtocolOptions\":{\"@type\":\"type.googleapis.com/"
			  "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
			  "\",\"explicit_http_config\":{\"http2_protocol_options\":"
			  "{}}}}}");
	free(j);
	check_roundtrip(&c->base);
	protobuf_c_message_free_unpacked(&c->base, NULL);

	expect_err(CLUSTER, "metadata:\n  filter_metadata:\n    istio: [1]\n",
		   "x.yaml:3: metadata.filter_metadata[\"istio\"]: expected a "
		   "mapping, got a sequence");
}

static void test_encoder(void)
{
	Bootstrap b = ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__INIT;
	Envoy__Config__Core__V3__Node node = ENVOY__CONFIG__CORE__V3__NODE__INIT;
	Envoy__Config__Bootstrap__V3__MemoryAllocatorManager mam =
		ENVOY__CONFIG__BOOTSTRAP__V3__MEMORY_ALLOCATOR_MANAGER__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	Envoy__Config__Core__V3__TypedExtensionConfig tec =
		ENVOY__CONFIG__CORE__V3__TYPED_EXTENSION_CONFIG__INIT;
	Envoy__Config__Core__V3__TypedExtensionConfig *tecs[] = {&tec};
	uint8_t raw[] = {0x08, 0x96, 0x01};
	char id[] = "q\"b\\s\n\x01\x7f caf\xc3\xa9 \xff";

	node.id = id;
	b.node = &node;
	mam.bytes_to_release = 18446744073709551615ULL;
	b.memory_allocator_manager = &mam;
	/* an Any of a type we do not know stays bytes */
	any.type_url = "type.googleapis.com/acme.Unknown";
	any.value.data = raw;
	any.value.len = sizeof(raw);
	tec.name = "ext";
	tec.typed_config = &any;
	b.n_bootstrap_extensions = 1;
	b.bootstrap_extensions = tecs;
	b.enable_dispatcher_stats = 1;

	char *j = k_pbjson_encode(&b.base, 0);
	K_CHECK_STR_EQ(j, "{\"node\":{\"id\":\"q\\\"b\\\\s\\n\\u0001\\u007f caf\xc3"
			  "\xa9 \\ufffd\"},\"enable_dispatcher_stats\":true,"
			  "\"bootstrap_extensions\":[{\"name\":\"ext\","
			  "\"typed_config\":{\"@type\":\"type.googleapis.com/acme."
			  "Unknown\",\"value\":\"CJYB\"}}],"
			  "\"memory_allocator_manager\":{\"bytes_to_release\":"
			  "\"18446744073709551615\"}}");
	free(j);

	/* characters YAML readers refuse or fold travel escaped, both ways */
	Envoy__Config__Core__V3__Node *en =
		(Envoy__Config__Core__V3__Node *)dec(&envoy__config__core__v3__node__descriptor,
						     "{\"id\": \"a\\u0085b\\u2028c\\ufffe\"}");
	K_CHECK(en != NULL);
	if (en) {
		K_CHECK_STR_EQ(en->id, "a\xc2\x85"
				       "b\xe2\x80\xa8"
				       "c\xef\xbf\xbe");
		j = k_pbjson_encode(&en->base, 0);
		K_CHECK_STR_EQ(j, "{\"id\":\"a\\u0085b\\u2028c\\ufffe\"}");
		free(j);
		check_roundtrip(&en->base);
		protobuf_c_message_free_unpacked(&en->base, NULL);
	}
	/* pretty printing */
	Envoy__Config__Core__V3__Node n2 = ENVOY__CONFIG__CORE__V3__NODE__INIT;
	n2.id = "a";
	n2.cluster = "b";
	j = k_pbjson_encode(&n2.base, 2);
	K_CHECK_STR_EQ(j, "{\n  \"id\": \"a\",\n  \"cluster\": \"b\"\n}\n");
	free(j);
	Bootstrap empty = ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__INIT;
	j = k_pbjson_encode(&empty.base, 2);
	K_CHECK_STR_EQ(j, "{}\n");
	free(j);
}

K_TEST_MAIN(test_bootstrap_yaml, test_file, test_errors, test_yaml_features, test_wkt, test_maps,
	    test_encoder)
