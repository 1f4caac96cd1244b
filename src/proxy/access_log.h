/* access_log.h — Envoy access-log format strings, compiled once.
 *
 * A format such as Envoy's default
 *   [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% ..."
 * is parsed at config compile time into literal pieces and command
 * operators; rendering a request then walks that list and writes into a
 * caller buffer with no allocation and no locks, so it can run per request
 * on every worker. Values that are missing or empty render as "-", as in
 * Envoy.
 *
 * Supported operators: %START_TIME% and %START_TIME(strftime format)% (UTC,
 * plus Envoy's %f, %1f..%9f, %E1S..%E9S and %s), %REQ(X?Y):Z%,
 * %REQ_WITHOUT_QUERY(X?Y):Z%, %RESP(X?Y):Z%, %PROTOCOL%, %RESPONSE_CODE%,
 * %RESPONSE_FLAGS%, %RESPONSE_CODE_DETAILS%, %BYTES_RECEIVED%,
 * %BYTES_SENT%, %DURATION%, %REQUEST_DURATION%, %RESPONSE_DURATION%,
 * %RESPONSE_TX_DURATION%, %UPSTREAM_HOST%, %UPSTREAM_REMOTE_ADDRESS%,
 * %UPSTREAM_CLUSTER%, %UPSTREAM_CLUSTER_RAW%, %ROUTE_NAME%,
 * %DOWNSTREAM_REMOTE_ADDRESS%, %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%,
 * %DOWNSTREAM_LOCAL_ADDRESS%, %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%,
 * %UPSTREAM_LOCAL_ADDRESS%, %UPSTREAM_TRANSPORT_FAILURE_REASON%,
 * %REQUESTED_SERVER_NAME%, %CONNECTION_TERMINATION_DETAILS%, %HOSTNAME%
 * and %% (a literal '%'). ":Z" (maximum length) is accepted on every
 * operator. Operators for data Kite does not track yet (upstream local
 * address, TLS, ...) render "-". */
#ifndef KP_ACCESS_LOG_H
#define KP_ACCESS_LOG_H

#include <stddef.h>

#include "stream_info.h"

struct kp_access_log_fmt;

/* Envoy's default format, ending in "\n". */
extern const char KP_ACCESS_LOG_DEFAULT_FORMAT[];

/* Parse `format` (NUL-terminated). `json` is reserved for json_format and
 * must be 0 for now. Returns a compiled format the caller frees with
 * kp_access_log_fmt_free, or NULL with err (always NUL-terminated when
 * errlen > 0) saying why: "unknown command operator %FOO% at offset 12",
 * "unterminated command operator at offset 3", "%REQ% needs a header name,
 * as in %REQ(USER-AGENT)% (offset 0)", "out of memory", ... */
struct kp_access_log_fmt *kp_access_log_fmt_compile(const char *format, int json, char *err,
						    size_t errlen);

/* Render one line for si into out[0..outlen). Never allocates. The output
 * is NUL-terminated when outlen > 0; a line that does not fit is cut, and
 * if the format ends with a newline the cut line still ends with one.
 * Returns the number of bytes written, excluding the NUL. */
size_t kp_access_log_render(const struct kp_access_log_fmt *f, const struct kp_stream_info *si,
			    char *out, size_t outlen);

/* NULL is a no-op. */
void kp_access_log_fmt_free(struct kp_access_log_fmt *f);

#endif
