"""When things go wrong upstream (or the client stalls), kite-proxy answers
with Envoy's status codes and response flags, and says in words what
happened in an x-kite-error header."""

import socket
import threading
import time

import pytest

from conftest import (LOOPBACK, SockReader, blackhole_listener, free_port, http_request,
                      proxy_bootstrap, proxy_cluster, proxy_route,
                      proxy_stats, read_response, start_proxy, start_sample,
                      wait_access_log, wait_for)


def test_upstream_down_is_503_uf(procs):
    dead = free_port()  # nobody listens here
    p = start_proxy(procs, proxy_bootstrap({"gone": [dead]}))
    r = http_request(p.port, "/down-path")
    assert r.status == 503
    err = r.header("x-kite-error")
    assert f"{LOOPBACK}:{dead}" in err and "refused" in err, err
    assert "gone" in err  # the cluster is named too
    st = proxy_stats(p)
    assert st["cluster.gone.upstream_cx_connect_fail"] == 1
    assert st["http.ingress_http.downstream_rq_5xx"] == 1
    line = wait_access_log(p, "/down-path")
    assert '"GET /down-path HTTP/1.1" 503 UF ' in line
    # as Envoy: the host was chosen, so %UPSTREAM_HOST% names it
    assert line.endswith(f'"{LOOPBACK}:{dead}"'), line


def test_upstream_down_keeps_client_connection(procs):
    p = start_proxy(procs, proxy_bootstrap({"gone": [free_port()]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        for _ in range(3):
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            r = read_response(rd)
            assert r.status == 503
            assert r.header("connection") is None  # keep-alive survives


def test_connect_timeout_is_503_uf(procs):
    lsock, fillers, port = blackhole_listener()
    try:
        p = start_proxy(procs, proxy_bootstrap(
            [proxy_cluster("slowcx", [port], connect_timeout="0.25s")]))
        t0 = time.monotonic()
        r = http_request(p.port, "/cx-timeout")
        took = time.monotonic() - t0
        assert r.status == 503
        err = r.header("x-kite-error")
        assert "timeout" in err and f"{LOOPBACK}:{port}" in err, err
        assert 0.2 <= took < 2.0, took
        assert " 503 UF " in wait_access_log(p, "/cx-timeout")
        assert proxy_stats(p)["cluster.slowcx.upstream_cx_connect_timeout"] \
            == 1
    finally:
        for f in fillers:
            f.close()
        lsock.close()


def test_route_timeout_is_504_ut(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]},
                                           route_timeout="0.3s"))
    t0 = time.monotonic()
    r = http_request(p.port, "/slow?delay_ms=2000")
    took = time.monotonic() - t0
    assert r.status == 504
    assert 0.25 <= took < 1.5, took
    err = r.header("x-kite-error")
    assert "timeout" in err and "300 ms" in err, err
    assert r.body == b"upstream request timeout\n"
    assert " 504 UT " in wait_access_log(p, "/slow?delay_ms=2000")
    assert proxy_stats(p)["cluster.app.upstream_rq_timeout"] == 1
    # a fast request on the same route is fine
    assert http_request(p.port, "/fast?delay_ms=10").status == 200


def test_route_timeout_counts_from_end_of_request(procs):
    """Envoy's route timeout starts when the request is complete: a slow
    upload is not cut by it."""
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]},
                                           route_timeout="0.3s"))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
                  b"\r\n")
        for b in (b"ab", b"cd", b"ef"):
            time.sleep(0.2)
            c.sendall(b)
        r = read_response(SockReader(c))
    assert r.status == 200 and r.json()["body_bytes"] == 6


def test_upstream_closes_before_answering_is_503_uc(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}))
    r = http_request(p.port, "/drop?drop=1")
    assert r.status == 503
    err = r.header("x-kite-error")
    assert f"{LOOPBACK}:{s.port}" in err and "before response headers" in err
    assert " 503 UC " in wait_access_log(p, "/drop?drop=1")


def test_upstream_resets_mid_body(procs, raw_backend):
    def half(b, c, req):
        c.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" +
                       b"h" * 1000)
        time.sleep(0.05)
        return False  # close with 99000 bytes missing
    b = raw_backend(half)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = SockReader(c)
        head = rd.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"content-length: 100000" in head.lower()
        body = rd.read_to_eof()  # the proxy closes: truncation is visible
    assert body == b"h" * 1000
    line = wait_access_log(p, "/half")
    assert " 200 UC " in line
    assert proxy_stats(p)["cluster.raw.upstream_rq_rx_reset"] == 1


def test_upstream_resets_mid_chunked_body(procs, raw_backend):
    def half(b, c, req):
        c.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       b"\r\n5\r\nhello\r\n")
        time.sleep(0.05)
        return False
    b = raw_backend(half)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /halfc HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = SockReader(c)
        data = rd.read_to_eof()
    # the last chunk never comes: the client can tell the body is cut
    assert data.startswith(b"HTTP/1.1 200")
    assert b"hello" in data and not data.endswith(b"0\r\n\r\n")
    assert " 200 UC " in wait_access_log(p, "/halfc")


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    b"hello!",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"garbage\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Bad : v\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * (70 * 1024) +
    b"\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhi",
], ids=["dup_cl", "cl_te", "bare_lf", "bad_status", "garbage",
        "space_before_colon", "head_over_60k", "unknown_coding"])
def test_malformed_upstream_response_is_502_upe(procs, raw_backend,
                                                 response):
    def bad(b, c, req):
        c.sock.sendall(response)
        return True
    b = raw_backend(bad)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    r = http_request(p.port, "/bad-response")
    assert r.status == 502
    err = r.header("x-kite-error")
    assert f"{LOOPBACK}:{b.port}" in err and "invalid response" in err, err
    assert " 502 UPE " in wait_access_log(p, "/bad-response")
    assert proxy_stats(p)["cluster.raw.upstream_cx_protocol_error"] == 1


def test_bad_chunk_framing_from_upstream_mid_body(procs, raw_backend):
    def bad(b, c, req):
        c.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       b"\r\n5\r\nhello\r\nzz\r\n")
        return True
    b = raw_backend(bad)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /badchunk HTTP/1.1\r\nHost: x\r\n\r\n")
        data = SockReader(c).read_to_eof()
    assert data.startswith(b"HTTP/1.1 200") and b"hello" in data
    assert b"zz" not in data and not data.endswith(b"0\r\n\r\n")
    assert " 200 UPE " in wait_access_log(p, "/badchunk")


def test_circuit_breaker_overflow_is_503_uo(procs):
    s = start_sample(procs)
    cb = {"thresholds": [{"max_connections": 1, "max_pending_requests": 0}]}
    p = start_proxy(procs, proxy_bootstrap(
        [proxy_cluster("tight", [s.port], circuit_breakers=cb)]))
    results = {}

    def call(name, path):
        results[name] = http_request(p.port, path)
    t = threading.Thread(target=call, args=("slow", "/first?delay_ms=700"))
    t.start()
    # the first holds the only connection once the backend has it
    wait_for(lambda: proxy_stats(p)["cluster.tight.upstream_rq_active"] == 1,
             5, "the first request to be upstream")
    call("second", "/second?delay_ms=700")
    t.join(10)
    assert results["slow"].status == 200
    r = results["second"]
    assert r.status == 503
    assert "overflow" in r.header("x-kite-error")
    assert " 503 UO " in wait_access_log(p, "/second")
    st = proxy_stats(p)
    assert st["cluster.tight.upstream_rq_pending_overflow"] == 1
    # once the first is done, the connection is free again
    assert http_request(p.port, "/third").status == 200


def test_pending_request_waits_for_a_connection(procs):
    """max_connections 1 with room to queue: the second waits and then
    reuses the first's connection."""
    s = start_sample(procs)
    cb = {"thresholds": [{"max_connections": 1, "max_pending_requests": 4}]}
    p = start_proxy(procs, proxy_bootstrap(
        [proxy_cluster("queue", [s.port], circuit_breakers=cb)]))
    results = {}

    def call(name, path):
        results[name] = http_request(p.port, path)
    t = threading.Thread(target=call, args=("a", "/a?delay_ms=300"))
    t.start()
    wait_for(lambda: proxy_stats(p)["cluster.queue.upstream_rq_active"] == 1,
             5, "the first request to be upstream")
    call("b", "/b")
    t.join(10)
    assert results["a"].status == 200 and results["b"].status == 200
    st = proxy_stats(p)
    assert st["cluster.queue.upstream_cx_total"] == 1
    assert st["cluster.queue.upstream_rq_total"] == 2


def test_cluster_without_endpoints_is_503_uh(procs):
    p = start_proxy(procs, proxy_bootstrap([proxy_cluster("empty", [])]))
    r = http_request(p.port, "/nobody")
    assert r.status == 503
    assert "no healthy upstream" in r.header("x-kite-error")
    assert r.body == b"no healthy upstream\n"
    assert " 503 UH " in wait_access_log(p, "/nobody")


def test_stream_idle_timeout_client_stalls_body_408(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap(
        {"app": [s.port]}, hcm={"stream_idle_timeout": "0.3s"}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        t0 = time.monotonic()
        c.sendall(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 10"
                  b"\r\n\r\nabc")
        rd = SockReader(c)
        r = read_response(rd)
        took = time.monotonic() - t0
        assert r.status == 408
        assert "idle" in r.header("x-kite-error")
        assert r.header("connection") == "close"
        assert rd.at_eof()
    assert 0.25 <= took < 2.0
    assert " 408 SI " in wait_access_log(p, "/stall")


def test_stream_idle_timeout_upstream_stalls_504(procs):
    s = start_sample(procs)
    vh = [{"name": "all", "domains": ["*"],
           "routes": [proxy_route("app", timeout="0s")]}]  # 0: no limit
    p = start_proxy(procs, proxy_bootstrap(
        {"app": [s.port]}, virtual_hosts=vh,
        hcm={"stream_idle_timeout": "0.3s"}))
    t0 = time.monotonic()
    r = http_request(p.port, "/quiet?delay_ms=3000")
    took = time.monotonic() - t0
    assert r.status == 504
    assert 0.25 <= took < 2.0
    assert " 504 SI " in wait_access_log(p, "/quiet")


def test_retry_once_when_pooled_connection_went_stale(procs, raw_backend):
    """The backend closes a kept-alive connection just as the next
    request arrives on it: a bodiless request is retried once on a new
    connection, invisibly to the client."""
    def flaky(b, c, req):
        if len(c.requests) == 2:
            return False  # second request on this connection: hang up
        c.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
                       b"%02d\n" % c.index)
        return True
    b = raw_backend(flaky)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]},
                                           route_timeout="3s"))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(rd).body == b"00\n"
        c.sendall(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = read_response(rd)
        lines = [q.request_line for q in b.requests]
        assert lines == ["GET /1 HTTP/1.1", "GET /2 HTTP/1.1",
                         "GET /2 HTTP/1.1"]
        assert [len(k.requests) for k in b.conns] == [2, 1]
        # the answer from the new connection reaches the client
        assert (r.status, r.body) == (200, b"01\n"), \
            (r.status, r.header("x-kite-error"))


def test_no_retry_for_request_with_body(procs, raw_backend):
    def flaky(b, c, req):
        if len(c.requests) == 2:
            return False
        c.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True
    b = raw_backend(flaky)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(rd).status == 200
        c.sendall(b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n"
                  b"data")
        r = read_response(rd)
        assert r.status == 503
        assert "before response headers" in r.header("x-kite-error")
    # the body was sent once, never replayed
    assert [r.request_line for r in b.requests] == [
        "GET /1 HTTP/1.1", "POST /2 HTTP/1.1"]


def test_idle_client_connection_is_closed(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap(
        {"app": [s.port]},
        hcm={"common_http_protocol_options": {"idle_timeout": "0.3s"}}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(rd).status == 200
        t0 = time.monotonic()
        assert rd.at_eof(5)
        assert 0.25 <= time.monotonic() - t0 < 3
    assert proxy_stats(p)["http.ingress_http.downstream_cx_idle_timeout"] \
        == 1


def test_request_headers_timeout_408(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap(
        {"app": [s.port]}, hcm={"request_headers_timeout": "0.3s"}))
    with socket.create_connection((LOOPBACK, p.port), timeout=3) as c:
        c.sendall(b"GET /partial HTTP/1.1\r\nHost: x\r\n")  # never ends
        rd = SockReader(c)
        r = read_response(rd)
        assert r.status == 408
        assert r.header("connection") == "close"
        assert rd.at_eof()
    st = proxy_stats(p)
    assert st["http.ingress_http.downstream_rq_header_timeout"] == 1
    assert st["cluster.app.upstream_rq_total"] == 0


def test_client_disconnect_mid_response_is_dc(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /huge?size=200m HTTP/1.1\r\nHost: x\r\n\r\n")
        assert SockReader(c).read_until(b"\r\n\r\n").startswith(
            b"HTTP/1.1 200")
    # the client is gone: the proxy logs DC and drops the upstream
    # connection (its response is unfinished, it cannot be reused)
    line = wait_access_log(p, "/huge?size=200m")
    assert " 200 DC " in line
    wait_for(lambda: proxy_stats(p)["cluster.app.upstream_cx_active"] == 0,
             5, "the upstream connection to close")
    assert http_request(p.port, "/still-fine").status == 200
    st = proxy_stats(p)
    assert st["cluster.app.upstream_cx_total"] == 2


def test_client_gives_up_waiting_is_dc(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /wait?delay_ms=500 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: proxy_stats(p)["cluster.app.upstream_rq_active"]
                 == 1, 5, "the request to be upstream")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    line = wait_access_log(p, "/wait?delay_ms=500")
    assert " DC " in line
    assert http_request(p.port, "/next").status == 200
