/* admin.c — the admin HTTP/1.1 server (Envoy's /stats, /ready, ...).
 *
 * Runs on the main thread's loop. It is not on the data path, so it is
 * written for robustness over speed: one request per connection at a time
 * (reading pauses while a response is being written, which bounds memory
 * per connection to one request head plus one response), every response
 * built whole in memory, bodies read and dropped, hard limits on
 * everything a client controls. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <protobuf-c/protobuf-c.h>

#include "admin.h"
#include "k_sbuf.h"
#include "config.h"
#include "h1_codec.h"
#include "k_common.h"
#include "k_log.h"
#include "k_pbjson.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

#ifndef KITE_VERSION
#define KITE_VERSION "0.1.0"
#endif

#define ADMIN_MAX_CONNS 64u
#define ADMIN_MAX_HEAD	K_H1_DEFAULT_MAX_HEAD_BYTES
#define ADMIN_BUF_MAX	(ADMIN_MAX_HEAD + 4096u)
#define ADMIN_MAX_BODY	(1u << 20)
#define ADMIN_IDLE_MS	(120u * 1000u)
#define ADMIN_LINGER_MS 5000u
#define ADMIN_SWEEP_MS	5000u
#define ADMIN_MAX_PARAM 4096u

enum { ACTION_NONE, ACTION_QUIT, ACTION_DRAIN };

struct admin_conn;

struct kp_admin {
	struct kp_server *srv;
	uv_tcp_t listener;
	uv_timer_t sweep; /* closes idle and lingering connections */
	uv_timer_t defer; /* runs a shutdown once its response is out */
	struct admin_conn *conns;
	uint32_t n_conns;
	uint32_t open_handles; /* freed when this drops to 0 after close */
	int closing;
	int healthcheck_failed;
	int pending_action;
	char addr_str[64];
};

struct admin_conn {
	struct kp_admin *a;
	uv_tcp_t tcp;
	uv_shutdown_t shut;
	struct admin_conn *prev, *next;
	char *buf;
	uint32_t cap, len;
	uint32_t parsed; /* bytes of an incomplete head already scanned */
	struct k_h1_body_dec body;
	uint64_t body_seen;
	uint32_t writes; /* in flight */
	uint64_t last_ms, linger_ms;
	unsigned in_body : 1;
	unsigned close_after : 1; /* finish writing, then FIN and drop input */
	unsigned lingering : 1;	  /* FIN sent, discarding input until EOF */
	unsigned closing : 1;
	unsigned listed : 1;
	unsigned reading : 1;
};

struct admin_write {
	uv_write_t req;
	struct admin_conn *c;
	int action;
	size_t len;
	char data[];
};

/* ---- small helpers ------------------------------------------------------ */

/* Re-indent compact JSON with two spaces per level (Envoy pretty-prints
 * its JSON answers). Raw newlines never occur inside JSON strings, so a
 * character walk that tracks strings is enough. */
static void json_pretty(struct k_sbuf *out, const char *in, size_t len)
{
	int depth = 0, in_str = 0, esc = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = in[i];
		if (in_str) {
			k_sbuf_add(out, &ch, 1);
			if (esc)
				esc = 0;
			else if (ch == '\\')
				esc = 1;
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		switch (ch) {
		case ' ':
		case '\t':
		case '\r':
		case '\n': break;
		case '"':
			in_str = 1;
			k_sbuf_add(out, &ch, 1);
			break;
		case '{':
		case '[': {
			size_t j = i + 1;
			while (j < len && in[j] && strchr(" \t\r\n", in[j]))
				j++;
			if (j < len && (in[j] == '}' || in[j] == ']')) {
				k_sbuf_add(out, &ch, 1);
				k_sbuf_add(out, &in[j], 1);
				i = j;
				break;
			}
			k_sbuf_add(out, &ch, 1);
			depth++;
			k_sbuf_add(out, "\n", 1);
			for (int k = 0; k < depth; k++)
				k_sbuf_add(out, "  ", 2);
			break;
		}
		case '}':
		case ']':
			depth = depth > 0 ? depth - 1 : 0;
			k_sbuf_add(out, "\n", 1);
			for (int k = 0; k < depth; k++)
				k_sbuf_add(out, "  ", 2);
			k_sbuf_add(out, &ch, 1);
			break;
		case ',':
			k_sbuf_add(out, ",\n", 2);
			for (int k = 0; k < depth; k++)
				k_sbuf_add(out, "  ", 2);
			break;
		case ':': k_sbuf_add(out, ": ", 2); break;
		default: k_sbuf_add(out, &ch, 1);
		}
	}
	k_sbuf_add(out, "\n", 1);
}
/* Next "key=value" of a query string; false at the end. */
static int query_next(struct k_str *q, struct k_str *key, struct k_str *val)
{
	while (q->len) {
		const char *amp = memchr(q->p, '&', q->len);
		size_t n = amp ? (size_t)(amp - q->p) : q->len;
		struct k_str item = {q->p, n};
		q->p += amp ? n + 1 : n;
		q->len -= amp ? n + 1 : n;
		if (!item.len)
			continue;
		const char *eq = memchr(item.p, '=', item.len);
		key->p = item.p;
		key->len = eq ? (size_t)(eq - item.p) : item.len;
		val->p = eq ? eq + 1 : item.p + item.len;
		val->len = eq ? item.len - key->len - 1 : 0;
		return 1;
	}
	return 0;
}

/* Value of `name` in the query, decoded into out. 1: present, 0: absent,
 * -1: present but undecodable or longer than outlen - 1. */
static int query_get(struct k_str q, const char *name, char *out, size_t outlen)
{
	struct k_str k, v;
	char kbuf[64];
	while (query_next(&q, &k, &v)) {
		if (k_pct_decode(k, kbuf, sizeof(kbuf), 0) < 0)
			continue;
		if (strcmp(kbuf, name) == 0)
			return k_pct_decode(v, out, outlen, 0) < 0 ? -1 : 1;
	}
	return 0;
}

static void fmt_sockaddr(const struct sockaddr *sa, char *ip, size_t iplen, int *port)
{
	ip[0] = '\0';
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)iplen);
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
		*port = ntohs(in6->sin6_port);
	}
}

static void fmt_addr_port(const struct sockaddr *sa, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	int port;
	fmt_sockaddr(sa, ip, sizeof(ip), &port);
	if (sa->sa_family == AF_INET6)
		snprintf(out, outlen, "[%s]:%d", ip, port);
	else
		snprintf(out, outlen, "%s:%d", ip, port);
}

/* ---- responses ----------------------------------------------------------- */

struct admin_req {
	struct k_str method;
	struct k_str path; /* without the query */
	struct k_str query;
	int post;
};

struct admin_resp {
	int status;
	const char *ctype;
	struct k_sbuf body;
	int action;
};

#define CT_TEXT "text/plain; charset=UTF-8"
#define CT_JSON "application/json"

static void resp_text(struct admin_resp *r, int status, const char *text)
{
	r->status = status;
	r->ctype = CT_TEXT;
	k_sbuf_adds(&r->body, text);
}

static const char *state_name(enum kp_server_state s)
{
	switch (s) {
	case KP_STATE_LIVE: return "LIVE";
	case KP_STATE_DRAINING: return "DRAINING";
	case KP_STATE_PRE_INITIALIZING: return "PRE_INITIALIZING";
	case KP_STATE_INITIALIZING: return "INITIALIZING";
	}
	return "UNKNOWN";
}

/* The state Envoy would report: a failed health check reads as DRAINING,
 * and LIVE needs every listener bound and every worker running. */
static enum kp_server_state effective_state(const struct kp_admin *a)
{
	const struct kp_server *s = a->srv;
	if (s->state == KP_STATE_LIVE && a->healthcheck_failed)
		return KP_STATE_DRAINING;
	if (s->state == KP_STATE_LIVE && !kp_server_ready(s))
		return KP_STATE_INITIALIZING;
	return s->state;
}

static void h_help(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r);

static void h_ready(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	enum kp_server_state st = effective_state(a);
	resp_text(r, st == KP_STATE_LIVE ? 200 : 503, state_name(st));
	k_sbuf_add(&r->body, "\n", 1);
}

static void h_healthz(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	enum kp_server_state st = effective_state(a);
	if (a->healthcheck_failed)
		resp_text(r, 503, "healthcheck failed\n");
	else if (st == KP_STATE_LIVE)
		resp_text(r, 200, "OK\n");
	else {
		resp_text(r, 503, state_name(st));
		k_sbuf_add(&r->body, "\n", 1);
	}
}

static void fmt_time(time_t t, char *out, size_t outlen)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

static void h_server_info(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	const struct kp_server *s = a->srv;
	const struct kp_config *cfg = s->config;
	time_t now = time(NULL);
	long long up = now > s->start_time ? (long long)(now - s->start_time) : 0;
	struct k_sbuf j = {0};
	k_sbuf_adds(&j, "{\"version\":");
	k_sbuf_json_str(&j, "kite " KITE_VERSION);
	k_sbuf_adds(&j, ",\"state\":");
	k_sbuf_json_str(&j, state_name(effective_state(a)));
	k_sbuf_adds(&j, ",\"hot_restart_version\":\"disabled\"");
	k_sbuf_adds(&j, ",\"command_line_options\":{");
	k_sbuf_printf(&j, "\"concurrency\":%u,\"config_path\":", (unsigned)s->opts.concurrency);
	k_sbuf_json_str(&j, s->opts.config_path ? s->opts.config_path : "");
	k_sbuf_adds(&j, ",\"log_level\":");
	k_sbuf_json_str(&j, s->opts.log_level ? s->opts.log_level : "info");
	k_sbuf_printf(&j, ",\"drain_time\":\"%us\",\"mode\":\"Serve\"",
		      (unsigned)s->opts.drain_time_s);
	k_sbuf_adds(&j, "}");
	k_sbuf_printf(&j, ",\"uptime_current_epoch\":\"%llds\"", up);
	k_sbuf_printf(&j, ",\"uptime_all_epochs\":\"%llds\"", up);
	k_sbuf_adds(&j, ",\"node\":{\"id\":");
	k_sbuf_json_str(&j, cfg && cfg->node_id ? cfg->node_id : "");
	k_sbuf_adds(&j, ",\"cluster\":");
	k_sbuf_json_str(&j, cfg && cfg->node_cluster ? cfg->node_cluster : "");
	k_sbuf_adds(&j, "}}");
	r->status = 200;
	r->ctype = CT_JSON;
	if (j.oom)
		r->body.oom = 1;
	else
		json_pretty(&r->body, j.p, j.len);
	free(j.p);
}

/* Every shard: one per worker (NULL while a worker is not up) and the
 * main thread's. Caller frees. */
static const uint64_t **collect_shards(const struct kp_server *s, uint32_t *n)
{
	const uint64_t **sh = calloc(s->n_workers + 1, sizeof(*sh));
	if (!sh)
		return NULL;
	for (uint32_t i = 0; i < s->n_workers; i++)
		sh[i] = s->workers && s->workers[i] ? kp_worker_stats(s->workers[i]) : NULL;
	sh[s->n_workers] = s->stats;
	*n = s->n_workers + 1;
	return sh;
}

static void h_stats(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	const struct kp_server *s = a->srv;
	char format[32] = "text", scratch[8], *filter = NULL;
	/* "?usedonly" takes no value; any value (or a long one) still counts. */
	int used_only = query_get(rq->query, "usedonly", scratch, sizeof(scratch)) != 0;
	if (k_str_eq(rq->path, K_STR_LIT("/stats/prometheus")))
		snprintf(format, sizeof(format), "prometheus");
	else if (query_get(rq->query, "format", format, sizeof(format)) < 0)
		snprintf(format, sizeof(format), "?");

	filter = malloc(ADMIN_MAX_PARAM);
	if (!filter) {
		r->body.oom = 1;
		return;
	}
	int hf = query_get(rq->query, "filter", filter, ADMIN_MAX_PARAM);
	if (hf < 0) {
		resp_text(r, 400,
			  "invalid filter: bad percent-encoding or longer than 4095 bytes\n");
		free(filter);
		return;
	}

	char *(*render)(const struct kp_stat_layout *, const uint64_t *const *, uint32_t,
			const char *, int, size_t *, char *, size_t);
	const char *ctype = CT_TEXT;
	if (strcmp(format, "text") == 0) {
		render = kp_stats_render_text;
	} else if (strcmp(format, "json") == 0) {
		render = kp_stats_render_json;
		ctype = CT_JSON;
	} else if (strcmp(format, "prometheus") == 0) {
		render = kp_stats_render_prometheus;
	} else {
		resp_text(r, 400,
			  "usage: /stats?format=(json|prometheus|text)&filter=REGEX&usedonly\n");
		free(filter);
		return;
	}

	static const struct kp_stat_layout empty;
	const struct kp_stat_layout *l = s->config ? &s->config->stats : &empty;
	uint32_t n = 0;
	const uint64_t **sh = collect_shards(s, &n);
	if (!sh) {
		free(filter);
		r->body.oom = 1;
		return;
	}
	char err[256] = "";
	size_t len = 0;
	char *out = render(l, sh, n, hf ? filter : NULL, used_only, &len, err, sizeof(err));
	free(sh);
	free(filter);
	if (!out) {
		if (strcmp(err, "out of memory") == 0) {
			r->body.oom = 1;
			return;
		}
		resp_text(r, 400, err);
		k_sbuf_add(&r->body, "\n", 1);
		return;
	}
	r->status = 200;
	r->ctype = ctype;
	/* Take the rendered string as the body without a copy. */
	free(r->body.p);
	r->body.p = out;
	r->body.len = len;
	r->body.cap = len + 1;
}

/* Reflection over protobuf-c descriptors, so this file does not depend on
 * the generated Bootstrap headers. */
static const ProtobufCMessage *pb_sub(const ProtobufCMessage *m, const char *name)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	return *(const ProtobufCMessage *const *)((const char *)m + f->offset);
}

static size_t pb_repeated(const ProtobufCMessage *m, const char *name,
			  ProtobufCMessage *const **arr)
{
	*arr = NULL;
	if (!m)
		return 0;
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
		return 0;
	*arr = *(ProtobufCMessage *const *const *)((const char *)m + f->offset);
	return *(const size_t *)((const char *)m + f->quantifier_offset);
}

/* Append msg as JSON; with_type adds the "@type" an Any would carry. */
static int add_msg(struct k_sbuf *b, const ProtobufCMessage *msg, int with_type)
{
	char *enc = k_pbjson_encode(msg, 0);
	if (!enc)
		return K_ENOMEM;
	const char *p = enc;
	while (*p && *p != '{')
		p++;
	if (!with_type || !*p) {
		k_sbuf_adds(b, *p ? p : enc);
	} else {
		const char *q = p + 1;
		while (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')
			q++;
		k_sbuf_adds(b, "{\"@type\":");
		char url[256];
		snprintf(url, sizeof(url), "type.googleapis.com/%s", msg->descriptor->name);
		k_sbuf_json_str(b, url);
		if (*q != '}')
			k_sbuf_add(b, ",", 1);
		k_sbuf_adds(b, q);
	}
	free(enc);
	return 0;
}

static void h_config_dump(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	const struct kp_config *cfg = a->srv->config;
	const ProtobufCMessage *boot = cfg ? cfg->bootstrap : NULL;
	char ts[40];
	fmt_time(a->srv->start_time, ts, sizeof(ts));
	struct k_sbuf j = {0};
	int rc = 0;
	k_sbuf_adds(&j, "{\"configs\":[");
	if (boot) {
		k_sbuf_adds(&j, "{\"@type\":\"type.googleapis.com/"
				"envoy.admin.v3.BootstrapConfigDump\",\"bootstrap\":");
		rc |= add_msg(&j, boot, 0);
		k_sbuf_printf(&j, ",\"last_updated\":\"%s\"}", ts);

		const ProtobufCMessage *sr = pb_sub(boot, "static_resources");
		ProtobufCMessage *const *arr;
		size_t n = pb_repeated(sr, "clusters", &arr);
		k_sbuf_adds(
			&j,
			",{\"@type\":\"type.googleapis.com/envoy.admin.v3.ClustersConfigDump\"");
		if (n) {
			k_sbuf_adds(&j, ",\"static_clusters\":[");
			for (size_t i = 0; i < n; i++) {
				k_sbuf_adds(&j, i ? ",{\"cluster\":" : "{\"cluster\":");
				rc |= add_msg(&j, arr[i], 1);
				k_sbuf_printf(&j, ",\"last_updated\":\"%s\"}", ts);
			}
			k_sbuf_adds(&j, "]");
		}
		k_sbuf_adds(&j, "}");

		n = pb_repeated(sr, "listeners", &arr);
		k_sbuf_adds(
			&j,
			",{\"@type\":\"type.googleapis.com/envoy.admin.v3.ListenersConfigDump\"");
		if (n) {
			k_sbuf_adds(&j, ",\"static_listeners\":[");
			for (size_t i = 0; i < n; i++) {
				k_sbuf_adds(&j, i ? ",{\"listener\":" : "{\"listener\":");
				rc |= add_msg(&j, arr[i], 1);
				k_sbuf_printf(&j, ",\"last_updated\":\"%s\"}", ts);
			}
			k_sbuf_adds(&j, "]");
		}
		k_sbuf_adds(&j, "}");
	}
	k_sbuf_adds(&j, "]}");
	if (rc || j.oom) {
		r->body.oom = 1;
	} else {
		r->status = 200;
		r->ctype = CT_JSON;
		json_pretty(&r->body, j.p, j.len);
	}
	free(j.p);
}

static int want_json(const struct admin_req *rq, struct admin_resp *r)
{
	char fmt[16];
	int rc = query_get(rq->query, "format", fmt, sizeof(fmt));
	if (rc == 0 || (rc > 0 && strcmp(fmt, "text") == 0))
		return 0;
	if (rc > 0 && strcmp(fmt, "json") == 0)
		return 1;
	resp_text(r, 400, "usage: ?format=(json|text)\n");
	return -1;
}

/* Per-host counters are not kept yet: the first host of a cluster shows the
 * cluster's totals and the others 0, so sums over hosts stay right (and a
 * single-host cluster is exact). */
struct host_stats {
	uint64_t cx_active, cx_connect_fail, cx_total, rq_active, rq_error, rq_success, rq_timeout,
		rq_total;
};

static void cluster_host_stats(const struct kp_server *s, const struct kp_cluster_cfg *c, int first,
			       struct host_stats *h)
{
	memset(h, 0, sizeof(*h));
	if (!first)
		return;
	uint32_t b = c->stats;
	h->cx_active = kp_server_stat(s, b + upstream_cx_active);
	h->cx_connect_fail = kp_server_stat(s, b + upstream_cx_connect_fail);
	h->cx_total = kp_server_stat(s, b + upstream_cx_total);
	h->rq_active = kp_server_stat(s, b + upstream_rq_active);
	h->rq_error = kp_server_stat(s, b + upstream_rq_5xx);
	uint64_t done = kp_server_stat(s, b + upstream_rq_completed);
	h->rq_success = done > h->rq_error ? done - h->rq_error : 0;
	h->rq_timeout = kp_server_stat(s, b + upstream_rq_timeout);
	h->rq_total = kp_server_stat(s, b + upstream_rq_total);
}

static void h_clusters(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	const struct kp_config *cfg = a->srv->config;
	int json = want_json(rq, r);
	if (json < 0)
		return;
	uint32_t nc = cfg ? cfg->n_clusters : 0;
	struct k_sbuf j = {0};
	struct k_sbuf *b = json ? &j : &r->body;
	if (json)
		k_sbuf_adds(b, "{\"cluster_statuses\":[");
	for (uint32_t i = 0; i < nc; i++) {
		const struct kp_cluster_cfg *c = &cfg->clusters[i];
		const char *n = c->name;
		if (json) {
			k_sbuf_adds(b, i ? ",{\"name\":" : "{\"name\":");
			k_sbuf_json_str(b, n);
			k_sbuf_adds(b, ",\"added_via_api\":false,\"observability_name\":");
			k_sbuf_json_str(b, n);
			k_sbuf_adds(b, ",\"host_statuses\":[");
		} else {
			k_sbuf_printf(b, "%s::observability_name::%s\n", n, n);
			static const char *const prio[] = {"default_priority", "high_priority"};
			for (int p = 0; p < 2; p++) {
				k_sbuf_printf(b, "%s::%s::max_connections::%u\n", n, prio[p],
					      p ? 1024u : c->max_connections);
				k_sbuf_printf(b, "%s::%s::max_pending_requests::%u\n", n, prio[p],
					      p ? 1024u : c->max_pending_requests);
				k_sbuf_printf(b, "%s::%s::max_requests::%u\n", n, prio[p],
					      p ? 1024u : c->max_requests);
				k_sbuf_printf(b, "%s::%s::max_retries::3\n", n, prio[p]);
			}
			k_sbuf_printf(b, "%s::added_via_api::false\n", n);
		}
		for (uint32_t e = 0; e < c->n_endpoints; e++) {
			const struct kp_endpoint *ep = &c->endpoints[e];
			struct host_stats h;
			cluster_host_stats(a->srv, c, e == 0, &h);
			const struct {
				const char *name;
				uint64_t v;
				int gauge;
			} st[] = {
				{"cx_active", h.cx_active, 1},
				{"cx_connect_fail", h.cx_connect_fail, 0},
				{"cx_total", h.cx_total, 0},
				{"rq_active", h.rq_active, 1},
				{"rq_error", h.rq_error, 0},
				{"rq_success", h.rq_success, 0},
				{"rq_timeout", h.rq_timeout, 0},
				{"rq_total", h.rq_total, 0},
			};
			if (json) {
				char ip[INET6_ADDRSTRLEN];
				int port;
				fmt_sockaddr((const struct sockaddr *)&ep->addr, ip, sizeof(ip),
					     &port);
				k_sbuf_adds(b,
					    e ? ",{\"address\":{\"socket_address\":{\"address\":"
					      : "{\"address\":{\"socket_address\":{\"address\":");
				k_sbuf_json_str(b, ip);
				k_sbuf_printf(b, ",\"port_value\":%d}},\"stats\":[", port);
				for (size_t k = 0; k < K_ARRAY_LEN(st); k++) {
					k_sbuf_printf(b,
						      "%s{\"name\":\"%s\",\"value\":\"%" PRIu64
						      "\"%s}",
						      k ? "," : "", st[k].name, st[k].v,
						      st[k].gauge ? ",\"type\":\"GAUGE\"" : "");
				}
				k_sbuf_printf(
					b,
					"],\"health_status\":{\"eds_health_status\":\"HEALTHY\"},"
					"\"weight\":%u,\"locality\":{}}",
					ep->weight ? ep->weight : 1);
				continue;
			}
			for (size_t k = 0; k < K_ARRAY_LEN(st); k++)
				k_sbuf_printf(b, "%s::%s::%s::%" PRIu64 "\n", n, ep->name,
					      st[k].name, st[k].v);
			k_sbuf_printf(b, "%s::%s::hostname::\n", n, ep->name);
			k_sbuf_printf(b, "%s::%s::health_flags::healthy\n", n, ep->name);
			k_sbuf_printf(b, "%s::%s::weight::%u\n", n, ep->name,
				      ep->weight ? ep->weight : 1);
			k_sbuf_printf(b, "%s::%s::region::\n", n, ep->name);
			k_sbuf_printf(b, "%s::%s::zone::\n", n, ep->name);
			k_sbuf_printf(b, "%s::%s::sub_zone::\n", n, ep->name);
			k_sbuf_printf(b, "%s::%s::canary::false\n", n, ep->name);
			k_sbuf_printf(b, "%s::%s::priority::0\n", n, ep->name);
			k_sbuf_printf(b, "%s::%s::success_rate::-1\n", n, ep->name);
			k_sbuf_printf(b, "%s::%s::local_origin_success_rate::-1\n", n, ep->name);
		}
		if (json)
			k_sbuf_adds(b, "]}");
	}
	r->status = 200;
	r->ctype = json ? CT_JSON : CT_TEXT;
	if (json) {
		k_sbuf_adds(b, "]}");
		if (j.oom)
			r->body.oom = 1;
		else
			json_pretty(&r->body, j.p, j.len);
		free(j.p);
	}
}

static void h_listeners(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	const struct kp_config *cfg = a->srv->config;
	int json = want_json(rq, r);
	if (json < 0)
		return;
	uint32_t nl = cfg ? cfg->n_listeners : 0;
	r->status = 200;
	r->ctype = json ? CT_JSON : CT_TEXT;
	if (!json) {
		for (uint32_t i = 0; i < nl; i++)
			k_sbuf_printf(&r->body, "%s::%s\n", cfg->listeners[i].name,
				      cfg->listeners[i].addr_str);
		return;
	}
	struct k_sbuf j = {0};
	k_sbuf_adds(&j, "{\"listener_statuses\":[");
	for (uint32_t i = 0; i < nl; i++) {
		const struct kp_listener_cfg *l = &cfg->listeners[i];
		char ip[INET6_ADDRSTRLEN];
		int port;
		fmt_sockaddr((const struct sockaddr *)&l->addr, ip, sizeof(ip), &port);
		k_sbuf_adds(&j, i ? ",{\"name\":" : "{\"name\":");
		k_sbuf_json_str(&j, l->name);
		k_sbuf_adds(&j, ",\"local_address\":{\"socket_address\":{\"address\":");
		k_sbuf_json_str(&j, ip);
		k_sbuf_printf(&j, ",\"port_value\":%d}}}", port);
	}
	k_sbuf_adds(&j, "]}");
	if (j.oom)
		r->body.oom = 1;
	else
		json_pretty(&r->body, j.p, j.len);
	free(j.p);
}

static void h_memory(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	struct mallinfo2 mi = mallinfo2();
	uint64_t allocated = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
	uint64_t heap = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
	char j[512];
	/* Envoy's shape; uint64 fields are strings in proto3 JSON. */
	snprintf(j, sizeof(j),
		 "{\"allocated\":\"%" PRIu64 "\",\"heap_size\":\"%" PRIu64
		 "\",\"pageheap_unmapped\":\"0\",\"pageheap_free\":\"%" PRIu64
		 "\",\"total_thread_cache\":\"0\",\"total_physical_bytes\":\"%" PRIu64 "\"}",
		 allocated, heap, (uint64_t)mi.fordblks, heap);
	r->status = 200;
	r->ctype = CT_JSON;
	json_pretty(&r->body, j, strlen(j));
}

static const char *level_name(enum k_log_level l)
{
	static const char *const names[] = {"trace", "debug", "info", "warning", "error", "off"};
	return (unsigned)l < K_ARRAY_LEN(names) ? names[l] : "?";
}

static void h_logging(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	struct k_str q = rq->query, k, v;
	int have_params = 0, level = -1;
	while (query_next(&q, &k, &v)) {
		have_params = 1;
		char key[64], val[64];
		if (k_pct_decode(k, key, sizeof(key), 0) < 0 ||
		    k_pct_decode(v, val, sizeof(val), 0) < 0) {
			resp_text(r, 400,
				  "usage: POST "
				  "/logging?level=(trace|debug|info|warning|error|critical|off)\n");
			return;
		}
		if (strcmp(key, "level") != 0) {
			r->status = 400;
			r->ctype = CT_TEXT;
			k_sbuf_printf(&r->body,
				      "error: unknown logger \"%s\"; kite has one logger, set it "
				      "with ?level=\n",
				      key);
			return;
		}
		level = k_log_parse_level(val);
		if (level < 0) {
			r->status = 400;
			r->ctype = CT_TEXT;
			k_sbuf_printf(&r->body,
				      "error: unknown log level \"%s\" (trace, debug, info, "
				      "warning, error, critical, off)\n",
				      val);
			return;
		}
	}
	/* Changing the level mutates state: POST only, as in Envoy. */
	if (have_params && !rq->post) {
		r->status = 405;
		r->ctype = CT_TEXT;
		k_sbuf_printf(&r->body, "Method %.*s not allowed, POST required.",
			      (int)rq->method.len, rq->method.p);
		return;
	}
	if (level >= 0) {
		k_log_min = (enum k_log_level)level;
		k_info("admin: log level set to %s", level_name(k_log_min));
	}
	r->status = 200;
	r->ctype = CT_TEXT;
	k_sbuf_printf(&r->body, "active loggers:\n  kite: %s\n", level_name(k_log_min));
}

static void h_quit(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	resp_text(r, 200, "OK\n");
	r->action = ACTION_QUIT;
}

static void h_drain(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	resp_text(r, 200, "OK\n");
	r->action = ACTION_DRAIN;
}

static void h_hc_fail(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	a->healthcheck_failed = 1;
	resp_text(r, 200, "OK\n");
}

static void h_hc_ok(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	a->healthcheck_failed = 0;
	resp_text(r, 200, "OK\n");
}

static const struct admin_ep {
	const char *path;
	const char *help;
	int post; /* mutates state: POST required */
	void (*fn)(struct kp_admin *, const struct admin_req *, struct admin_resp *);
} admin_eps[] = {
	{"/", "Admin home page", 0, h_help},
	{"/clusters", "upstream cluster status (?format=json)", 0, h_clusters},
	{"/config_dump", "dump current configuration", 0, h_config_dump},
	{"/drain_listeners", "drain listeners, then exit", 1, h_drain},
	{"/healthcheck/fail", "cause the server to fail health checks", 1, h_hc_fail},
	{"/healthcheck/ok", "cause the server to pass health checks", 1, h_hc_ok},
	{"/healthz", "200 OK while live and passing health checks, else 503", 0, h_healthz},
	{"/help", "print out list of admin commands", 0, h_help},
	{"/listeners", "print listener info (?format=json)", 0, h_listeners},
	{"/logging", "query/change logging levels (POST ?level=debug)", 0, h_logging},
	{"/memory", "print current allocation/heap usage", 0, h_memory},
	{"/quitquitquit", "exit the server", 1, h_quit},
	{"/ready", "print server state, return 200 if LIVE, otherwise return 503", 0, h_ready},
	{"/server_info", "print server version/status information", 0, h_server_info},
	{"/stats", "print server stats (?filter=REGEX, ?usedonly, ?format=json|prometheus)", 0,
	 h_stats},
	{"/stats/prometheus", "print server stats in prometheus format", 0, h_stats},
};

static void help_text(struct k_sbuf *b)
{
	k_sbuf_adds(b, "admin commands are:\n");
	for (size_t i = 0; i < K_ARRAY_LEN(admin_eps); i++)
		k_sbuf_printf(b, "  %s: %s\n", admin_eps[i].path, admin_eps[i].help);
}

static void h_help(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	r->status = 200;
	r->ctype = CT_TEXT;
	help_text(&r->body);
}

static void dispatch(struct kp_admin *a, const struct admin_req *rq, struct admin_resp *r)
{
	for (size_t i = 0; i < K_ARRAY_LEN(admin_eps); i++) {
		const struct admin_ep *ep = &admin_eps[i];
		if (!k_str_eq(rq->path, (struct k_str){ep->path, strlen(ep->path)}))
			continue;
		if (ep->post && !rq->post) {
			r->status = 405;
			r->ctype = CT_TEXT;
			k_sbuf_printf(&r->body, "Method %.*s not allowed, POST required.",
				      (int)rq->method.len, rq->method.p);
			return;
		}
		ep->fn(a, rq, r);
		return;
	}
	r->status = 404;
	r->ctype = CT_TEXT;
	k_sbuf_adds(&r->body, "invalid path. ");
	help_text(&r->body);
}

/* ---- connections -------------------------------------------------------- */

static void conn_close(struct admin_conn *c);
static void conn_process(struct admin_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_defer(uv_timer_t *t);

static void admin_maybe_free(struct kp_admin *a)
{
	if (a->closing && a->open_handles == 0)
		free(a);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct kp_admin *a = h->data;
	a->open_handles--;
	admin_maybe_free(a);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct admin_conn *c = h->data;
	struct kp_admin *a = c->a;
	free(c->buf);
	free(c);
	a->open_handles--;
	admin_maybe_free(a);
}

static void conn_close(struct admin_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	if (c->listed) {
		struct kp_admin *a = c->a;
		if (c->prev)
			c->prev->next = c->next;
		else
			a->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		c->listed = 0;
		a->n_conns--;
	}
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct admin_conn *c = req->data;
	if (status < 0 && !c->closing)
		conn_close(c);
}

/* All responses are out and the connection is done: send FIN and keep
 * reading (and dropping) until the client closes, so unread request bytes
 * do not turn our close into a reset that destroys the response. */
static void conn_finish(struct admin_conn *c)
{
	if (c->closing || c->lingering)
		return;
	c->lingering = 1;
	c->linger_ms = uv_now(c->a->srv->loop);
	c->len = 0;
	c->shut.data = c;
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		conn_close(c);
		return;
	}
	if (!c->reading)
		conn_process(c); /* restarts reading */
}

static void on_write(uv_write_t *req, int status)
{
	struct admin_write *w = K_CONTAINER_OF(req, struct admin_write, req);
	struct admin_conn *c = w->c;
	struct kp_admin *a = c->a;
	int action = w->action;
	free(w);
	c->writes--;
	if (action && !a->closing) {
		/* Run the shutdown from a fresh callback: it may close this
		 * admin, which must not happen under our feet here. */
		a->pending_action = action;
		uv_timer_start(&a->defer, on_defer, 0, 0);
	}
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->writes == 0) {
		if (c->close_after)
			conn_finish(c);
		else
			conn_process(c);
	}
}

static void send_resp(struct admin_conn *c, struct admin_resp *r, int keep, int head_only,
		      int minor)
{
	if (r->body.oom) {
		free(r->body.p);
		r->body = (struct k_sbuf){0};
		r->status = 500;
		r->ctype = CT_TEXT;
		k_sbuf_adds(&r->body, "out of memory\n");
		r->action = ACTION_NONE;
	}
	char head[512];
	int hn = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\n"
			  "content-type: %s\r\n"
			  "content-length: %zu\r\n"
			  "cache-control: no-cache, max-age=0\r\n"
			  "x-content-type-options: nosniff\r\n"
			  "%s"
			  "\r\n",
			  r->status, k_h1_reason(r->status), r->ctype, r->body.len,
			  !keep	       ? "connection: close\r\n"
			  : minor == 0 ? "connection: keep-alive\r\n"
				       : "");
	size_t blen = head_only ? 0 : r->body.len;
	struct admin_write *w = malloc(sizeof(*w) + (size_t)hn + blen);
	if (!w) {
		free(r->body.p);
		conn_close(c);
		return;
	}
	memcpy(w->data, head, (size_t)hn);
	if (blen)
		memcpy(w->data + hn, r->body.p, blen);
	free(r->body.p);
	r->body = (struct k_sbuf){0};
	w->c = c;
	w->action = r->action;
	w->len = (size_t)hn + blen;
	uv_buf_t ub = uv_buf_init(w->data, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write) < 0) {
		free(w);
		conn_close(c);
		return;
	}
	c->writes++;
	if (!keep)
		c->close_after = 1;
}

/* A response without a request we could parse (400, 431, ...). */
static void send_error(struct admin_conn *c, int status, const char *why)
{
	struct admin_resp r = {.status = status, .ctype = CT_TEXT};
	k_sbuf_adds(&r.body, why);
	k_sbuf_add(&r.body, "\n", 1);
	send_resp(c, &r, 0, 0, 1);
	c->close_after = 1;
}

static void handle_request(struct admin_conn *c, const struct k_h1_msg *m, int keep)
{
	struct admin_req rq = {.method = m->method};
	struct k_str t = m->target;
	if (m->target_form != K_H1_TARGET_ORIGIN) {
		send_error(c, 400, "admin requests need an origin-form target (/path)");
		return;
	}
	const char *qm = memchr(t.p, '?', t.len);
	rq.path.p = t.p;
	rq.path.len = qm ? (size_t)(qm - t.p) : t.len;
	rq.query.p = qm ? qm + 1 : t.p + t.len;
	rq.query.len = qm ? t.len - rq.path.len - 1 : 0;
	rq.post = k_str_eq(m->method, K_STR_LIT("POST"));
	int head_only = k_str_eq(m->method, K_STR_LIT("HEAD"));

	struct admin_resp r = {.status = 500, .ctype = CT_TEXT};
	dispatch(c->a, &rq, &r);
	k_debug("admin: %.*s %.*s -> %d", (int)m->method.len, m->method.p, (int)t.len, t.p,
		r.status);
	send_resp(c, &r, keep, head_only, m->minor);
}

static void consume(struct admin_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= (uint32_t)n;
}

/* Read while we can take input: paused while a response is being written,
 * so a client that pipelines without reading cannot make us buffer
 * answers; on again when lingering, to drop input until EOF. */
static void conn_update_reading(struct admin_conn *c)
{
	int want = c->lingering || (c->writes == 0 && !c->close_after);
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
			conn_close(c);
			return;
		}
		c->reading = 1;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
}

/* Handle what is buffered: at most one response in flight at a time. */
static void conn_process(struct admin_conn *c)
{
	struct kp_admin *a = c->a;
	while (!c->closing && !c->close_after && c->writes == 0 && c->len) {
		if (c->in_body) {
			struct k_str data;
			struct k_h1_error err;
			int rc = k_h1_body_decode(&c->body, c->buf, c->len, &data, &err);
			if (rc < 0) {
				conn_close(c);
				return;
			}
			c->body_seen += data.len;
			if (c->body_seen > ADMIN_MAX_BODY) {
				conn_close(c);
				return;
			}
			consume(c, (size_t)rc);
			if (c->body.done)
				c->in_body = 0;
			else if (rc == 0)
				break;
			continue;
		}
		struct k_h1_limits lim = {ADMIN_MAX_HEAD, K_H1_DEFAULT_MAX_HEADERS};
		struct k_h1_header hdrs[K_H1_DEFAULT_MAX_HEADERS];
		struct k_h1_msg m;
		struct k_h1_error err = {0};
		int rc = k_h1_parse_request(c->buf, c->len, c->parsed, &lim, &m, hdrs,
					    K_ARRAY_LEN(hdrs), &err);
		if (rc == K_EAGAIN) {
			c->parsed = c->len;
			if (c->len >= ADMIN_MAX_HEAD)
				send_error(c, 431, "request header too large");
			break;
		}
		if (rc < 0) {
			send_error(c, err.status ? err.status : 400,
				   err.reason ? err.reason : "bad request");
			break;
		}
		c->parsed = 0;
		int has_body = m.body == K_H1_BODY_CHUNKED ||
			       (m.body == K_H1_BODY_LENGTH && m.content_length);
		int keep = m.keep_alive && !a->closing;
		/* With Expect: 100-continue the client may never send the
		 * body once it sees our answer, so we could not tell where
		 * the next request starts: close instead. */
		if (has_body && (m.expect_continue || m.body == K_H1_BODY_CLOSE ||
				 (m.body == K_H1_BODY_LENGTH && m.content_length > ADMIN_MAX_BODY)))
			keep = 0;
		handle_request(c, &m, keep);
		if (c->closing)
			return;
		if (has_body && keep) {
			k_h1_body_init(&c->body, &m, &lim);
			c->body_seen = 0;
			c->in_body = 1;
		}
		consume(c, (size_t)rc);
	}
	if (c->closing)
		return;
	/* An idle keep-alive connection holds no buffer. */
	if (c->len == 0 && !c->lingering) {
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
	conn_update_reading(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct admin_conn *c = h->data;
	if (c->lingering)
		c->len = 0; /* dropping input */
	if (c->cap - c->len < 1024 && c->cap < ADMIN_BUF_MAX) {
		uint32_t cap = c->cap ? c->cap * 2 : 4096;
		if (cap > ADMIN_BUF_MAX)
			cap = ADMIN_BUF_MAX;
		char *p = realloc(c->buf, cap);
		if (p) {
			c->buf = p;
			c->cap = cap;
		}
	}
	/* A zero-length buffer makes libuv report UV_ENOBUFS: we close. */
	*buf = uv_buf_init(c->buf ? c->buf + c->len : NULL, c->buf ? c->cap - c->len : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct admin_conn *c = s->data;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	c->last_ms = uv_now(s->loop);
	if (c->lingering || c->close_after)
		return; /* dropped */
	c->len += (uint32_t)nread;
	conn_process(c);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct kp_admin *a = server->data;
	if (status < 0 || a->closing)
		return;
	struct admin_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return; /* out of memory: libuv keeps it pending until the next
			 * accept, so the admin stalls rather than crashes */
	c->a = a;
	uv_tcp_init(server->loop, &c->tcp);
	c->tcp.data = c;
	a->open_handles++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		c->closing = 1;
		uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
		return;
	}
	if (a->n_conns >= ADMIN_MAX_CONNS) {
		/* Accept and drop: leaving it in the backlog would wake us
		 * again at once. */
		k_warn("admin: more than %u connections, closing a new one", ADMIN_MAX_CONNS);
		c->closing = 1;
		uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
		return;
	}
	c->listed = 1;
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
	a->n_conns++;
	c->last_ms = uv_now(server->loop);
	uv_tcp_nodelay(&c->tcp, 1);
	conn_update_reading(c);
}

static void on_sweep(uv_timer_t *t)
{
	struct kp_admin *a = t->data;
	uint64_t now = uv_now(t->loop);
	for (struct admin_conn *c = a->conns, *next; c; c = next) {
		next = c->next;
		if (c->lingering) {
			if (now - c->linger_ms >= ADMIN_LINGER_MS)
				conn_close(c);
		} else if (c->writes == 0 && now - c->last_ms >= ADMIN_IDLE_MS) {
			conn_close(c);
		}
	}
}

static void on_defer(uv_timer_t *t)
{
	struct kp_admin *a = t->data;
	int action = a->pending_action;
	a->pending_action = ACTION_NONE;
	if (action == ACTION_QUIT || action == ACTION_DRAIN) {
		k_info("admin: %s requested",
		       action == ACTION_QUIT ? "/quitquitquit" : "/drain_listeners");
		/* May call kp_admin_close(a): nothing touches `a` after. */
		kp_server_shutdown(a->srv, action == ACTION_DRAIN);
	}
}

int kp_admin_start(struct kp_server *srv, const struct sockaddr *addr, struct kp_admin **out,
		   char *err, size_t errlen)
{
	socklen_t alen;
	*out = NULL;
	if (addr->sa_family == AF_INET)
		alen = sizeof(struct sockaddr_in);
	else if (addr->sa_family == AF_INET6)
		alen = sizeof(struct sockaddr_in6);
	else {
		snprintf(err, errlen, "admin address: unsupported family %d", addr->sa_family);
		return K_EINVAL;
	}
	char want[80];
	fmt_addr_port(addr, want, sizeof(want));

	/* Bind with plain sockets first, so a failure is reported here and
	 * leaves nothing for the loop to close. */
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "admin socket %s: %s", want, strerror(errno));
		return K_EIO;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, addr, alen) < 0 || listen(fd, 128) < 0) {
		snprintf(err, errlen, "admin bind %s: %s", want, strerror(errno));
		close(fd);
		return K_EIO;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) < 0)
		memcpy(&bound, addr, alen);

	struct kp_admin *a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		snprintf(err, errlen, "admin: out of memory");
		return K_ENOMEM;
	}
	a->srv = srv;
	fmt_addr_port((const struct sockaddr *)&bound, a->addr_str, sizeof(a->addr_str));
	uv_tcp_init(srv->loop, &a->listener);
	uv_timer_init(srv->loop, &a->sweep);
	uv_timer_init(srv->loop, &a->defer);
	a->listener.data = a->sweep.data = a->defer.data = a;
	a->open_handles = 3;
	int rc = uv_tcp_open(&a->listener, fd);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
	if (rc < 0) {
		snprintf(err, errlen, "admin listen %s: %s", want, uv_strerror(rc));
		if (uv_fileno((uv_handle_t *)&a->listener, &(uv_os_fd_t){0}) < 0)
			close(fd);
		kp_admin_close(a);
		return K_EIO;
	}
	uv_timer_start(&a->sweep, on_sweep, ADMIN_SWEEP_MS, ADMIN_SWEEP_MS);
	/* Housekeeping alone must not keep the loop alive. */
	uv_unref((uv_handle_t *)&a->sweep);
	k_info("admin listening on %s", a->addr_str);
	*out = a;
	return 0;
}

void kp_admin_close(struct kp_admin *a)
{
	if (!a || a->closing)
		return;
	a->closing = 1;
	uv_close((uv_handle_t *)&a->listener, on_handle_closed);
	uv_close((uv_handle_t *)&a->sweep, on_handle_closed);
	uv_close((uv_handle_t *)&a->defer, on_handle_closed);
	while (a->conns)
		conn_close(a->conns);
}

const char *kp_admin_address(const struct kp_admin *a)
{
	return a->addr_str;
}

int kp_admin_healthcheck_failed(const struct kp_admin *a)
{
	return a && a->healthcheck_failed;
}
