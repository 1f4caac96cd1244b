/* stats.c — the stats layout (names, Prometheus tags) and the renderers
 * behind /stats, /stats?format=json and /stats/prometheus.
 *
 * Building the layout happens once per config compile, so it may allocate
 * freely; rendering happens on the main thread when an admin request
 * arrives, so it favours simplicity over speed too. Nothing here touches
 * the data path except the inline helpers in stats.h. */
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k_common.h"
#include "k_sbuf.h"
#include "stats.h"

struct kp_field {
	const char *name;
	enum kp_stat_kind kind;
};

#define KP_FIELD(kind, name) {#name, KP_##kind},
static const struct kp_field kp_http_fields[] = {KP_HTTP_STATS(KP_FIELD)};
static const struct kp_field kp_cluster_fields[] = {KP_CLUSTER_STATS(KP_FIELD)};
static const struct kp_field kp_listener_fields[] = {KP_LISTENER_STATS(KP_FIELD)};
static const struct kp_field kp_server_fields[] = {KP_SERVER_STATS(KP_FIELD)};
#undef KP_FIELD

struct kp_scope_kind {
	const char *kind;
	const char *tag_name; /* Envoy's default tag extractor for the scope */
	const struct kp_field *fields;
	uint32_t count;
};

static const struct kp_scope_kind kp_scope_kinds[] = {
	{"cluster", "envoy_cluster_name", kp_cluster_fields, K_ARRAY_LEN(kp_cluster_fields)},
	{"http", "envoy_http_conn_manager_prefix", kp_http_fields, K_ARRAY_LEN(kp_http_fields)},
	{"listener", "envoy_listener_address", kp_listener_fields, K_ARRAY_LEN(kp_listener_fields)},
	{"server", NULL, kp_server_fields, K_ARRAY_LEN(kp_server_fields)},
};

/* ---- layout ---------------------------------------------------------- */

/* Escape a Prometheus label value (backslash, quote, newline) into out,
 * which holds 2 * strlen(v) + 1 bytes. Returns the length. */
static size_t prom_escape(char *out, const char *v)
{
	size_t n = 0;
	for (; *v; v++) {
		if (*v == '\\' || *v == '"') {
			out[n++] = '\\';
			out[n++] = *v;
		} else if (*v == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else {
			out[n++] = *v;
		}
	}
	out[n] = '\0';
	return n;
}

/* Prometheus metric names allow [a-zA-Z0-9_:]; Envoy maps anything else
 * to '_' (and we keep ':' out as well, it is reserved for recording
 * rules). */
static void prom_sanitize(char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			*s = '_';
	}
}

/* Envoy's response_code_class extractor matches "_rq_<d>xx" at the end of
 * a name; returns the class digit or 0. */
static char rq_class(const char *field)
{
	size_t n = strlen(field);
	if (n < 7)
		return 0;
	const char *t = field + n - 7;
	if (memcmp(t, "_rq_", 4) == 0 && t[4] >= '1' && t[4] <= '5' && t[5] == 'x' && t[6] == 'x')
		return t[4];
	return 0;
}

/* Fill one def; all its strings live in a single allocation. */
static int def_init(struct kp_stat_def *d, const struct kp_scope_kind *sk, const char *scope,
		    const struct kp_field *f)
{
	size_t kl = strlen(sk->kind), sl = scope ? strlen(scope) : 0;
	size_t fl = strlen(f->name);
	size_t tnl = sk->tag_name ? strlen(sk->tag_name) : 0;
	/* name + prom_name + tag_name + tag_value + labels, generous. */
	size_t need = (kl + sl + fl + 3) * 2 + tnl + 1 + sl + 1 + (tnl + 2 * sl + 64) + 8;
	char *blk = malloc(need), *p = blk;
	if (!blk)
		return K_ENOMEM;

	d->kind = f->kind;
	d->name = p;
	if (scope)
		p += sprintf(p, "%s.%s.%s", sk->kind, scope, f->name) + 1;
	else
		p += sprintf(p, "%s.%s", sk->kind, f->name) + 1;

	char cls = rq_class(f->name);
	d->prom_name = p;
	p += sprintf(p, "%s_%.*s", sk->kind, (int)(cls ? fl - 4 : fl), f->name);
	if (cls)
		p += sprintf(p, "_xx");
	p++;
	prom_sanitize(d->prom_name);

	d->tag_name = NULL;
	d->tag_value = NULL;
	if (sk->tag_name) {
		d->tag_name = p;
		p += sprintf(p, "%s", sk->tag_name) + 1;
		d->tag_value = p;
		p += sprintf(p, "%s", scope) + 1;
	}

	d->prom_labels = p;
	*p = '\0';
	if (cls)
		p += sprintf(p, "envoy_response_code_class=\"%c\"%s", cls, sk->tag_name ? "," : "");
	if (sk->tag_name) {
		p += sprintf(p, "%s=\"", sk->tag_name);
		p += prom_escape(p, scope);
		p += sprintf(p, "\"");
	}
	return 0;
}

/* The scope kind a full name belongs to ("cluster.x.y" -> cluster). */
static const struct kp_scope_kind *scope_kind_of(const char *name)
{
	for (size_t i = 0; i < K_ARRAY_LEN(kp_scope_kinds); i++) {
		size_t n = strlen(kp_scope_kinds[i].kind);
		if (strncmp(name, kp_scope_kinds[i].kind, n) == 0 && name[n] == '.')
			return &kp_scope_kinds[i];
	}
	return NULL;
}

/* name == "<kind>.<scope>.<field>" (or "<kind>.<field>" without scope). */
static int name_is(const char *name, const struct kp_scope_kind *sk, const char *scope,
		   const char *field)
{
	size_t n = strlen(sk->kind);
	if (strncmp(name, sk->kind, n) != 0 || name[n] != '.')
		return 0;
	name += n + 1;
	if (scope) {
		n = strlen(scope);
		if (strncmp(name, scope, n) != 0 || name[n] != '.')
			return 0;
		name += n + 1;
	}
	return strcmp(name, field) == 0;
}

int kp_stat_layout_add_scope(struct kp_stat_layout *l, const char *scope_kind,
			     const char *scope_name)
{
	const struct kp_scope_kind *sk = NULL;
	for (size_t i = 0; i < K_ARRAY_LEN(kp_scope_kinds); i++)
		if (scope_kind && strcmp(scope_kind, kp_scope_kinds[i].kind) == 0)
			sk = &kp_scope_kinds[i];
	if (!sk)
		return K_EINVAL;
	if (sk->tag_name && (!scope_name || !*scope_name))
		return K_EINVAL;
	if (!sk->tag_name)
		scope_name = NULL;

	/* Envoy's stat names never contain ':' (it would clash with the text
	 * format's "name: value"); listener addresses become 127.0.0.1_80. */
	char *scope = NULL;
	if (scope_name) {
		scope = strdup(scope_name);
		if (!scope)
			return K_ENOMEM;
		for (char *c = scope; *c; c++)
			if (*c == ':')
				*c = '_';
	}

	/* Same scope twice: share the block (see stats.h). Scopes are
	 * contiguous blocks whose size follows from their kind, so walking
	 * scope by scope costs one comparison per scope, not per stat. */
	for (uint32_t i = 0; i < l->n;) {
		const struct kp_scope_kind *k = scope_kind_of(l->defs[i].name);
		if (!k)
			break; /* not laid out by us: no sharing */
		if (k == sk && name_is(l->defs[i].name, sk, scope, sk->fields[0].name)) {
			free(scope);
			return (int)i;
		}
		i += k->count;
	}

	if (l->n + sk->count > l->cap) {
		uint32_t cap = l->cap ? l->cap : 64;
		while (cap < l->n + sk->count)
			cap *= 2;
		struct kp_stat_def *defs = realloc(l->defs, cap * sizeof(*defs));
		if (!defs) {
			free(scope);
			return K_ENOMEM;
		}
		l->defs = defs;
		l->cap = cap;
	}
	uint32_t base = l->n;
	for (uint32_t i = 0; i < sk->count; i++) {
		if (def_init(&l->defs[base + i], sk, scope, &sk->fields[i]) < 0) {
			for (uint32_t j = 0; j < i; j++)
				free(l->defs[base + j].name);
			free(scope);
			return K_ENOMEM;
		}
	}
	l->n += sk->count;
	free(scope);
	return (int)base;
}

void kp_stat_layout_free(struct kp_stat_layout *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		free(l->defs[i].name);
	free(l->defs);
	l->defs = NULL;
	l->n = l->cap = 0;
}

/* ---- rendering ------------------------------------------------------- */

/* The stats to print, in order, with their summed values. */
struct kp_snapshot {
	uint32_t *idx;
	uint64_t *val;
	uint32_t n;
};

static void seterr(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

static int cmp_name(const void *a, const void *b, void *arg)
{
	const struct kp_stat_layout *l = arg;
	return strcmp(l->defs[*(const uint32_t *)a].name, l->defs[*(const uint32_t *)b].name);
}

static int cmp_prom(const void *a, const void *b, void *arg)
{
	const struct kp_stat_layout *l = arg;
	const struct kp_stat_def *x = &l->defs[*(const uint32_t *)a];
	const struct kp_stat_def *y = &l->defs[*(const uint32_t *)b];
	int c = strcmp(x->prom_name, y->prom_name);
	return c ? c : strcmp(x->prom_labels, y->prom_labels);
}

/* Select (filter, used_only), sum and sort. Returns 0, K_EINVAL (bad
 * regex; err says why) or K_ENOMEM. */
static int snapshot(const struct kp_stat_layout *l, const uint64_t *const *shards,
		    uint32_t n_shards, const char *filter, int used_only, int prom_order,
		    struct kp_snapshot *s, char *err, size_t errlen)
{
	regex_t re;
	int have_re = 0;
	memset(s, 0, sizeof(*s));
	if (filter && *filter) {
		int rc = regcomp(&re, filter, REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			char why[128];
			regerror(rc, &re, why, sizeof(why));
			if (err && errlen)
				snprintf(err, errlen, "invalid regex \"%s\": %s", filter, why);
			return K_EINVAL;
		}
		have_re = 1;
	}
	s->idx = malloc((l->n ? l->n : 1) * sizeof(*s->idx));
	s->val = malloc((l->n ? l->n : 1) * sizeof(*s->val));
	if (!s->idx || !s->val) {
		free(s->idx);
		free(s->val);
		if (have_re)
			regfree(&re);
		seterr(err, errlen, "out of memory");
		return K_ENOMEM;
	}
	for (uint32_t i = 0; i < l->n; i++) {
		int used = 0;
		for (uint32_t k = 0; k < n_shards && !used; k++)
			used = shards[k] && kp_stat_get(shards[k], i) != 0;
		if (used_only && !used)
			continue;
		if (have_re && regexec(&re, l->defs[i].name, 0, NULL, 0) != 0)
			continue;
		s->idx[s->n++] = i;
	}
	if (have_re)
		regfree(&re);
	qsort_r(s->idx, s->n, sizeof(*s->idx), prom_order ? cmp_prom : cmp_name, (void *)l);
	/* Sum again in output order so val[j] belongs to idx[j]. */
	for (uint32_t j = 0; j < s->n; j++) {
		uint64_t sum = 0;
		for (uint32_t k = 0; k < n_shards; k++)
			if (shards[k])
				sum += kp_stat_get(shards[k], s->idx[j]);
		s->val[j] = sum;
	}
	return 0;
}

static void snapshot_free(struct kp_snapshot *s)
{
	free(s->idx);
	free(s->val);
}

static void add_value(struct k_sbuf *b, enum kp_stat_kind kind, uint64_t v)
{
	/* A gauge summed over shards is right modulo 2^64; if it is "negative"
	 * a shard is mid-update or a decrement lost its increment, and a
	 * signed print shows that honestly instead of 18446744073709551615. */
	if (kind == KP_GAUGE)
		k_sbuf_printf(b, "%" PRId64, (int64_t)v);
	else
		k_sbuf_printf(b, "%" PRIu64, v);
}

static char *finish(struct k_sbuf *b, size_t *len, char *err, size_t errlen)
{
	if (!b->oom && !b->p)
		k_sbuf_reserve(b, 0);
	if (b->oom) {
		free(b->p);
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	b->p[b->len] = '\0';
	if (len)
		*len = b->len;
	return b->p;
}

char *kp_stats_render_text(const struct kp_stat_layout *l, const uint64_t *const *shards,
			   uint32_t n_shards, const char *filter, int used_only, size_t *len,
			   char *err, size_t errlen)
{
	struct kp_snapshot s;
	if (snapshot(l, shards, n_shards, filter, used_only, 0, &s, err, errlen) < 0)
		return NULL;
	struct k_sbuf b = {0};
	for (uint32_t j = 0; j < s.n; j++) {
		const struct kp_stat_def *d = &l->defs[s.idx[j]];
		k_sbuf_adds(&b, d->name);
		k_sbuf_add(&b, ": ", 2);
		add_value(&b, d->kind, s.val[j]);
		k_sbuf_add(&b, "\n", 1);
	}
	snapshot_free(&s);
	return finish(&b, len, err, errlen);
}

char *kp_stats_render_json(const struct kp_stat_layout *l, const uint64_t *const *shards,
			   uint32_t n_shards, const char *filter, int used_only, size_t *len,
			   char *err, size_t errlen)
{
	struct kp_snapshot s;
	if (snapshot(l, shards, n_shards, filter, used_only, 0, &s, err, errlen) < 0)
		return NULL;
	struct k_sbuf b = {0};
	k_sbuf_adds(&b, "{\"stats\":[");
	for (uint32_t j = 0; j < s.n; j++) {
		const struct kp_stat_def *d = &l->defs[s.idx[j]];
		k_sbuf_adds(&b, j ? ",\n{\"name\":" : "\n{\"name\":");
		k_sbuf_json_str(&b, d->name);
		k_sbuf_adds(&b, ",\"value\":");
		add_value(&b, d->kind, s.val[j]);
		k_sbuf_add(&b, "}", 1);
	}
	k_sbuf_adds(&b, "\n]}\n");
	snapshot_free(&s);
	return finish(&b, len, err, errlen);
}

char *kp_stats_render_prometheus(const struct kp_stat_layout *l, const uint64_t *const *shards,
				 uint32_t n_shards, const char *filter, int used_only, size_t *len,
				 char *err, size_t errlen)
{
	struct kp_snapshot s;
	if (snapshot(l, shards, n_shards, filter, used_only, 1, &s, err, errlen) < 0)
		return NULL;
	struct k_sbuf b = {0};
	const char *cur = NULL;
	for (uint32_t j = 0; j < s.n; j++) {
		const struct kp_stat_def *d = &l->defs[s.idx[j]];
		/* Sorting by prom_name keeps every series of a metric
		 * together, so each gets exactly one TYPE line (Prometheus
		 * rejects a scrape that repeats one). */
		if (!cur || strcmp(cur, d->prom_name) != 0) {
			cur = d->prom_name;
			k_sbuf_adds(&b, "# TYPE envoy_");
			k_sbuf_adds(&b, d->prom_name);
			k_sbuf_adds(&b, d->kind == KP_GAUGE ? " gauge\n" : " counter\n");
		}
		k_sbuf_adds(&b, "envoy_");
		k_sbuf_adds(&b, d->prom_name);
		if (d->prom_labels[0]) {
			k_sbuf_add(&b, "{", 1);
			k_sbuf_adds(&b, d->prom_labels);
			k_sbuf_add(&b, "}", 1);
		}
		k_sbuf_add(&b, " ", 1);
		add_value(&b, d->kind, s.val[j]);
		k_sbuf_add(&b, "\n", 1);
	}
	snapshot_free(&s);
	return finish(&b, len, err, errlen);
}
