/* admin.h — Envoy's admin interface: a small HTTP/1.1 server on the main
 * thread's loop (never on a worker; nothing here is on the data path).
 *
 * Endpoints, as Envoy's: / and /help, /ready, /server_info, /stats
 * (?filter=REGEX, ?usedonly, ?format=json|prometheus), /stats/prometheus,
 * /config_dump, /clusters (?format=json), /listeners (?format=json),
 * /memory, /logging, and the POST-only /quitquitquit, /drain_listeners,
 * /healthcheck/fail, /healthcheck/ok (plus Kite's /healthz). GET on a
 * POST-only endpoint answers 405; an unknown path answers 404 with the
 * endpoint list.
 *
 * Limits: request heads up to 60 KiB (431 beyond), request bodies are
 * read and dropped up to 1 MiB (the connection is closed beyond), at most
 * 64 connections (more are accepted and closed at once), idle connections
 * closed after 2 minutes. */
#ifndef KP_ADMIN_H
#define KP_ADMIN_H

#include <sys/socket.h>

struct kp_server;
struct kp_admin;

/* Bind and listen on addr (IPv4 or IPv6; port 0 picks a free port) and
 * serve on srv->loop. Returns 0 and *out, or K_EIO with err naming the
 * address and the reason ("admin bind 127.0.0.1:15000: Address already in
 * use"), K_EINVAL for an unsupported address family, or K_ENOMEM. On
 * failure nothing is left open. srv must outlive the admin. */
int kp_admin_start(struct kp_server *srv, const struct sockaddr *addr, struct kp_admin **out,
		   char *err, size_t errlen);

/* Close the listener and every connection (responses still queued are
 * dropped). Safe to call from any main-thread callback, including one the
 * admin itself triggered (/quitquitquit leads to kp_server_shutdown, which
 * may call this) and twice. The memory is released from libuv close
 * callbacks, so run the loop (uv_run) before uv_loop_close; `a` must not be
 * used after this call. NULL is a no-op. */
void kp_admin_close(struct kp_admin *a);

/* The bound address, "127.0.0.1:15000" (the real port when 0 was asked). */
const char *kp_admin_address(const struct kp_admin *a);

/* True after POST /healthcheck/fail until POST /healthcheck/ok. Envoy then
 * reports its state as DRAINING (server.state, /ready, /server_info); the
 * main thread can read this for the server.state gauge. */
int kp_admin_healthcheck_failed(const struct kp_admin *a);

#endif
