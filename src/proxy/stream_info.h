/* stream_info.h — what happened to one request, for access logs and stats.
 *
 * Filled by the connection manager and router as the request proceeds;
 * read by access loggers when it ends. Strings point into the request's
 * buffers or arena and are valid until the log call returns. */
#ifndef KP_STREAM_INFO_H
#define KP_STREAM_INFO_H

#include <stdint.h>
#include <time.h>

#include "k_common.h"
#include "h1_codec.h"

/* Envoy's response flags, as bits; kp_response_flags_str renders them in
 * Envoy's short form joined by ',' ("UF,URX") or "-" when none. */
enum kp_response_flag {
	KP_RF_UH = 1u << 0,    /* no healthy upstream host */
	KP_RF_UF = 1u << 1,    /* upstream connection failure */
	KP_RF_UO = 1u << 2,    /* upstream overflow (circuit breaker) */
	KP_RF_NR = 1u << 3,    /* no route */
	KP_RF_URX = 1u << 4,   /* retry limit exceeded */
	KP_RF_UT = 1u << 5,    /* upstream request timeout */
	KP_RF_UC = 1u << 6,    /* upstream connection termination */
	KP_RF_DC = 1u << 7,    /* downstream connection termination */
	KP_RF_LR = 1u << 8,    /* local reset */
	KP_RF_UR = 1u << 9,    /* upstream remote reset */
	KP_RF_DPE = 1u << 10,  /* downstream protocol error */
	KP_RF_UPE = 1u << 11,  /* upstream protocol error */
	KP_RF_SI = 1u << 12,   /* stream idle timeout */
	KP_RF_DT = 1u << 13,   /* downstream request timeout */
	KP_RF_NC = 1u << 14,   /* no cluster */
	KP_RF_FI = 1u << 15,   /* fault injected: abort ("FI") */
	KP_RF_RL = 1u << 17,   /* rate limited */
	KP_RF_UAEX = 1u << 18, /* unauthorized (external) */
	KP_RF_DI = 1u << 19,   /* fault injected: delay ("DI") */
};

/* Writes the flags to out (NUL-terminated, at most outlen). Returns length. */
size_t kp_response_flags_str(uint32_t flags, char *out, size_t outlen);

struct kp_stream_info {
	struct timespec start_real;   /* wall clock at first request byte */
	uint64_t start_ns;	      /* monotonic, same moment */
	uint64_t end_ns;	      /* monotonic, last response byte sent */
	uint64_t upstream_start_ns;   /* request sent upstream (0: never) */
	uint64_t upstream_headers_ns; /* response headers from upstream */

	/* The request as received and the upstream's response head (spans
	 * into the stream's arena); resp is NULL for local replies and when
	 * no access log needs it. */
	const struct k_h1_msg *req;
	const struct k_h1_msg *resp;
	struct k_str path;	    /* origin-form path, even if absolute-form came */
	struct k_str authority;	    /* Host or absolute-form authority */
	struct k_str request_id;    /* x-request-id, as forwarded */
	struct k_str forwarded_for; /* x-forwarded-for, as forwarded */
	const char *protocol;	    /* "HTTP/1.1" */

	int response_code; /* 0 if none was sent */
	uint32_t response_flags;
	const char *details;	 /* Envoy's response code details, e.g. "via_upstream" */
	uint64_t bytes_received; /* request body bytes */
	uint64_t bytes_sent;	 /* response body bytes */

	const char *route_name;
	const char *cluster_name;      /* NULL if none chosen */
	const char *upstream_host;     /* "127.0.0.1:9080" or NULL */
	const char *downstream_remote; /* "127.0.0.1:54321" */
	const char *downstream_local;  /* "127.0.0.1:10000" */
};

#endif
