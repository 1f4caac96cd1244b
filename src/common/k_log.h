/* k_log.h — leveled logging to stderr, safe from any thread.
 * Lines look like: "[2026-11-22T01:02:03.456Z] [info] [main] message". */
#ifndef K_LOG_H
#define K_LOG_H

enum k_log_level { K_LOG_TRACE, K_LOG_DEBUG, K_LOG_INFO, K_LOG_WARN, K_LOG_ERROR, K_LOG_OFF };

extern enum k_log_level k_log_min;

/* Parse "trace|debug|info|warn|warning|error|critical|off"; -1 if unknown. */
int k_log_parse_level(const char *s);
/* Name of the calling thread in log lines ("main", "worker-0"); copied. */
void k_log_set_thread_name(const char *name);

void k_log_write(enum k_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define K_LOG(lvl, ...)                                                                            \
	do {                                                                                       \
		if ((lvl) >= k_log_min)                                                            \
			k_log_write((lvl), __VA_ARGS__);                                           \
	} while (0)
#define k_trace(...) K_LOG(K_LOG_TRACE, __VA_ARGS__)
#define k_debug(...) K_LOG(K_LOG_DEBUG, __VA_ARGS__)
#define k_info(...)  K_LOG(K_LOG_INFO, __VA_ARGS__)
#define k_warn(...)  K_LOG(K_LOG_WARN, __VA_ARGS__)
#define k_error(...) K_LOG(K_LOG_ERROR, __VA_ARGS__)

#endif
