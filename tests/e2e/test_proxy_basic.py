"""kite-proxy basics: a user puts the proxy in front of kite-sample and
talks to it with curl and Python's http.client."""

import http.client
import json
import re
import socket
import subprocess

from conftest import (LOOPBACK, SockReader, access_log_lines, http_request,
                      proxy_bootstrap, proxy_cluster, proxy_route,
                      proxy_stats, read_response, start_proxy, start_sample,
                      wait_access_log, wait_for)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                   r"[0-9a-f]{12}$")


def curl(*args, timeout=20):
    """Run Debian's curl; returns (exit code, stdout bytes, stderr text)."""
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args],
                       capture_output=True, timeout=timeout + 5)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def sample_and_proxy(procs, **kw):
    s = start_sample(procs, app="reviews", version="v1")
    p = start_proxy(procs, proxy_bootstrap({"reviews": [s.port]}, **kw))
    return s, p


def test_curl_get_through_proxy(procs):
    s, p = sample_and_proxy(procs)
    rc, out, err = curl("-i", f"http://{LOOPBACK}:{p.port}/reviews/1?x=1",
                        "-H", "X-Trace: abc")
    assert rc == 0, err
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nserver: kite\r\n" in head.lower()
    j = json.loads(body)
    assert j["workload"] == "reviews-v1"
    assert j["path"] == "/reviews/1" and j["query"] == "x=1"
    assert j["headers"]["x-trace"] == "abc"
    assert j["headers"]["user-agent"].startswith("curl/")
    # the Host the client used reaches the backend unchanged
    assert j["host"] == f"{LOOPBACK}:{p.port}"


def test_curl_post_body_through_proxy(procs, tmp_path):
    s, p = sample_and_proxy(procs)
    f = tmp_path / "payload.bin"
    f.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    rc, out, err = curl("--data-binary", f"@{f}",
                        f"http://{LOOPBACK}:{p.port}/upload")
    assert rc == 0, err
    j = json.loads(out)
    assert j["method"] == "POST" and j["body_bytes"] == 1 << 20
    # chunked upload from curl
    rc, out, err = curl("--data-binary", f"@{f}", "-H",
                        "Transfer-Encoding: chunked",
                        f"http://{LOOPBACK}:{p.port}/upload")
    assert rc == 0, err
    assert json.loads(out)["body_bytes"] == 1 << 20


def test_keep_alive_one_connection_many_requests(procs):
    s, p = sample_and_proxy(procs)
    before = proxy_stats(p)
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    local_ports = set()
    n = 60
    for i in range(n):
        conn.request("GET", f"/ka/{i}")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200
        # the sample answered this very request
        assert json.loads(body)["path"] == f"/ka/{i}"
        assert r.getheader("connection") is None  # stays open
        # (http.client would silently reconnect: watch our own port)
        local_ports.add(conn.sock.getsockname()[1])
    assert len(local_ports) == 1
    conn.close()
    after = proxy_stats(p)

    def d(k):
        return after[k] - before.get(k, 0)
    assert d("http.ingress_http.downstream_cx_total") == 1
    assert d("http.ingress_http.downstream_rq_total") == n
    assert d("http.ingress_http.downstream_rq_2xx") == n
    assert d("cluster.reviews.upstream_rq_total") == n
    assert d("cluster.reviews.upstream_rq_2xx") == n
    # the upstream connection was pooled and reused, not made per request
    assert d("cluster.reviews.upstream_cx_total") <= 1
    assert after["cluster.reviews.upstream_cx_total"] == 1


def test_round_robin_alternates(procs):
    v1 = start_sample(procs, app="reviews", version="v1")
    v2 = start_sample(procs, app="reviews", version="v2")
    p = start_proxy(procs, proxy_bootstrap({"reviews": [v1.port, v2.port]}))
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    seen = []
    for _ in range(10):
        conn.request("GET", "/")
        seen.append(json.loads(conn.getresponse().read())["workload"])
    conn.close()
    assert sorted(set(seen)) == ["reviews-v1", "reviews-v2"]
    assert all(a != b for a, b in zip(seen, seen[1:])), seen
    # new connections continue the rotation too
    more = [http_request(p.port, "/").json()["workload"] for _ in range(4)]
    assert all(a != b for a, b in zip(more, more[1:])), more


def test_least_request_and_random_spread(procs):
    v1 = start_sample(procs, app="ratings", version="v1")
    v2 = start_sample(procs, app="ratings", version="v2")
    clusters = [
        proxy_cluster("lr", [v1.port, v2.port], lb_policy="LEAST_REQUEST"),
        proxy_cluster("rnd", [v1.port, v2.port], lb_policy="RANDOM")]
    vhosts = [{"name": "all", "domains": ["*"], "routes": [
        proxy_route("lr", prefix="/lr"), proxy_route("rnd", prefix="/rnd")]}]
    p = start_proxy(procs, proxy_bootstrap(clusters, virtual_hosts=vhosts))
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    for prefix in ("/lr", "/rnd"):
        seen = set()
        for _ in range(40):
            conn.request("GET", prefix)
            seen.add(json.loads(conn.getresponse().read())["workload"])
        # 40 draws from two hosts: both are used (p(miss) ~ 2^-39)
        assert seen == {"ratings-v1", "ratings-v2"}, prefix
    conn.close()


def test_host_routing_picks_virtual_host(procs):
    apps = {name: start_sample(procs, app=name)
            for name in ("exact", "suffix", "prefix", "fallback")}
    clusters = {name: [s.port] for name, s in apps.items()}
    vhosts = [
        {"name": "fallback", "domains": ["*"],
         "routes": [proxy_route("fallback")]},
        {"name": "prefix", "domains": ["www.*"],
         "routes": [proxy_route("prefix")]},
        {"name": "suffix", "domains": ["*.example.com"],
         "routes": [proxy_route("suffix")]},
        {"name": "exact", "domains": ["api.example.com", "10.1.2.3:8080"],
         "routes": [proxy_route("exact")]},
    ]
    p = start_proxy(procs, proxy_bootstrap(clusters, virtual_hosts=vhosts))
    cases = {
        "api.example.com": "exact",
        "API.Example.COM": "exact",          # domains are case-insensitive
        # as Envoy (no strip_any_host_port): the port is part of what is
        # matched, so an unnamed port falls through to "*"
        "api.example.com:8443": "fallback",
        "10.1.2.3:8080": "exact",            # a domain may name a port
        "shop.example.com": "suffix",
        "www.example.com": "suffix",         # suffix beats prefix
        "a.b.example.com": "suffix",
        "www.other.org": "prefix",
        "other.org": "fallback",
        "example.com": "fallback",           # "*.x" needs a label before
        "10.1.2.3:9090": "fallback",
    }
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    for host, want in cases.items():
        conn.request("GET", "/", headers={"Host": host})
        r = conn.getresponse()
        j = json.loads(r.read())
        assert (host, j["app"]) == (host, want)
        assert j["host"] == host
    conn.close()


def test_route_match_kinds(procs):
    apps = {name: start_sample(procs, app=name)
            for name in ("byprefix", "bypath", "bysep", "rest")}
    clusters = {name: [s.port] for name, s in apps.items()}
    vhosts = [{"name": "all", "domains": ["*"], "routes": [
        proxy_route("bypath", path="/exact"),
        proxy_route("bysep", sep_prefix="/sep"),
        proxy_route("byprefix", prefix="/pre"),
        proxy_route("rest", prefix="/"),
    ]}]
    p = start_proxy(procs, proxy_bootstrap(clusters, virtual_hosts=vhosts))
    cases = {
        "/exact": "bypath",
        "/exact?x=1": "bypath",      # path ignores the query
        "/exact/": "rest",
        "/exactly": "rest",
        "/sep": "bysep",
        "/sep/": "bysep",
        "/sep/a/b": "bysep",
        "/sep?q=1": "bysep",
        "/separate": "rest",         # not a segment of "/sep"
        "/pre": "byprefix",
        "/prefix/x": "byprefix",     # a plain prefix is a string prefix
        "/PRE": "rest",              # case-sensitive by default
        "/": "rest",
    }
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    for path, want in cases.items():
        conn.request("GET", path)
        j = json.loads(conn.getresponse().read())
        assert (path, j["app"]) == (path, want)
    conn.close()


def test_direct_response(procs):
    s = start_sample(procs)
    vhosts = [{"name": "all", "domains": ["*"], "routes": [
        proxy_route(direct=(200, "pong\n"), path="/ping"),
        proxy_route(direct=(503, None), prefix="/maintenance"),
        proxy_route("app"),
    ]}]
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]},
                                           virtual_hosts=vhosts))
    r = http_request(p.port, "/ping")
    assert r.status == 200 and r.body == b"pong\n"
    assert r.header("content-length") == "5"
    r = http_request(p.port, "/maintenance/x")
    assert r.status == 503 and r.body == b""
    # and it never touched the backend
    st = proxy_stats(p)
    assert st["cluster.app.upstream_rq_total"] == 0
    assert st["http.ingress_http.rq_direct_response"] == 2
    assert http_request(p.port, "/other").json()["workload"] == "sample-v1"


def test_no_route_is_404_nr_naming_host_and_path(procs):
    s = start_sample(procs)
    vhosts = [{"name": "only", "domains": ["shop.example.com"],
               "routes": [proxy_route("app", prefix="/api")]}]
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]},
                                           virtual_hosts=vhosts))
    # a vhost matches, no route does
    r = http_request(p.port, "/web/index.html",
                     headers={"Host": "shop.example.com"})
    assert r.status == 404
    err = r.header("x-kite-error")
    assert err and "shop.example.com" in err and "/web/index.html" in err
    # no vhost matches
    r = http_request(p.port, "/api/x", headers={"Host": "elsewhere.test"})
    assert r.status == 404
    err = r.header("x-kite-error")
    assert "elsewhere.test" in err and "/api/x" in err
    line = wait_access_log(p, "/web/index.html")
    assert " 404 NR " in line
    assert proxy_stats(p)["http.ingress_http.no_route"] == 2


def test_request_id_generated_or_kept(procs):
    s, p = sample_and_proxy(procs)
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    ids = set()
    for _ in range(5):
        conn.request("GET", "/")
        rid = json.loads(conn.getresponse().read())["headers"]["x-request-id"]
        assert UUID4.match(rid), rid
        ids.add(rid)
    assert len(ids) == 5
    conn.request("GET", "/", headers={"X-Request-Id": "my-trace-42"})
    hdrs = json.loads(conn.getresponse().read())["headers"]
    assert hdrs["x-request-id"] == "my-trace-42"
    conn.close()
    # the access log names the id the backend saw
    assert wait_access_log(p, '"my-trace-42"')


def test_forwarded_headers(procs):
    s, p = sample_and_proxy(procs)
    h = http_request(p.port, "/").json()["headers"]
    assert h["x-forwarded-proto"] == "http"
    assert "x-forwarded-for" not in h  # use_remote_address is off
    # a client-supplied x-forwarded-proto is kept when not at the edge
    h = http_request(p.port, "/", headers={"X-Forwarded-Proto": "https"}
                     ).json()["headers"]
    assert h["x-forwarded-proto"] == "https"


def test_forwarded_headers_at_the_edge(procs):
    s, p = sample_and_proxy(procs, hcm={"use_remote_address": True})
    h = http_request(p.port, "/").json()["headers"]
    assert h["x-forwarded-for"] == LOOPBACK
    assert h["x-forwarded-proto"] == "http"
    # at the edge the client's claims are not trusted for the scheme, and
    # our hop is appended to the forwarded-for list
    h = http_request(p.port, "/", headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    ).json()["headers"]
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-for"] == f"203.0.113.7, {LOOPBACK}"


def test_hop_by_hop_headers_not_forwarded(procs):
    s, p = sample_and_proxy(procs)
    r = http_request(p.port, "/", headers={
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "hidden",
        "Keep-Alive": "timeout=5, max=100",
        "Proxy-Connection": "keep-alive",
        "TE": "trailers",
        "Upgrade-Insecure-Requests": "1",   # not hop-by-hop
        "X-End-To-End": "visible",
    })
    assert r.status == 200
    h = r.json()["headers"]
    for gone in ("connection", "x-secret-hop", "keep-alive",
                 "proxy-connection", "te"):
        assert gone not in h, (gone, h)
    assert h["x-end-to-end"] == "visible"
    assert h["upgrade-insecure-requests"] == "1"


def test_response_hop_by_hop_headers_not_forwarded(procs, raw_backend):
    def answer(b, c, req):
        c.sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: X-Up-Hop\r\n"
                       b"X-Up-Hop: secret\r\nKeep-Alive: timeout=9\r\n"
                       b"X-Kept: yes\r\nContent-Length: 2\r\n\r\nhi")
        return True
    b = raw_backend(answer)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    r = http_request(p.port, "/")
    assert r.status == 200 and r.body == b"hi"
    names = {k.lower() for k, _ in r.headers}
    assert "x-up-hop" not in names and "keep-alive" not in names
    assert r.header("x-kept") == "yes"


def test_http10_client(procs):
    s, p = sample_and_proxy(procs)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /old HTTP/1.0\r\nHost: legacy\r\n\r\n")
        rd = SockReader(c)
        r = read_response(rd)
        assert r.status == 200
        assert r.json()["path"] == "/old"
        assert rd.at_eof()  # HTTP/1.0 without keep-alive: closed
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        for i in range(2):
            c.sendall(b"GET /ka%d HTTP/1.0\r\nHost: legacy\r\n"
                      b"Connection: keep-alive\r\n\r\n" % i)
            r = read_response(rd)
            assert r.status == 200 and r.json()["path"] == f"/ka{i}"
            assert r.header("connection").lower() == "keep-alive"


def test_access_log_default_format(procs):
    s, p = sample_and_proxy(procs)
    rc, out, err = curl(f"http://{LOOPBACK}:{p.port}/logged/path?q=1",
                        "-A", "e2e-agent/1.0", "-H", "X-Request-Id: rid-123")
    assert rc == 0, err
    line = wait_access_log(p, "/logged/path")
    m = re.match(
        r'^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] '
        r'"GET /logged/path\?q=1 HTTP/1\.1" 200 - 0 (\d+) (\d+) (\d+) '
        r'"-" "e2e-agent/1\.0" "rid-123" "([^"]+)" "([^"]+)"$', line)
    assert m, line
    assert int(m.group(2)) == len(out)           # bytes sent = body
    assert m.group(5) == f"{LOOPBACK}:{p.port}"  # authority
    assert m.group(6) == f"{LOOPBACK}:{s.port}"  # upstream host
    assert len(access_log_lines(p, "/logged/path")) == 1


def test_absolute_form_request_is_routed_by_its_authority(procs):
    """Used as an HTTP proxy (HTTP_PROXY=...), clients send absolute-form
    targets: the authority picks the virtual host and becomes Host, and
    the backend gets origin-form."""
    shop = start_sample(procs, app="shop")
    other = start_sample(procs, app="other")
    vhosts = [{"name": "shop", "domains": ["shop.example.com"],
               "routes": [proxy_route("shop")]},
              {"name": "rest", "domains": ["*"],
               "routes": [proxy_route("other")]}]
    p = start_proxy(procs, proxy_bootstrap(
        {"shop": [shop.port], "other": [other.port]}, virtual_hosts=vhosts))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"GET http://shop.example.com/cart?id=7 HTTP/1.1\r\n"
                  b"Host: shop.example.com\r\n\r\n")
        j = read_response(rd).json()
        assert j["app"] == "shop"
        assert (j["path"], j["query"]) == ("/cart", "id=7")
        assert j["host"] == "shop.example.com"
        # the URI's authority wins over a different Host field
        c.sendall(b"GET http://shop.example.com/x HTTP/1.1\r\n"
                  b"Host: elsewhere.test\r\n\r\n")
        j = read_response(rd).json()
        assert j["app"] == "shop" and j["host"] == "shop.example.com"
        assert j["headers"]["host"] == "shop.example.com"
    # kite-sample's fan-out through the proxy, as the demo does it
    caller = start_sample(procs, app="caller",
                          calls=["http://shop.example.com/from-caller"],
                          env={"HTTP_PROXY": f"http://{LOOPBACK}:{p.port}"})
    j = http_request(caller.port, "/").json()
    (call,) = j["calls"]
    assert call["status"] == 200, call
    assert call["body"]["app"] == "shop"
    assert call["body"]["path"] == "/from-caller"


def test_upstream_connection_close_is_respected(procs):
    s, p = sample_and_proxy(procs)
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    for i in range(3):
        conn.request("GET", f"/c{i}?close=1")
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["path"] == f"/c{i}"
        # the backend's close is hop-by-hop: the client's connection stays
        assert r.getheader("connection") is None
    conn.request("GET", "/after")
    assert conn.getresponse().status == 200
    conn.close()
    st = proxy_stats(p)
    # each close=1 answer retired its upstream connection
    assert st["cluster.reviews.upstream_cx_total"] == 4
    assert st["cluster.reviews.upstream_rq_total"] == 4


def test_client_half_close_still_answered(procs):
    s, p = sample_and_proxy(procs)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /h1?delay_ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /h2 HTTP/1.1\r\nHost: x\r\n\r\n")
        c.shutdown(socket.SHUT_WR)  # "that's all I will ask"
        rd = SockReader(c)
        assert read_response(rd).json()["path"] == "/h1"
        assert read_response(rd).json()["path"] == "/h2"
        assert rd.at_eof()


def test_obs_text_and_long_values_pass_through(procs):
    s, p = sample_and_proxy(procs)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        long_path = "/long/" + "p" * 8000
        c.sendall(f"GET {long_path}?q=1 HTTP/1.1\r\nHost: x\r\n".encode() +
                  b"X-Latin: caf\xe9\r\nX-Tab: a\tb\r\n\r\n")
        j = read_response(SockReader(c)).json()
    assert j["path"] == long_path
    assert j["headers"]["x-latin"] == "caf\u00e9"  # one byte 0xE9, intact
    assert j["headers"]["x-tab"] == "a\tb"


def test_header_count_boundary(procs, raw_backend):
    # a raw backend: kite-sample itself stops at 100 fields, and the
    # proxy adds x-request-id and x-forwarded-proto
    b = raw_backend()
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    # exactly 100 fields (Envoy's default limit) pass
    fields = {f"X-F{i}": str(i) for i in range(98)}  # + Host, Connection
    r = http_request(p.port, "/", headers=fields)
    assert r.status == 200
    assert b.requests[0].header("x-f97") == "97"
    fields["X-F98"] = "one too many"
    r = http_request(p.port, "/", headers=fields)
    assert r.status == 431 and "too many" in r.header("x-kite-error")
    assert len(b.requests) == 1


def test_server_header_and_request_id_in_response(procs, raw_backend):
    def answer(b, c, req):
        c.sock.sendall(b"HTTP/1.1 200 OK\r\nServer: backend/1.0\r\n"
                       b"Content-Length: 2\r\n\r\nhi")
        return True
    b = raw_backend(answer)
    p = start_proxy(procs, proxy_bootstrap(
        {"raw": [b.port]}, hcm={"server_name": "edge",
                                "always_set_request_id_in_response": True}))
    r = http_request(p.port, "/", headers={"X-Request-Id": "abc-1"})
    # Envoy's default server_header_transformation is OVERWRITE
    assert [v for k, v in r.headers if k.lower() == "server"] == ["edge"]
    assert r.header("x-request-id") == "abc-1"
    assert b.requests[0].header("x-request-id") == "abc-1"
    r = http_request(p.port, "/")
    assert UUID4.match(r.header("x-request-id"))
    assert r.header("x-request-id") == b.requests[1].header("x-request-id")
    p2 = start_proxy(procs, proxy_bootstrap(
        {"raw": [b.port]},
        hcm={"server_header_transformation": "PASS_THROUGH"}))
    r = http_request(p2.port, "/")
    assert [v for k, v in r.headers if k.lower() == "server"] == \
        ["backend/1.0"]


def test_max_requests_per_connection_upstream(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap([proxy_cluster(
        "app", [s.port], max_requests_per_connection=2)]))
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    for i in range(5):
        conn.request("GET", f"/{i}")
        assert conn.getresponse().read()
    conn.close()
    st = proxy_stats(p)
    assert st["cluster.app.upstream_rq_total"] == 5
    assert st["cluster.app.upstream_cx_total"] == 3


def test_expect_without_body_gets_no_interim(procs):
    s, p = sample_and_proxy(procs)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        r = read_response(rd)
        assert r.status == 200 and r.json()["body_bytes"] == 0
        # HTTP/1.0 has no interim responses
        c.sendall(b"POST /e10 HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n"
                  b"Connection: keep-alive\r\nExpect: 100-continue\r\n\r\nhi")
        r = read_response(rd)
        assert r.status == 200 and r.json()["body_bytes"] == 2


FILE_LOG_TYPE = ("type.googleapis.com/envoy.extensions.access_loggers.file."
                 "v3.FileAccessLog")


def test_access_log_to_file_with_custom_format(procs, tmp_path):
    s = start_sample(procs)
    log = tmp_path / "access.log"
    fmt = ("%REQ(:METHOD)% %REQ(:PATH)% %REQ_WITHOUT_QUERY(:PATH)% "
           "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% "
           "%ROUTE_NAME% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
           "%REQ(X-CUSTOM)% %RESPONSE_CODE_DETAILS% %PROTOCOL%\n")
    vhosts = [{"name": "all", "domains": ["*"], "routes": [
        proxy_route("app", prefix="/", name="main-route")]}]
    p = start_proxy(procs, proxy_bootstrap(
        {"app": [s.port]}, virtual_hosts=vhosts, access_log=False,
        hcm={"access_log": [{
            "name": "envoy.access_loggers.file",
            "typed_config": {"@type": FILE_LOG_TYPE, "path": str(log),
                             "log_format": {"text_format": fmt}}}]}))
    http_request(p.port, "/f/x?y=1", headers={"X-Custom": "hello"})
    http_request(p.port, "/missing", headers={"Host": "h"})

    def lines():
        try:
            return [ln for ln in log.read_text().splitlines() if ln]
        except OSError:
            return []
    got = wait_for_lines(lines, 2)
    assert got[0] == (f"GET /f/x?y=1 /f/x 200 - app main-route {LOOPBACK} "
                      f"hello via_upstream HTTP/1.1")
    assert got[1].startswith("GET /missing /missing 200 - app main-route ")
    # and nothing went to stdout
    assert access_log_lines(p) == []


def test_access_log_response_headers(procs, tmp_path):
    """%RESP(X)% logs any response header, as in Envoy."""
    s = start_sample(procs)
    log = tmp_path / "access.log"
    fmt = "%RESP(CONTENT-TYPE)% %RESP(X-FROM-APP)% %RESP(:STATUS)%\n"
    p = start_proxy(procs, proxy_bootstrap(
        {"app": [s.port]}, access_log=False,
        hcm={"access_log": [{
            "name": "envoy.access_loggers.file",
            "typed_config": {"@type": FILE_LOG_TYPE, "path": str(log),
                             "log_format": {"text_format": fmt}}}]}))
    assert http_request(p.port, "/?headers=x-from-app:yes").status == 200
    got = wait_for_lines(lambda: log.read_text().splitlines()
                         if log.exists() else [], 1)
    assert got[0] == "application/json yes 200"


def wait_for_lines(get, n, timeout=5):
    return wait_for(lambda: (lambda ls: ls if len(ls) >= n else None)(get()),
                    timeout, f"{n} access log lines")


def test_two_listeners_two_route_tables(procs):
    a = start_sample(procs, app="alpha")
    b = start_sample(procs, app="beta")
    boot = proxy_bootstrap({"alpha": [a.port], "beta": [b.port]},
                           stat_prefix="front")
    second = proxy_bootstrap({"beta": [b.port]}, stat_prefix="back",
                             listener_name="internal")
    boot["static_resources"]["listeners"] += \
        second["static_resources"]["listeners"]
    p = start_proxy(procs, boot)
    assert len(p.ports) == 2
    assert http_request(p.ports[0], "/").json()["app"] == "alpha"
    assert http_request(p.ports[1], "/").json()["app"] == "beta"
    st = proxy_stats(p)
    assert st["http.front.downstream_rq_total"] == 1
    assert st["http.back.downstream_rq_total"] == 1
    assert st[f"listener.{LOOPBACK}_{p.ports[1]}.downstream_cx_total"] == 1


def test_bootstrap_without_admin(procs):
    s = start_sample(procs)
    boot = proxy_bootstrap({"app": [s.port]})
    del boot["admin"]
    p = start_proxy(procs, boot)
    assert p.admin_port is None
    assert http_request(p.port, "/").json()["workload"] == "sample-v1"
    # without /ready, the log says when start-up is complete
    wait_for(lambda: "kite-proxy live" in p.output(), 5, "the live line")
