/* main.c — kite-proxy command line (Envoy's flags). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "k_log.h"
#include "server.h"

#define KITE_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f, "usage: kite-proxy -c FILE [options]\n"
		   "  -c, --config-path FILE   Envoy v3 bootstrap (YAML or JSON)\n"
		   "      --concurrency N      worker threads (default: number of cores)\n"
		   "  -l, --log-level LEVEL    trace|debug|info|warn|error|critical|off (default "
		   "info)\n"
		   "      --drain-time-s S     how long SIGTERM waits for in-flight requests "
		   "(default 600)\n"
		   "      --mode serve|validate  validate: check the config and exit\n"
		   "      --version            print the version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config-path", required_argument, NULL, 'c'},
		{"concurrency", required_argument, NULL, 'n'},
		{"log-level", required_argument, NULL, 'l'},
		{"drain-time-s", required_argument, NULL, 'd'},
		{"mode", required_argument, NULL, 'm'},
		{"version", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct kp_server srv;
	memset(&srv, 0, sizeof(srv));
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	srv.opts.concurrency = n > 0 ? (uint32_t)n : 1;
	srv.opts.drain_time_s = 600;
	srv.opts.log_level = "info";
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': srv.opts.config_path = optarg; break;
		case 'n':
			n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 1024) {
				fprintf(stderr,
					"kite-proxy: --concurrency: \"%s\" is not a number in [1, "
					"1024]\n",
					optarg);
				return 1;
			}
			srv.opts.concurrency = (uint32_t)n;
			break;
		case 'l':
			if (k_log_parse_level(optarg) < 0) {
				fprintf(stderr, "kite-proxy: --log-level: unknown level \"%s\"\n",
					optarg);
				return 1;
			}
			srv.opts.log_level = optarg;
			break;
		case 'd':
			n = strtol(optarg, &end, 10);
			if (*end || n < 0 || n > 86400) {
				fprintf(stderr,
					"kite-proxy: --drain-time-s: \"%s\" is not a number of "
					"seconds in [0, 86400]\n",
					optarg);
				return 1;
			}
			srv.opts.drain_time_s = (uint32_t)n;
			break;
		case 'm':
			if (strcmp(optarg, "validate") == 0)
				srv.opts.mode_validate = 1;
			else if (strcmp(optarg, "serve") != 0) {
				fprintf(stderr,
					"kite-proxy: --mode: \"%s\" is not serve or validate\n",
					optarg);
				return 1;
			}
			break;
		case 'v': printf("kite-proxy version %s\n", KITE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kite-proxy: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 1;
	}
	if (!srv.opts.config_path) {
		fprintf(stderr, "kite-proxy: a bootstrap is required: -c FILE\n");
		usage(stderr);
		return 1;
	}
	k_log_min = (enum k_log_level)k_log_parse_level(srv.opts.log_level);
	struct kp_config *cfg = NULL;
	char err[2048];
	if (kp_config_load_file(srv.opts.config_path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "kite-proxy: invalid configuration: %s\n", err);
		return 1;
	}
	if (srv.opts.mode_validate) {
		printf("configuration '%s' OK\n", srv.opts.config_path);
		kp_config_unref(cfg);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	int rc = kp_server_run(&srv, cfg);
	kp_config_unref(cfg);
	return rc;
}
