/* route.c — virtual host and route selection, as Envoy does it.
 *
 * Virtual hosts: the Host value, port included (domains may name ports, as
 * Istio's "reviews:9080" do), is matched case-insensitively: exact domains
 * first, then the longest "*.suffix", then the longest "prefix*", then "*".
 * Routes: the first match in order wins. */
#include <strings.h>

#include "config.h"

static int ieq(const char *a, const char *b, size_t n)
{
	return strncasecmp(a, b, n) == 0;
}

static int domain_match(const struct kp_domain *d, struct k_str h)
{
	switch (d->kind) {
	case KP_DOMAIN_EXACT: return h.len == d->len && ieq(h.p, d->text, h.len);
	/* Envoy's wildcards need at least one character in the '*'. */
	case KP_DOMAIN_SUFFIX: return h.len > d->len && ieq(h.p + h.len - d->len, d->text, d->len);
	case KP_DOMAIN_PREFIX: return h.len > d->len && ieq(h.p, d->text, d->len);
	case KP_DOMAIN_ANY: return 1;
	}
	return 0;
}

static const struct kp_vhost *find_vhost(const struct kp_route_table *t, struct k_str host)
{
	const struct kp_vhost *best = NULL;
	int best_rank = 0;
	size_t best_len = 0;
	for (uint32_t i = 0; i < t->n_vhosts; i++) {
		const struct kp_vhost *v = &t->vhosts[i];
		for (uint32_t j = 0; j < v->n_domains; j++) {
			const struct kp_domain *d = &v->domains[j];
			if (!domain_match(d, host))
				continue;
			int rank = d->kind == KP_DOMAIN_EXACT	 ? 4
				   : d->kind == KP_DOMAIN_SUFFIX ? 3
				   : d->kind == KP_DOMAIN_PREFIX ? 2
								 : 1;
			if (rank == 4)
				return v;
			if (rank > best_rank || (rank == best_rank && d->len > best_len)) {
				best = v;
				best_rank = rank;
				best_len = d->len;
			}
		}
	}
	return best;
}

static int path_match(const struct kp_route *r, struct k_str path)
{
	/* As Envoy: prefix looks at the whole :path (query included); path
	 * and path_separated_prefix at the path with the query removed. */
	const char *q = memchr(path.p, '?', path.len);
	size_t plen = q ? (size_t)(q - path.p) : path.len;
	int (*cmp)(const char *, const char *, size_t) = r->case_sensitive ? NULL : ieq;
#define EQN(a, b, n) (cmp ? cmp((a), (b), (n)) : memcmp((a), (b), (n)) == 0)
	switch (r->match) {
	case KP_MATCH_PREFIX:
		return path.len >= r->value_len && EQN(path.p, r->value, r->value_len);
	case KP_MATCH_PATH: return plen == r->value_len && EQN(path.p, r->value, plen);
	case KP_MATCH_PATH_SEPARATED_PREFIX:
		return plen >= r->value_len && EQN(path.p, r->value, r->value_len) &&
		       (plen == r->value_len || path.p[r->value_len] == '/');
	}
#undef EQN
	return 0;
}

const struct kp_route *kp_route_match(const struct kp_route_table *t, struct k_str host,
				      struct k_str path, const struct kp_vhost **vhost_out)
{
	const struct kp_vhost *v = find_vhost(t, host);
	*vhost_out = v;
	if (!v)
		return NULL;
	for (uint32_t i = 0; i < v->n_routes; i++)
		if (path_match(&v->routes[i], path))
			return &v->routes[i];
	return NULL;
}
