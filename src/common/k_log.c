#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "k_log.h"

enum k_log_level k_log_min = K_LOG_INFO;
static __thread char k_log_thread[16] = "main";

static const char *const k_log_names[] = {"trace", "debug", "info", "warning", "error", "off"};

int k_log_parse_level(const char *s)
{
	static const struct {
		const char *name;
		int lvl;
	} map[] = {
		{"trace", K_LOG_TRACE},	   {"debug", K_LOG_DEBUG},  {"info", K_LOG_INFO},
		{"warn", K_LOG_WARN},	   {"warning", K_LOG_WARN}, {"error", K_LOG_ERROR},
		{"critical", K_LOG_ERROR}, {"off", K_LOG_OFF},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcasecmp(s, map[i].name) == 0)
			return map[i].lvl;
	return -1;
}

void k_log_set_thread_name(const char *name)
{
	snprintf(k_log_thread, sizeof(k_log_thread), "%s", name);
}

void k_log_write(enum k_log_level lvl, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "[%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ] [%s] [%s] ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, k_log_names[lvl], k_log_thread);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	size_t len = (size_t)n + ((size_t)m < sizeof(line) - (size_t)n - 2
					  ? (size_t)m
					  : sizeof(line) - (size_t)n - 2);
	line[len++] = '\n';
	/* One write(2) per line so lines from threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
