/* test_admin.c — the admin server over real sockets, with the server's
 * main-thread functions stubbed: the loop runs on a thread, the test
 * speaks raw HTTP/1.1 to it with blocking sockets. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "k_test.h"

#include "stats.c"
#include "admin.c"

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"

/* ---- stubs for what server.c and worker.c provide ---------------------- */

static int stub_ready = 1, stub_shutdowns, stub_last_drain = -1;

int kp_server_ready(const struct kp_server *s)
{
	return __atomic_load_n(&stub_ready, __ATOMIC_SEQ_CST);
}

/* Test workers are their shards. */
const uint64_t *kp_worker_stats(const struct kp_worker *w)
{
	return (const uint64_t *)w;
}

void kp_server_shutdown(struct kp_server *s, int drain)
{
	__atomic_store_n(&stub_last_drain, drain, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&stub_shutdowns, 1, __ATOMIC_SEQ_CST);
}

uint64_t kp_server_stat(const struct kp_server *s, uint32_t slot)
{
	uint64_t v = kp_stat_get(s->stats, slot);
	for (uint32_t i = 0; i < s->n_workers; i++)
		v += kp_stat_get(kp_worker_stats(s->workers[i]), slot);
	return v;
}

/* Until the real encoder is linked: {"name":"..."} for messages with a
 * name, {} otherwise (what the real one prints for those fields too). */
__attribute__((weak)) char *k_pbjson_encode(const ProtobufCMessage *msg, int indent)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, "name");
	char buf[256] = "{}";
	if (f && f->type == PROTOBUF_C_TYPE_STRING) {
		const char *v = *(char *const *)((const char *)msg + f->offset);
		if (v && *v)
			snprintf(buf, sizeof(buf), "{\"name\":\"%s\"}", v);
	}
	return strdup(buf);
}

/* ---- fixture ------------------------------------------------------------ */

static uv_loop_t loop;
static uv_async_t stop_async;
static struct kp_server srv;
static struct kp_config cfg;
static struct kp_admin *admin;
static int port;
static uint64_t *shards[3];
static struct kp_worker *workers[2];
static struct kp_cluster_cfg cluster;
static struct kp_endpoint eps[2];
static struct kp_listener_cfg listener;

static Envoy__Config__Bootstrap__V3__Bootstrap boot = ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__INIT;
static Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources sres =
	ENVOY__CONFIG__BOOTSTRAP__V3__BOOTSTRAP__STATIC_RESOURCES__INIT;
static Envoy__Config__Cluster__V3__Cluster pb_cluster = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
static Envoy__Config__Listener__V3__Listener pb_listener =
	ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
static Envoy__Config__Cluster__V3__Cluster *pb_clusters[1];
static Envoy__Config__Listener__V3__Listener *pb_listeners[1];

static void ep_init(struct kp_endpoint *e, int p)
{
	struct sockaddr_in *in = (struct sockaddr_in *)&e->addr;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)p);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	e->addrlen = sizeof(*in);
	snprintf(e->name, sizeof(e->name), "127.0.0.1:%d", p);
	e->weight = 1;
}

static void setup(void)
{
	uv_loop_init(&loop);
	srv.loop = &loop;
	srv.config = &cfg;
	srv.state = KP_STATE_LIVE;
	srv.start_time = time(NULL) - 42;
	srv.opts.concurrency = 2;
	srv.opts.config_path = "/etc/kite/bootstrap.yaml";
	srv.opts.drain_time_s = 600;
	srv.opts.log_level = "info";

	cluster.name = "backend";
	cluster.max_connections = 1024;
	cluster.max_pending_requests = 1024;
	cluster.max_requests = 1024;
	ep_init(&eps[0], 9080);
	ep_init(&eps[1], 9081);
	cluster.endpoints = eps;
	cluster.n_endpoints = 2;
	cluster.stats = (uint32_t)kp_stat_layout_add_scope(&cfg.stats, "cluster", "backend");
	listener.name = "listener_0";
	struct sockaddr_in *la = (struct sockaddr_in *)&listener.addr;
	la->sin_family = AF_INET;
	la->sin_port = htons(10000);
	la->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(listener.addr_str, sizeof(listener.addr_str), "127.0.0.1:10000");
	listener.stats =
		(uint32_t)kp_stat_layout_add_scope(&cfg.stats, "listener", listener.addr_str);
	cfg.server_stats = (uint32_t)kp_stat_layout_add_scope(&cfg.stats, "server", NULL);
	cfg.clusters = &cluster;
	cfg.n_clusters = 1;
	cfg.listeners = &listener;
	cfg.n_listeners = 1;
	cfg.node_id = "node-1";
	cfg.node_cluster = "kite-test";

	pb_cluster.name = "backend";
	pb_listener.name = "listener_0";
	pb_clusters[0] = &pb_cluster;
	pb_listeners[0] = &pb_listener;
	sres.n_clusters = 1;
	sres.clusters = pb_clusters;
	sres.n_listeners = 1;
	sres.listeners = pb_listeners;
	boot.static_resources = &sres;
	cfg.bootstrap = &boot;

	for (int i = 0; i < 3; i++)
		shards[i] = calloc(cfg.stats.n, sizeof(uint64_t));
	kp_stat_add(shards[0], cluster.stats + upstream_rq_total, 5);
	kp_stat_add(shards[1], cluster.stats + upstream_rq_total, 7);
	kp_stat_add(shards[1], cluster.stats + upstream_rq_completed, 7);
	kp_stat_add(shards[1], cluster.stats + upstream_rq_5xx, 2);
	kp_stat_set(shards[2], cfg.server_stats + live, 1);
	workers[0] = (struct kp_worker *)shards[0];
	workers[1] = (struct kp_worker *)shards[1];
	srv.workers = workers;
	srv.n_workers = 2;
	srv.stats = shards[2];
}

static void on_stop(uv_async_t *h)
{
	kp_admin_close(admin);
	kp_admin_close(admin); /* twice is fine */
	uv_close((uv_handle_t *)h, NULL);
}

static void *loop_thread(void *arg)
{
	uv_run(&loop, UV_RUN_DEFAULT);
	return NULL;
}

/* ---- a tiny blocking client ------------------------------------------- */

static char pending[1 << 21]; /* bytes read past the last response */
static size_t plen;

#define STARTS(s, lit) (strncmp((s), (lit), strlen(lit)) == 0)

static int dial(void)
{
	plen = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

struct resp {
	int status;
	char head[4096];
	char *body; /* NUL-terminated */
	size_t len;
};

/* Read one response from fd (head_only: a HEAD answer). 0 or -1. */
static int read_resp(int fd, struct resp *r, int head_only)
{
	memset(r, 0, sizeof(*r));
	char *end;
	while (!(end = memmem(pending, plen, "\r\n\r\n", 4))) {
		ssize_t n = read(fd, pending + plen, sizeof(pending) - plen);
		if (n <= 0)
			return -1;
		plen += (size_t)n;
	}
	size_t hlen = (size_t)(end - pending) + 4;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, pending);
	r->status = atoi(r->head + 9);
	const char *cl = strcasestr(r->head, "\r\ncontent-length: ");
	size_t blen = cl ? strtoul(cl + 18, NULL, 10) : 0;
	if (head_only)
		blen = 0;
	while (plen < hlen + blen) {
		ssize_t n = read(fd, pending + plen, sizeof(pending) - plen);
		if (n <= 0)
			return -1;
		plen += (size_t)n;
	}
	r->body = malloc(blen + 1);
	memcpy(r->body, pending + hlen, blen);
	r->body[blen] = '\0';
	r->len = blen;
	memmove(pending, pending + hlen + blen, plen - hlen - blen);
	plen -= hlen + blen;
	return 0;
}

/* One request on a fresh connection. */
static int req(const char *method, const char *target, struct resp *r)
{
	char buf[8192];
	int fd = dial();
	if (fd < 0)
		return -1;
	int n = snprintf(buf, sizeof(buf),
			 "%s %s HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n", method,
			 target);
	send_all(fd, buf, (size_t)n);
	int rc = read_resp(fd, r, strcmp(method, "HEAD") == 0);
	close(fd);
	return rc;
}

/* The body of a request, or "" (freed at the next call). */
static const char *body(const char *method, const char *target, int *status)
{
	static struct resp r;
	free(r.body);
	r.body = NULL;
	if (req(method, target, &r) < 0) {
		*status = -1;
		return "";
	}
	*status = r.status;
	return r.body;
}

static int closed_by_peer(int fd)
{
	char c;
	ssize_t n = read(fd, &c, 1);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---- tests ------------------------------------------------------------- */

static void test_helpers(void)
{
	struct k_sbuf b = {0};
	const char *in = "{\"a\":[1,2],\"b\":{},\"c\":\"x,{y}:\\\"\",\"d\":[]}";
	json_pretty(&b, in, strlen(in));
	K_CHECK_STR_EQ(b.p, "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n"
			    "  \"c\": \"x,{y}:\\\"\",\n  \"d\": []\n}\n");
	free(b.p);

	char out[32];
	struct k_str q = K_STR_LIT("filter=rq_%28total%7C2xx%29%24&usedonly&x=a+b");
	K_CHECK_INT_EQ(query_get(q, "filter", out, sizeof(out)), 1);
	K_CHECK_STR_EQ(out, "rq_(total|2xx)$");
	K_CHECK_INT_EQ(query_get(q, "usedonly", out, sizeof(out)), 1);
	K_CHECK_STR_EQ(out, "");
	K_CHECK_INT_EQ(query_get(q, "x", out, sizeof(out)), 1);
	K_CHECK_STR_EQ(out, "a+b");
	K_CHECK_INT_EQ(query_get(q, "format", out, sizeof(out)), 0);
	K_CHECK_INT_EQ(query_get(K_STR_LIT("f=%2"), "f", out, sizeof(out)), -1);
	K_CHECK_INT_EQ(query_get(K_STR_LIT("f=%00"), "f", out, sizeof(out)), -1);
	K_CHECK_INT_EQ(query_get(K_STR_LIT("f=%zz"), "f", out, sizeof(out)), -1);
	K_CHECK_INT_EQ(query_get(K_STR_LIT("f=0123456789"), "f", out, 8), -1);
	K_CHECK_INT_EQ(query_get(K_STR_LIT("&&a=1&"), "a", out, sizeof(out)), 1);
	K_CHECK_STR_EQ(out, "1");
}

static void test_basic_endpoints(void)
{
	struct resp r;
	K_CHECK_INT_EQ(req("GET", "/ready", &r), 0);
	K_CHECK_INT_EQ(r.status, 200);
	K_CHECK_STR_EQ(r.body, "LIVE\n");
	K_CHECK(strstr(r.head, "content-type: text/plain; charset=UTF-8\r\n") != NULL);
	K_CHECK(strstr(r.head, "content-length: 5\r\n") != NULL);
	K_CHECK(strstr(r.head, "cache-control: no-cache") != NULL);
	K_CHECK(strstr(r.head, "connection: close\r\n") != NULL);
	free(r.body);

	K_CHECK_INT_EQ(req("HEAD", "/ready", &r), 0);
	K_CHECK_INT_EQ(r.status, 200);
	K_CHECK(strstr(r.head, "content-length: 5\r\n") != NULL);
	K_CHECK_INT_EQ(r.len, 0);
	free(r.body);

	int st;
	const char *b = body("GET", "/help", &st);
	K_CHECK_INT_EQ(st, 200);
	K_CHECK(STARTS(b, "admin commands are:\n  /: "));
	K_CHECK(strstr(b, "\n  /stats/prometheus: ") != NULL);
	b = body("GET", "/", &st);
	K_CHECK_INT_EQ(st, 200);
	b = body("GET", "/nope?x", &st);
	K_CHECK_INT_EQ(st, 404);
	K_CHECK(STARTS(b, "invalid path. admin commands are:\n"));
	K_CHECK_STR_EQ(body("GET", "/healthz", &st), "OK\n");
	K_CHECK_INT_EQ(st, 200);

	b = body("GET", "/server_info", &st);
	K_CHECK_INT_EQ(st, 200);
	K_CHECK(strstr(b, "\"version\": \"kite 0.1.0\"") != NULL);
	K_CHECK(strstr(b, "\"state\": \"LIVE\"") != NULL);
	K_CHECK(strstr(b, "\"uptime_current_epoch\": \"4") != NULL);
	K_CHECK(strstr(b, "\"concurrency\": 2,") != NULL);
	K_CHECK(strstr(b, "\"config_path\": \"/etc/kite/bootstrap.yaml\"") != NULL);
	K_CHECK(strstr(b, "\"drain_time\": \"600s\"") != NULL);
	K_CHECK(strstr(b, "\"log_level\": \"info\"") != NULL);
	K_CHECK(strstr(b, "\"node\": {\n    \"id\": \"node-1\",\n    \"cluster\": \"kite-test\"\n  "
			  "}") != NULL);

	b = body("GET", "/memory", &st);
	K_CHECK_INT_EQ(st, 200);
	K_CHECK(strstr(b, "\"allocated\": \"") != NULL);
	K_CHECK(strstr(b, "\"heap_size\": \"") != NULL);
}

static void test_health(void)
{
	int st;
	K_CHECK_STR_EQ(body("GET", "/healthcheck/fail", &st),
		       "Method GET not allowed, POST required.");
	K_CHECK_INT_EQ(st, 405);
	K_CHECK_STR_EQ(body("POST", "/healthcheck/fail", &st), "OK\n");
	K_CHECK_INT_EQ(st, 200);
	K_CHECK_STR_EQ(body("GET", "/ready", &st), "DRAINING\n");
	K_CHECK_INT_EQ(st, 503);
	K_CHECK_STR_EQ(body("GET", "/healthz", &st), "healthcheck failed\n");
	K_CHECK_INT_EQ(st, 503);
	K_CHECK(strstr(body("GET", "/server_info", &st), "\"state\": \"DRAINING\"") != NULL);
	K_CHECK(kp_admin_healthcheck_failed(admin));
	K_CHECK_STR_EQ(body("POST", "/healthcheck/ok", &st), "OK\n");
	K_CHECK_STR_EQ(body("GET", "/ready", &st), "LIVE\n");
	K_CHECK_INT_EQ(st, 200);

	__atomic_store_n(&stub_ready, 0, __ATOMIC_SEQ_CST);
	K_CHECK_STR_EQ(body("GET", "/ready", &st), "INITIALIZING\n");
	K_CHECK_INT_EQ(st, 503);
	__atomic_store_n(&stub_ready, 1, __ATOMIC_SEQ_CST);
}

static void test_stats_endpoints(void)
{
	int st;
	const char *b = body("GET", "/stats", &st);
	K_CHECK_INT_EQ(st, 200);
	K_CHECK(strstr(b, "cluster.backend.upstream_rq_total: 12\n") != NULL);
	K_CHECK(strstr(b, "server.live: 1\n") != NULL);

	K_CHECK_STR_EQ(body("GET", "/stats?usedonly&filter=rq_total", &st),
		       "cluster.backend.upstream_rq_total: 12\n");
	K_CHECK_STR_EQ(body("GET", "/stats?filter=%5Eserver%5C.live%24", &st), "server.live: 1\n");
	b = body("GET", "/stats?filter=rq_(total", &st);
	K_CHECK_INT_EQ(st, 400);
	K_CHECK(STARTS(b, "invalid regex \"rq_(total\": "));
	b = body("GET", "/stats?format=xml", &st);
	K_CHECK_INT_EQ(st, 400);

	struct resp r;
	K_CHECK_INT_EQ(req("GET", "/stats?format=json&filter=live", &r), 0);
	K_CHECK(strstr(r.head, "content-type: application/json\r\n") != NULL);
	K_CHECK_STR_EQ(r.body, "{\"stats\":[\n{\"name\":\"server.live\",\"value\":1}\n]}\n");
	free(r.body);

	b = body("GET", "/stats/prometheus", &st);
	K_CHECK_INT_EQ(st, 200);
	K_CHECK(strstr(b, "# TYPE envoy_cluster_upstream_rq_total counter\n"
			  "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\"} 12\n") !=
		NULL);
	K_CHECK(strstr(b, "envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.1_"
			  "10000\"} 0\n") != NULL);
	K_CHECK_STR_EQ(body("GET", "/stats?format=prometheus&usedonly&filter=live", &st),
		       "# TYPE envoy_server_live gauge\nenvoy_server_live 1\n");
}

static void test_config_endpoints(void)
{
	int st;
	const char *b = body("GET", "/clusters", &st);
	K_CHECK_INT_EQ(st, 200);
	K_CHECK(STARTS(b, "backend::observability_name::backend\n"
			  "backend::default_priority::max_connections::1024\n"));
	K_CHECK(strstr(b, "backend::127.0.0.1:9080::rq_total::12\n") != NULL);
	K_CHECK(strstr(b, "backend::127.0.0.1:9080::rq_error::2\n") != NULL);
	K_CHECK(strstr(b, "backend::127.0.0.1:9080::rq_success::5\n") != NULL);
	K_CHECK(strstr(b, "backend::127.0.0.1:9081::rq_total::0\n") != NULL);
	K_CHECK(strstr(b, "backend::127.0.0.1:9081::health_flags::healthy\n") != NULL);
	K_CHECK(strstr(b, "backend::127.0.0.1:9081::weight::1\n") != NULL);

	b = body("GET", "/clusters?format=json", &st);
	K_CHECK_INT_EQ(st, 200);
	K_CHECK(strstr(b, "\"cluster_statuses\": [") != NULL);
	K_CHECK(strstr(b, "\"name\": \"backend\"") != NULL);
	K_CHECK(strstr(b, "\"address\": \"127.0.0.1\",\n") != NULL);
	K_CHECK(strstr(b, "\"port_value\": 9081\n") != NULL);
	K_CHECK(strstr(b, "\"eds_health_status\": \"HEALTHY\"") != NULL);
	b = body("GET", "/clusters?format=yaml", &st);
	K_CHECK_INT_EQ(st, 400);

	K_CHECK_STR_EQ(body("GET", "/listeners", &st), "listener_0::127.0.0.1:10000\n");
	b = body("GET", "/listeners?format=json", &st);
	K_CHECK_STR_EQ(b, "{\n  \"listener_statuses\": [\n    {\n      \"name\": \"listener_0\",\n"
			  "      \"local_address\": {\n        \"socket_address\": {\n"
			  "          \"address\": \"127.0.0.1\",\n          \"port_value\": 10000\n"
			  "        }\n      }\n    }\n  ]\n}\n");

	b = body("GET", "/config_dump", &st);
	K_CHECK_INT_EQ(st, 200);
	K_CHECK(STARTS(b, "{\n  \"configs\": [\n    {\n      \"@type\": "
			  "\"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump\",\n"
			  "      \"bootstrap\": {"));
	K_CHECK(strstr(b, "\"@type\": \"type.googleapis.com/envoy.admin.v3.ClustersConfigDump\",\n"
			  "      \"static_clusters\": [\n        {\n          \"cluster\": {\n"
			  "            \"@type\": "
			  "\"type.googleapis.com/envoy.config.cluster.v3.Cluster\",\n"
			  "            \"name\": \"backend\"") != NULL);
	K_CHECK(strstr(b, "\"static_listeners\": [\n        {\n          \"listener\": {\n"
			  "            \"@type\": "
			  "\"type.googleapis.com/envoy.config.listener.v3.Listener\",\n"
			  "            \"name\": \"listener_0\"") != NULL);
	K_CHECK(strstr(b, "\"last_updated\": \"") != NULL);
}

static void test_logging(void)
{
	int st;
	K_CHECK_STR_EQ(body("GET", "/logging", &st), "active loggers:\n  kite: info\n");
	K_CHECK_INT_EQ(st, 200);
	K_CHECK_STR_EQ(body("GET", "/logging?level=debug", &st),
		       "Method GET not allowed, POST required.");
	K_CHECK_INT_EQ(st, 405);
	K_CHECK_INT_EQ(k_log_min, K_LOG_INFO);
	K_CHECK_STR_EQ(body("POST", "/logging?level=warning", &st),
		       "active loggers:\n  kite: warning\n");
	K_CHECK_INT_EQ(st, 200);
	K_CHECK_INT_EQ(__atomic_load_n(&k_log_min, __ATOMIC_SEQ_CST), K_LOG_WARN);
	body("POST", "/logging?level=loud", &st);
	K_CHECK_INT_EQ(st, 400);
	body("POST", "/logging?http=debug", &st);
	K_CHECK_INT_EQ(st, 400);
	K_CHECK_STR_EQ(body("POST", "/logging?level=info", &st), "active loggers:\n  kite: info\n");
}

static void test_keepalive(void)
{
	int fd = dial();
	K_CHECK(fd >= 0);
	if (fd < 0)
		return;
	/* Two pipelined requests, a POST with a body, a chunked POST. */
	const char *reqs =
		"GET /ready HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST /healthcheck/ok HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
		"POST /healthcheck/ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		"3\r\nabc\r\n0\r\n\r\n"
		"GET /listeners HTTP/1.1\r\nHost: a\r\n\r\n";
	send_all(fd, reqs, strlen(reqs));
	struct resp r;
	const char *want[] = {"LIVE\n", "OK\n", "OK\n", "OK\n", "listener_0::127.0.0.1:10000\n"};
	for (size_t i = 0; i < K_ARRAY_LEN(want); i++) {
		K_CHECK_INT_EQ(read_resp(fd, &r, 0), 0);
		K_CHECK_INT_EQ(r.status, 200);
		K_CHECK_STR_EQ(r.body, want[i]);
		K_CHECK(strstr(r.head, "connection:") == NULL);
		free(r.body);
	}
	/* Byte by byte still works. */
	const char *slow = "GET /ready HTTP/1.1\r\nHost: a\r\n\r\n";
	for (const char *p = slow; *p; p++) {
		send_all(fd, p, 1);
		usleep(200);
	}
	K_CHECK_INT_EQ(read_resp(fd, &r, 0), 0);
	K_CHECK_STR_EQ(r.body, "LIVE\n");
	free(r.body);
	close(fd);

	/* HTTP/1.0 without keep-alive: answer, then close. */
	fd = dial();
	send_all(fd, "GET /ready HTTP/1.0\r\n\r\n", 23);
	K_CHECK_INT_EQ(read_resp(fd, &r, 0), 0);
	K_CHECK_STR_EQ(r.body, "LIVE\n");
	K_CHECK(strstr(r.head, "connection: close\r\n") != NULL);
	K_CHECK(closed_by_peer(fd));
	free(r.body);
	close(fd);
}

static void test_bad_requests(void)
{
	struct resp r;
	int fd = dial();
	send_all(fd, "GET /ready HTTP/1.1\r\n\r\n", 23); /* no Host */
	K_CHECK_INT_EQ(read_resp(fd, &r, 0), 0);
	K_CHECK_INT_EQ(r.status, 400);
	K_CHECK(strstr(r.head, "connection: close\r\n") != NULL);
	K_CHECK(closed_by_peer(fd));
	free(r.body);
	close(fd);

	/* A head over 60 KiB: 431 and close. */
	fd = dial();
	char *big = malloc(70000);
	int n = snprintf(big, 70000, "GET /ready HTTP/1.1\r\nHost: a\r\nX-Big: ");
	memset(big + n, 'a', 66000);
	send_all(fd, big, (size_t)n + 66000);
	free(big);
	K_CHECK_INT_EQ(read_resp(fd, &r, 0), 0);
	K_CHECK_INT_EQ(r.status, 431);
	K_CHECK(closed_by_peer(fd));
	free(r.body);
	close(fd);

	/* A body over 1 MiB: answered, then closed (not drained). */
	fd = dial();
	const char *h =
		"POST /healthcheck/ok HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n";
	send_all(fd, h, strlen(h));
	K_CHECK_INT_EQ(read_resp(fd, &r, 0), 0);
	K_CHECK_INT_EQ(r.status, 200);
	K_CHECK(strstr(r.head, "connection: close\r\n") != NULL);
	free(r.body);
	close(fd);

	/* Absolute-form target. */
	fd = dial();
	const char *abs = "GET http://a/ready HTTP/1.1\r\nHost: a\r\n\r\n";
	send_all(fd, abs, strlen(abs));
	K_CHECK_INT_EQ(read_resp(fd, &r, 0), 0);
	K_CHECK_INT_EQ(r.status, 400);
	free(r.body);
	close(fd);
}

static void test_conn_limit(void)
{
	int fds[ADMIN_MAX_CONNS];
	/* Earlier tests' connections may still be closing: wait for them. */
	for (int i = 0; i < 200 && __atomic_load_n(&admin->n_conns, __ATOMIC_SEQ_CST); i++)
		usleep(10000);
	for (unsigned i = 0; i < ADMIN_MAX_CONNS; i++)
		fds[i] = dial();
	/* Make sure the server accepted all of them before the extra one. */
	for (int i = 0;
	     i < 200 && __atomic_load_n(&admin->n_conns, __ATOMIC_SEQ_CST) < ADMIN_MAX_CONNS; i++)
		usleep(10000);
	K_CHECK_INT_EQ(__atomic_load_n(&admin->n_conns, __ATOMIC_SEQ_CST), ADMIN_MAX_CONNS);
	int extra = dial();
	K_CHECK(extra >= 0 && closed_by_peer(extra));
	close(extra);
	/* The ones inside still work. */
	struct resp r;
	send_all(fds[7], "GET /ready HTTP/1.1\r\nHost: a\r\n\r\n", 32);
	K_CHECK_INT_EQ(read_resp(fds[7], &r, 0), 0);
	K_CHECK_STR_EQ(r.body, "LIVE\n");
	free(r.body);
	for (unsigned i = 0; i < ADMIN_MAX_CONNS; i++)
		close(fds[i]);
	for (int i = 0; i < 200 && __atomic_load_n(&admin->n_conns, __ATOMIC_SEQ_CST); i++)
		usleep(10000);
	int st;
	K_CHECK_STR_EQ(body("GET", "/ready", &st), "LIVE\n");
}

static void test_shutdown_actions(void)
{
	int st;
	K_CHECK_STR_EQ(body("GET", "/quitquitquit", &st), "Method GET not allowed, POST required.");
	K_CHECK_INT_EQ(__atomic_load_n(&stub_shutdowns, __ATOMIC_SEQ_CST), 0);
	K_CHECK_STR_EQ(body("POST", "/quitquitquit", &st), "OK\n");
	K_CHECK_INT_EQ(st, 200);
	for (int i = 0; i < 200 && !__atomic_load_n(&stub_shutdowns, __ATOMIC_SEQ_CST); i++)
		usleep(5000);
	K_CHECK_INT_EQ(__atomic_load_n(&stub_shutdowns, __ATOMIC_SEQ_CST), 1);
	K_CHECK_INT_EQ(__atomic_load_n(&stub_last_drain, __ATOMIC_SEQ_CST), 0);
	K_CHECK_STR_EQ(body("POST", "/drain_listeners", &st), "OK\n");
	for (int i = 0; i < 200 && __atomic_load_n(&stub_shutdowns, __ATOMIC_SEQ_CST) < 2; i++)
		usleep(5000);
	K_CHECK_INT_EQ(__atomic_load_n(&stub_shutdowns, __ATOMIC_SEQ_CST), 2);
	K_CHECK_INT_EQ(__atomic_load_n(&stub_last_drain, __ATOMIC_SEQ_CST), 1);
}

static void run_all(void)
{
	setup();
	char err[256];
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = kp_admin_start(&srv, (struct sockaddr *)&a, &admin, err, sizeof(err));
	K_CHECK_INT_EQ(rc, 0);
	if (rc)
		return;
	const char *addr = kp_admin_address(admin);
	K_CHECK(strncmp(addr, "127.0.0.1:", 10) == 0);
	port = atoi(addr + 10);
	K_CHECK(port > 0);

	/* The same port again: a synchronous, named error. */
	struct kp_admin *dup = NULL;
	a.sin_port = htons((uint16_t)port);
	K_CHECK_INT_EQ(kp_admin_start(&srv, (struct sockaddr *)&a, &dup, err, sizeof(err)), K_EIO);
	char want[128];
	snprintf(want, sizeof(want), "admin bind 127.0.0.1:%d: Address already in use", port);
	K_CHECK_STR_EQ(err, want);
	K_CHECK(dup == NULL);
	struct sockaddr bad = {.sa_family = AF_UNIX};
	K_CHECK_INT_EQ(kp_admin_start(&srv, &bad, &dup, err, sizeof(err)), K_EINVAL);

	uv_async_init(&loop, &stop_async, on_stop);
	pthread_t th;
	pthread_create(&th, NULL, loop_thread, NULL);

	test_basic_endpoints();
	test_health();
	test_stats_endpoints();
	test_config_endpoints();
	test_logging();
	test_keepalive();
	test_bad_requests();
	test_conn_limit();
	test_shutdown_actions();

	/* An idle connection left open is closed by kp_admin_close. */
	int idle = dial();
	uv_async_send(&stop_async);
	pthread_join(th, NULL);
	K_CHECK(closed_by_peer(idle));
	close(idle);
	K_CHECK_INT_EQ(uv_loop_close(&loop), 0);
	for (int i = 0; i < 3; i++)
		free(shards[i]);
	kp_stat_layout_free(&cfg.stats);
}

K_TEST_MAIN(test_helpers, run_all)
