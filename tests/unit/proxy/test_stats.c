/* test_stats.c — stats layout names and tags, and the three renderers. */
#include <stdlib.h>

#include "k_test.h"

#include "stats.c"

static struct kp_stat_layout l;
static int cl_a, cl_b, http, lst, srv;

static void build(void)
{
	memset(&l, 0, sizeof(l));
	cl_a = kp_stat_layout_add_scope(&l, "cluster", "backend");
	http = kp_stat_layout_add_scope(&l, "http", "ingress_http");
	lst = kp_stat_layout_add_scope(&l, "listener", "127.0.0.1:10000");
	srv = kp_stat_layout_add_scope(&l, "server", NULL);
	cl_b = kp_stat_layout_add_scope(&l, "cluster", "a\"b\\c");
}

static const struct kp_stat_def *def(int base, int field)
{
	return &l.defs[base + field];
}

static void test_layout(void)
{
	build();
	K_CHECK_INT_EQ(cl_a, 0);
	K_CHECK_INT_EQ(http, KP_CLUSTER_STAT_COUNT);
	K_CHECK_INT_EQ(lst, KP_CLUSTER_STAT_COUNT + KP_HTTP_STAT_COUNT);
	K_CHECK_INT_EQ(l.n, 2 * KP_CLUSTER_STAT_COUNT + KP_HTTP_STAT_COUNT +
				    KP_LISTENER_STAT_COUNT + KP_SERVER_STAT_COUNT);

	const struct kp_stat_def *d = def(cl_a, upstream_rq_total);
	K_CHECK_STR_EQ(d->name, "cluster.backend.upstream_rq_total");
	K_CHECK_STR_EQ(d->prom_name, "cluster_upstream_rq_total");
	K_CHECK_STR_EQ(d->tag_name, "envoy_cluster_name");
	K_CHECK_STR_EQ(d->tag_value, "backend");
	K_CHECK_STR_EQ(d->prom_labels, "envoy_cluster_name=\"backend\"");
	K_CHECK(d->kind == KP_COUNTER);
	K_CHECK(def(cl_a, upstream_cx_active)->kind == KP_GAUGE);

	d = def(cl_a, upstream_rq_2xx);
	K_CHECK_STR_EQ(d->name, "cluster.backend.upstream_rq_2xx");
	K_CHECK_STR_EQ(d->prom_name, "cluster_upstream_rq_xx");
	K_CHECK_STR_EQ(d->prom_labels,
		       "envoy_response_code_class=\"2\",envoy_cluster_name=\"backend\"");

	d = def(http, downstream_rq_total);
	K_CHECK_STR_EQ(d->name, "http.ingress_http.downstream_rq_total");
	K_CHECK_STR_EQ(d->prom_name, "http_downstream_rq_total");
	K_CHECK_STR_EQ(d->prom_labels, "envoy_http_conn_manager_prefix=\"ingress_http\"");
	K_CHECK_STR_EQ(def(http, downstream_rq_5xx)->prom_labels,
		       "envoy_response_code_class=\"5\","
		       "envoy_http_conn_manager_prefix=\"ingress_http\"");

	d = def(lst, listener_downstream_cx_total);
	K_CHECK_STR_EQ(d->name, "listener.127.0.0.1_10000.downstream_cx_total");
	K_CHECK_STR_EQ(d->prom_name, "listener_downstream_cx_total");
	K_CHECK_STR_EQ(d->prom_labels, "envoy_listener_address=\"127.0.0.1_10000\"");

	d = def(srv, live);
	K_CHECK_STR_EQ(d->name, "server.live");
	K_CHECK_STR_EQ(d->prom_name, "server_live");
	K_CHECK(d->tag_name == NULL);
	K_CHECK_STR_EQ(d->prom_labels, "");

	d = def(cl_b, upstream_rq_total);
	K_CHECK_STR_EQ(d->name, "cluster.a\"b\\c.upstream_rq_total");
	K_CHECK_STR_EQ(d->tag_value, "a\"b\\c");
	K_CHECK_STR_EQ(d->prom_labels, "envoy_cluster_name=\"a\\\"b\\\\c\"");

	/* The same scope again shares its block; nothing is appended. */
	uint32_t n = l.n;
	K_CHECK_INT_EQ(kp_stat_layout_add_scope(&l, "http", "ingress_http"), http);
	K_CHECK_INT_EQ(kp_stat_layout_add_scope(&l, "server", NULL), srv);
	K_CHECK_INT_EQ(l.n, n);

	K_CHECK_INT_EQ(kp_stat_layout_add_scope(&l, "tcp", "x"), K_EINVAL);
	K_CHECK_INT_EQ(kp_stat_layout_add_scope(&l, "cluster", NULL), K_EINVAL);
	K_CHECK_INT_EQ(kp_stat_layout_add_scope(&l, "cluster", ""), K_EINVAL);
	K_CHECK_INT_EQ(kp_stat_layout_add_scope(&l, NULL, "x"), K_EINVAL);
	K_CHECK_INT_EQ(l.n, n);

	kp_stat_layout_free(&l);
	K_CHECK_INT_EQ(l.n, 0);
	K_CHECK(l.defs == NULL);
}

/* Two worker shards and a main shard. */
static uint64_t *sh[3];

static void shards(void)
{
	for (int i = 0; i < 3; i++)
		sh[i] = calloc(l.n, sizeof(uint64_t));
	kp_stat_add(sh[0], (uint32_t)(cl_a + upstream_rq_total), 5);
	kp_stat_add(sh[1], (uint32_t)(cl_a + upstream_rq_total), 7);
	kp_stat_add(sh[1], (uint32_t)(cl_b + upstream_rq_total), 1);
	kp_stat_add(sh[0], (uint32_t)(cl_a + upstream_rq_2xx), 10);
	kp_stat_add(sh[1], (uint32_t)(cl_a + upstream_rq_5xx), 2);
	kp_stat_add(sh[1], (uint32_t)(cl_b + upstream_rq_2xx), 1);
	/* A gauge up on one worker, down on another: sum 1. */
	kp_stat_add(sh[0], (uint32_t)(cl_a + upstream_cx_active), 3);
	kp_stat_dec(sh[1], (uint32_t)(cl_a + upstream_cx_active));
	kp_stat_dec(sh[1], (uint32_t)(cl_a + upstream_cx_active));
	/* A gauge that is net negative prints signed. */
	kp_stat_dec(sh[1], (uint32_t)(http + downstream_rq_active));
	kp_stat_set(sh[2], (uint32_t)(srv + live), 1);
	kp_stat_inc(sh[0], (uint32_t)(lst + listener_downstream_cx_total));
}

static void free_shards(void)
{
	for (int i = 0; i < 3; i++)
		free(sh[i]);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_text(void)
{
	build();
	shards();
	char err[256];
	size_t len = 0;
	char *t = kp_stats_render_text(&l, (const uint64_t *const *)sh, 3, NULL, 0, &len, err,
				       sizeof(err));
	K_CHECK(t != NULL);
	if (!t)
		return;
	K_CHECK_INT_EQ(len, strlen(t));
	K_CHECK_INT_EQ(count(t, "\n"), l.n);
	K_CHECK(strstr(t, "cluster.backend.upstream_rq_total: 12\n") != NULL);
	K_CHECK(strstr(t, "cluster.backend.upstream_cx_active: 1\n") != NULL);
	K_CHECK(strstr(t, "http.ingress_http.downstream_rq_active: -1\n") != NULL);
	K_CHECK(strstr(t, "server.live: 1\n") != NULL);
	K_CHECK(strstr(t, "listener.127.0.0.1_10000.downstream_cx_total: 1\n") != NULL);
	/* Sorted by name, line after line. */
	int sorted = 1;
	const char *prev = t;
	for (const char *nl = strchr(t, '\n'); nl && nl[1]; nl = strchr(nl + 1, '\n')) {
		const char *cur = nl + 1;
		size_t pl = (size_t)(strchr(prev, ':') - prev);
		size_t cl = (size_t)(strchr(cur, ':') - cur);
		int c = strncmp(prev, cur, pl < cl ? pl : cl);
		if (c > 0 || (c == 0 && pl > cl))
			sorted = 0;
		prev = cur;
	}
	K_CHECK(sorted);
	K_CHECK(strncmp(t, "cluster.a\"b\\c.", 14) == 0);
	free(t);

	/* used_only: only what some shard touched (the net-zero gauge too). */
	t = kp_stats_render_text(&l, (const uint64_t *const *)sh, 3, NULL, 1, &len, err,
				 sizeof(err));
	K_CHECK_STR_EQ(t, "cluster.a\"b\\c.upstream_rq_2xx: 1\n"
			  "cluster.a\"b\\c.upstream_rq_total: 1\n"
			  "cluster.backend.upstream_cx_active: 1\n"
			  "cluster.backend.upstream_rq_2xx: 10\n"
			  "cluster.backend.upstream_rq_5xx: 2\n"
			  "cluster.backend.upstream_rq_total: 12\n"
			  "http.ingress_http.downstream_rq_active: -1\n"
			  "listener.127.0.0.1_10000.downstream_cx_total: 1\n"
			  "server.live: 1\n");
	free(t);

	/* A filter is an extended regex searched anywhere in the name. */
	t = kp_stats_render_text(&l, (const uint64_t *const *)sh, 3,
				 "^cluster\\.backend\\.upstream_rq_(total|2xx)$", 0, &len, err,
				 sizeof(err));
	K_CHECK_STR_EQ(t, "cluster.backend.upstream_rq_2xx: 10\n"
			  "cluster.backend.upstream_rq_total: 12\n");
	free(t);
	t = kp_stats_render_text(&l, (const uint64_t *const *)sh, 3, "rq_total", 1, &len, err,
				 sizeof(err));
	K_CHECK_STR_EQ(t, "cluster.a\"b\\c.upstream_rq_total: 1\n"
			  "cluster.backend.upstream_rq_total: 12\n");
	free(t);
	t = kp_stats_render_text(&l, (const uint64_t *const *)sh, 3, "nomatch", 0, &len, err,
				 sizeof(err));
	K_CHECK_STR_EQ(t, "");
	K_CHECK_INT_EQ(len, 0);
	free(t);

	/* Invalid regex: NULL and a message naming it. */
	err[0] = '\0';
	t = kp_stats_render_text(&l, (const uint64_t *const *)sh, 3, "rq_(total", 0, &len, err,
				 sizeof(err));
	K_CHECK(t == NULL);
	K_CHECK(strncmp(err, "invalid regex \"rq_(total\": ", 27) == 0);
	t = kp_stats_render_json(&l, (const uint64_t *const *)sh, 3, "[", 0, &len, err,
				 sizeof(err));
	K_CHECK(t == NULL);
	t = kp_stats_render_prometheus(&l, (const uint64_t *const *)sh, 3, "*x", 0, &len, err,
				       sizeof(err));
	K_CHECK(t == NULL);

	/* A NULL shard (a worker not started yet) is skipped. */
	uint64_t *partial[2] = {NULL, sh[0]};
	t = kp_stats_render_text(&l, (const uint64_t *const *)partial, 2,
				 "backend.upstream_rq_total", 0, &len, err, sizeof(err));
	K_CHECK_STR_EQ(t, "cluster.backend.upstream_rq_total: 5\n");
	free(t);

	free_shards();
	kp_stat_layout_free(&l);
}

static void test_json(void)
{
	build();
	shards();
	char err[256];
	size_t len;
	char *t = kp_stats_render_json(&l, (const uint64_t *const *)sh, 3,
				       "upstream_rq_total|downstream_rq_active", 0, &len, err,
				       sizeof(err));
	K_CHECK_STR_EQ(t, "{\"stats\":[\n"
			  "{\"name\":\"cluster.a\\\"b\\\\c.upstream_rq_total\",\"value\":1},\n"
			  "{\"name\":\"cluster.backend.upstream_rq_total\",\"value\":12},\n"
			  "{\"name\":\"http.ingress_http.downstream_rq_active\",\"value\":-1}\n"
			  "]}\n");
	free(t);
	t = kp_stats_render_json(&l, (const uint64_t *const *)sh, 3, "^x$", 0, &len, err,
				 sizeof(err));
	K_CHECK_STR_EQ(t, "{\"stats\":[\n]}\n");
	free(t);
	free_shards();
	kp_stat_layout_free(&l);
}

static void test_prometheus(void)
{
	build();
	shards();
	char err[256];
	size_t len;
	char *t = kp_stats_render_prometheus(&l, (const uint64_t *const *)sh, 3, NULL, 0, &len, err,
					     sizeof(err));
	K_CHECK(t != NULL);
	if (!t)
		return;
	K_CHECK(strstr(t, "# TYPE envoy_cluster_upstream_rq_total counter\n"
			  "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"a\\\"b\\\\c\"} 1\n"
			  "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\"} 12\n") !=
		NULL);
	K_CHECK(strstr(t, "# TYPE envoy_cluster_upstream_cx_active gauge\n") != NULL);
	K_CHECK(strstr(t, "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\","
			  "envoy_cluster_name=\"backend\"} 10\n") != NULL);
	K_CHECK(strstr(t, "envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"ingress_"
			  "http\"} 0\n") != NULL);
	K_CHECK(strstr(t, "envoy_http_downstream_rq_active{envoy_http_conn_manager_prefix="
			  "\"ingress_http\"} -1\n") != NULL);
	K_CHECK(strstr(t, "envoy_listener_downstream_cx_total{envoy_listener_address=\"127.0.0.1_"
			  "10000\"} 1\n") != NULL);
	K_CHECK(strstr(t, "# TYPE envoy_server_live gauge\nenvoy_server_live 1\n") != NULL);
	K_CHECK_INT_EQ(count(t, "# TYPE envoy_cluster_upstream_rq_xx counter\n"), 1);
	/* 5 classes x 2 clusters of upstream_rq_xx series under that one. */
	K_CHECK_INT_EQ(count(t, "\nenvoy_cluster_upstream_rq_xx{"), 10);

	/* Well-formed: every sample belongs to the TYPE line above it, and
	 * no metric gets two TYPE lines. */
	int ok = 1, types = 0;
	char cur[128] = "";
	char seen[64][128];
	for (char *line = t; *line;) {
		char *nl = strchr(line, '\n');
		if (!nl) {
			ok = 0;
			break;
		}
		*nl = '\0';
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char *sp = strchr(line + 7, ' ');
			snprintf(cur, sizeof(cur), "%.*s", (int)(sp - line - 7), line + 7);
			for (int i = 0; i < types; i++)
				if (strcmp(seen[i], cur) == 0)
					ok = 0;
			if (types < 64)
				snprintf(seen[types++], sizeof(seen[0]), "%s", cur);
		} else {
			size_t n = strcspn(line, "{ ");
			if (strlen(cur) != n || strncmp(line, cur, n) != 0)
				ok = 0;
		}
		line = nl + 1;
	}
	K_CHECK(ok);
	free(t);

	/* Filter and used_only apply to the Envoy names. */
	t = kp_stats_render_prometheus(&l, (const uint64_t *const *)sh, 3, "^cluster\\.backend\\.",
				       1, &len, err, sizeof(err));
	K_CHECK_STR_EQ(t, "# TYPE envoy_cluster_upstream_cx_active gauge\n"
			  "envoy_cluster_upstream_cx_active{envoy_cluster_name=\"backend\"} 1\n"
			  "# TYPE envoy_cluster_upstream_rq_total counter\n"
			  "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"backend\"} 12\n"
			  "# TYPE envoy_cluster_upstream_rq_xx counter\n"
			  "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_"
			  "cluster_name=\"backend\"} 10\n"
			  "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_"
			  "cluster_name=\"backend\"} 2\n");
	free(t);
	free_shards();
	kp_stat_layout_free(&l);
}

static void test_empty(void)
{
	struct kp_stat_layout e = {0};
	char err[64];
	size_t len = 99;
	char *t = kp_stats_render_text(&e, NULL, 0, NULL, 0, &len, err, sizeof(err));
	K_CHECK_STR_EQ(t, "");
	K_CHECK_INT_EQ(len, 0);
	free(t);
	t = kp_stats_render_prometheus(&e, NULL, 0, NULL, 1, &len, err, sizeof(err));
	K_CHECK_STR_EQ(t, "");
	free(t);
	kp_stat_layout_free(&e);
}

K_TEST_MAIN(test_layout, test_text, test_json, test_prometheus, test_empty)
