/* main.c — kite-sample: flags, environment, listeners and signals. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k_log.h"
#include "sample.h"

struct sample_cfg g_cfg;

#define MAX_LISTEN		16
#define DEFAULT_LISTEN		"127.0.0.1:9080"
#define DEFAULT_CALL_TIMEOUT_MS 5000u

static uv_signal_t sig_term, sig_int;

static void usage(FILE *f)
{
	static const char *const lines[] = {
		"usage: kite-sample [options]",
		"  --listen HOST:PORT   address to serve; repeatable",
		"                       (env KITE_SAMPLE_LISTEN, "
		"comma-separated;",
		"                       default " DEFAULT_LISTEN ")",
		"  --app NAME           app name (env APP; default sample)",
		"  --version V          version label (env VERSION; default "
		"v1)",
		"  --call URL           http://host[:port]/path to call for "
		"each",
		"                       request; repeatable (env CALLS,",
		"                       comma-separated)",
		"  --call-timeout-ms N  per-call timeout (default 5000)",
		"  --log-level LEVEL    trace|debug|info|warn|error|off",
		"                       (env KITE_LOG_LEVEL; default info)",
		"Calls honour http_proxy/HTTP_PROXY and no_proxy/NO_PROXY.",
		"Query controls: status, delay_ms, size, chunked, close,",
		"headers, drop, echo_headers, fail_on_call_error;",
		"see src/sample/README.md.",
	};
	for (size_t i = 0; i < K_ARRAY_LEN(lines); i++)
		fprintf(f, "%s\n", lines[i]);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) {
		fprintf(stderr, "kite-sample: out of memory\n");
		exit(1);
	}
	return d;
}

static char *xstrndup(const char *s, size_t n)
{
	char *d = strndup(s, n);
	if (!d) {
		fprintf(stderr, "kite-sample: out of memory\n");
		exit(1);
	}
	return d;
}

static int parse_port(const char *s, size_t n, uint16_t *port)
{
	if (n == 0 || n > 5)
		return K_EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return K_EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return K_EINVAL;
	*port = (uint16_t)v;
	return K_OK;
}

/* "host[:port]" with optional [v6] brackets; `def` when the port is absent. */
static int parse_hostport(const char *s, size_t n, uint16_t def, char **host, uint16_t *port,
			  const char **why)
{
	const char *hs = s, *he;
	const char *rest;
	if (n > 0 && s[0] == '[') {
		he = memchr(s, ']', n);
		if (!he) {
			*why = "unterminated [IPv6] address";
			return K_EINVAL;
		}
		hs = s + 1;
		rest = he + 1;
	} else {
		he = memchr(s, ':', n);
		if (!he)
			he = s + n;
		rest = he;
	}
	if (he == hs) {
		*why = "empty host";
		return K_EINVAL;
	}
	size_t rn = (size_t)(s + n - rest);
	*port = def;
	if (rn > 0) {
		if (rest[0] != ':' || parse_port(rest + 1, rn - 1, port) != K_OK) {
			*why = "bad port";
			return K_EINVAL;
		}
	}
	*host = xstrndup(hs, (size_t)(he - hs));
	return K_OK;
}

int sample_parse_url(const char *url, struct call_target *t, const char **why)
{
	memset(t, 0, sizeof(*t));
	if (strncasecmp(url, "http://", 7) != 0) {
		*why = "only http:// URLs are supported";
		return K_EINVAL;
	}
	const char *a = url + 7;
	size_t alen = strcspn(a, "/?#");
	if (alen == 0) {
		*why = "missing host";
		return K_EINVAL;
	}
	if (memchr(a, '@', alen)) {
		*why = "user info in URLs is not supported";
		return K_EINVAL;
	}
	if (parse_hostport(a, alen, 80, &t->host, &t->port, why) != K_OK)
		return K_EINVAL;
	const char *path = a + alen;
	size_t plen = strcspn(path, "#");
	for (size_t i = 0; i < plen; i++) {
		unsigned char ch = (unsigned char)path[i];
		if (ch <= 0x20 || ch >= 0x7f) {
			free(t->host);
			t->host = NULL;
			*why = "path must be visible ASCII (percent-encode it)";
			return K_EINVAL;
		}
	}
	t->url = xstrdup(url);
	t->authority = xstrndup(a, alen);
	if (plen == 0 || path[0] == '?') {
		/* "http://h?x" means path "/" with a query. */
		t->path = malloc(plen + 2);
		if (!t->path) {
			fprintf(stderr, "kite-sample: out of memory\n");
			exit(1);
		}
		t->path[0] = '/';
		memcpy(t->path + 1, path, plen);
		t->path[plen + 1] = 0;
	} else {
		t->path = xstrndup(path, plen);
	}
	return K_OK;
}

void sample_free_target(struct call_target *t)
{
	free(t->url);
	free(t->host);
	free(t->authority);
	free(t->path);
	memset(t, 0, sizeof(*t));
}

static int add_call(const char *url)
{
	const char *why = "";
	if (g_cfg.ncalls >= SAMPLE_MAX_CALLS) {
		k_error("too many --call URLs (max %d)", SAMPLE_MAX_CALLS);
		return K_ELIMIT;
	}
	if (sample_parse_url(url, &g_cfg.calls[g_cfg.ncalls], &why) != K_OK) {
		k_error("bad call URL \"%s\": %s", url, why);
		return K_EINVAL;
	}
	g_cfg.ncalls++;
	return K_OK;
}

/* Split a comma-separated environment value and feed each item to fn. */
static int split_list(const char *list, int (*fn)(const char *item, void *arg), void *arg)
{
	char *copy = xstrdup(list);
	int rc = K_OK;
	for (char *save = NULL, *it = strtok_r(copy, ",", &save); it;
	     it = strtok_r(NULL, ",", &save)) {
		while (*it == ' ')
			it++;
		size_t n = strlen(it);
		while (n && it[n - 1] == ' ')
			it[--n] = 0;
		if (n == 0)
			continue;
		rc = fn(it, arg);
		if (rc != K_OK)
			break;
	}
	free(copy);
	return rc;
}

static int add_call_cb(const char *item, void *arg)
{
	return add_call(item);
}

struct listen_list {
	const char *addrs[MAX_LISTEN];
	char *owned[MAX_LISTEN];
	unsigned n;
};

static int add_listen(struct listen_list *l, const char *addr, int copy)
{
	if (l->n >= MAX_LISTEN) {
		k_error("too many --listen addresses (max %d)", MAX_LISTEN);
		return K_ELIMIT;
	}
	l->owned[l->n] = copy ? xstrdup(addr) : NULL;
	l->addrs[l->n] = copy ? l->owned[l->n] : addr;
	l->n++;
	return K_OK;
}

static int add_listen_cb(const char *item, void *arg)
{
	return add_listen(arg, item, 1);
}

static int parse_proxy_env(void)
{
	const char *v = getenv("http_proxy");
	if (!v || !*v)
		v = getenv("HTTP_PROXY");
	if (!v || !*v)
		return K_OK;
	const char *a = v;
	if (strncasecmp(a, "http://", 7) == 0)
		a += 7;
	else if (strstr(a, "://")) {
		k_error("http_proxy \"%s\": only http:// proxies are supported", v);
		return K_EINVAL;
	}
	size_t alen = strcspn(a, "/");
	const char *at = memchr(a, '@', alen);
	if (at) {
		k_error("http_proxy \"%s\": proxy credentials are not "
			"supported",
			v);
		return K_EINVAL;
	}
	const char *why = "";
	if (parse_hostport(a, alen, 80, &g_cfg.proxy.host, &g_cfg.proxy.port, &why) != K_OK) {
		k_error("http_proxy \"%s\": %s", v, why);
		return K_EINVAL;
	}
	g_cfg.proxy.enabled = 1;
	const char *np = getenv("no_proxy");
	if (!np || !*np)
		np = getenv("NO_PROXY");
	if (np && *np)
		g_cfg.no_proxy = xstrdup(np);
	k_info("fan-out calls go through proxy %s:%u%s%s", g_cfg.proxy.host, g_cfg.proxy.port,
	       g_cfg.no_proxy ? " except no_proxy=" : "", g_cfg.no_proxy ? g_cfg.no_proxy : "");
	return K_OK;
}

static void on_signal(uv_signal_t *h, int signum)
{
	k_info("signal %d: shutting down", signum);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	server_shutdown();
}

/* The value of "--name VALUE" or "--name=VALUE" when argv[*i] is that
 * flag (advancing *i past a separate value), else NULL. */
static const char *flag_value(int argc, char **argv, int *i, const char *name)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != 0)
		return NULL;
	if (*i + 1 >= argc) {
		fprintf(stderr, "kite-sample: %s needs a value\n", name);
		exit(2);
	}
	return argv[++*i];
}

static void free_config(struct listen_list *l)
{
	for (unsigned i = 0; i < g_cfg.ncalls; i++)
		sample_free_target(&g_cfg.calls[i]);
	g_cfg.ncalls = 0;
	free(g_cfg.workload);
	free(g_cfg.proxy.host);
	free(g_cfg.no_proxy);
	for (unsigned i = 0; i < l->n; i++)
		free(l->owned[i]);
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return K_EINVAL;
	*out = (uint32_t)v;
	return K_OK;
}

int main(int argc, char **argv)
{
	struct listen_list listens = {0};
	const char *log_level = NULL;
	int rc = 1;

	g_cfg.app = getenv("APP");
	g_cfg.version = getenv("VERSION");
	g_cfg.call_timeout_ms = DEFAULT_CALL_TIMEOUT_MS;
	int cli_calls = 0;

	for (int i = 1; i < argc; i++) {
		const char *v;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			rc = 0;
			goto out;
		}
		if ((v = flag_value(argc, argv, &i, "--listen"))) {
			if (add_listen(&listens, v, 0) != K_OK)
				goto out;
		} else if ((v = flag_value(argc, argv, &i, "--app"))) {
			g_cfg.app = v;
		} else if ((v = flag_value(argc, argv, &i, "--version"))) {
			g_cfg.version = v;
		} else if ((v = flag_value(argc, argv, &i, "--call"))) {
			cli_calls = 1;
			if (add_call(v) != K_OK)
				goto out;
		} else if ((v = flag_value(argc, argv, &i, "--call-timeout-ms"))) {
			if (parse_u32(v, 3600000, &g_cfg.call_timeout_ms) ||
			    g_cfg.call_timeout_ms == 0) {
				fprintf(stderr,
					"kite-sample: --call-timeout-ms: "
					"want 1..3600000, got \"%s\"\n",
					v);
				goto out;
			}
		} else if ((v = flag_value(argc, argv, &i, "--log-level"))) {
			log_level = v;
		} else {
			fprintf(stderr, "kite-sample: unknown argument \"%s\"\n", argv[i]);
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (!log_level)
		log_level = getenv("KITE_LOG_LEVEL");
	if (log_level) {
		int lvl = k_log_parse_level(log_level);
		if (lvl < 0) {
			fprintf(stderr, "kite-sample: unknown log level \"%s\"\n", log_level);
			rc = 2;
			goto out;
		}
		k_log_min = (enum k_log_level)lvl;
	}
	if (!g_cfg.app || !*g_cfg.app)
		g_cfg.app = "sample";
	if (!g_cfg.version || !*g_cfg.version)
		g_cfg.version = "v1";
	size_t wl = strlen(g_cfg.app) + strlen(g_cfg.version) + 2;
	g_cfg.workload = malloc(wl);
	if (!g_cfg.workload)
		goto out;
	snprintf(g_cfg.workload, wl, "%s-%s", g_cfg.app, g_cfg.version);

	/* Flags win over the environment, as a whole list. */
	const char *env_calls = getenv("CALLS");
	if (!cli_calls && env_calls && split_list(env_calls, add_call_cb, NULL) != K_OK)
		goto out;
	const char *env_listen = getenv("KITE_SAMPLE_LISTEN");
	if (listens.n == 0 && env_listen && split_list(env_listen, add_listen_cb, &listens) != K_OK)
		goto out;
	if (listens.n == 0)
		add_listen(&listens, DEFAULT_LISTEN, 0);
	if (g_cfg.ncalls && parse_proxy_env() != K_OK)
		goto out;

	/* A peer closing mid-write must be an error code, not a signal. */
	signal(SIGPIPE, SIG_IGN);

	uv_loop_t *loop = uv_default_loop();
	if (server_init(loop) != K_OK)
		goto out;
	for (unsigned i = 0; i < listens.n; i++)
		if (server_listen(loop, listens.addrs[i]) != K_OK) {
			server_shutdown();
			uv_run(loop, UV_RUN_DEFAULT);
			goto out;
		}
	uv_signal_init(loop, &sig_term);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	k_info("%s serving (%u fan-out call%s)", g_cfg.workload, g_cfg.ncalls,
	       g_cfg.ncalls == 1 ? "" : "s");

	uv_run(loop, UV_RUN_DEFAULT);
	if (uv_loop_close(loop) != 0)
		k_warn("event loop closed with live handles");
	k_info("%s stopped", g_cfg.workload);
	rc = 0;
out:
	free_config(&listens);
	return rc;
}
