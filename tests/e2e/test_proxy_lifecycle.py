"""kite-proxy's life: bad bootstraps refused with the field path, validate
mode, workers, port conflicts, SIGTERM draining and SIGINT."""

import http.client
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (LOOPBACK, SockReader, admin_request, bin_path,
                      free_port, http_request, proxy_bootstrap, proxy_stats,
                      read_response, start_proxy, start_sample, wait_for)

# The bootstrap users write, as YAML; {listen}, {admin} and {backend} are
# ports. Line numbers matter to the syntax-error test below.
YAML = """\
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}
static_resources:
  listeners:
  - name: ingress
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listen} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: backend, timeout: 15s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {backend} }}
"""


def yaml_config(listen=None, admin=None, backend=None, **edits):
    text = YAML.format(listen=listen or free_port(), admin=admin or
                       free_port(), backend=backend or free_port())
    for old, new in edits.values():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def run_proxy(tmp_path, text, *args, name="bootstrap.yaml", timeout=20):
    cfg = tmp_path / name
    cfg.write_text(text)
    return subprocess.run([bin_path("kite-proxy"), "-c", cfg, *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("edit,needles", [
    (("lb_policy: ROUND_ROBIN", "lb_policy: ROUNDROBIN"),
     ["static_resources.clusters[0].lb_policy", '"ROUNDROBIN"',
      "bootstrap.yaml:{line}:"]),
    (("lb_policy: ROUND_ROBIN", "lb_polcy: ROUND_ROBIN"),
     ["static_resources.clusters[0].lb_polcy", "unknown field"]),
    (("cluster: backend, timeout", "cluster: reviews, timeout"),
     ["static_resources.listeners[0].filter_chains[0].filters[0]."
      "typed_config.route_config.virtual_hosts[0].routes[0].route.cluster",
      '"reviews"']),
    (("connect_timeout: 1s", "connect_timeout: soon"),
     ["static_resources.clusters[0].connect_timeout", '"soon"']),
    (("    type: STATIC", "    type: STATIC: oops"),
     ["bootstrap.yaml:{line}:", "YAML"]),
    (("stat_prefix: ingress_http", "stat_prefix: [ingress_http"),
     ["bootstrap.yaml:", "YAML"]),
    (("          http_filters:\n          - name: envoy.filters.http.router",
      "          http_filters:\n          - name: envoy.filters.http.cors\n"
      "            typed_config:\n"
      "              \"@type\": type.googleapis.com/envoy.extensions.filters."
      "http.cors.v3.Cors\n"
      "          - name: envoy.filters.http.router"),
     ["http_filters[0].typed_config", "cors.v3.Cors"]),
    (('domains: ["*"]', 'domains: ["*.a.*"]'),
     ["virtual_hosts[0].domains[0]", '"*" may only lead or trail']),
    (("type: STATIC", "type: EDS"),
     ["static_resources.clusters[0].type", "EDS"]),
], ids=["bad_enum", "unknown_field", "unknown_cluster", "bad_duration",
        "yaml_syntax", "yaml_unclosed", "unsupported_filter",
        "bad_wildcard", "unsupported_cluster_type"])
def test_bad_bootstrap_names_the_field(tmp_path, edit, needles):
    port = free_port()
    text = yaml_config(listen=port, e=edit)
    line = text.split(edit[1])[0].count("\n") + 1  # of the edited line
    r = run_proxy(tmp_path, text)
    assert r.returncode != 0
    for n in needles:
        n = n.format(line=line)
        assert n in r.stderr, (n, r.stderr)
    assert "\n" == r.stderr[-1:] and r.stderr.count("\n") <= 3, r.stderr
    # nothing was left listening
    with pytest.raises(OSError):
        socket.create_connection((LOOPBACK, port), timeout=1).close()


def test_bad_bootstrap_json(tmp_path):
    b = proxy_bootstrap({"backend": [free_port()]}, listener_port=free_port(),
                        admin_port=free_port())
    b["static_resources"]["clusters"][0]["lb_policy"] = "ROUNDROBIN"
    r = run_proxy(tmp_path, json.dumps(b), name="bootstrap.json")
    assert r.returncode != 0
    assert "static_resources.clusters[0].lb_policy" in r.stderr
    assert "ROUNDROBIN" in r.stderr


def test_missing_config_file(tmp_path):
    r = subprocess.run([bin_path("kite-proxy"), "-c", tmp_path / "nope.yaml"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "nope.yaml" in r.stderr


def test_bad_flags(tmp_path):
    cfg = tmp_path / "b.yaml"
    cfg.write_text(yaml_config())
    for args, needle in ((["--concurrency", "0"], "--concurrency"),
                         (["--log-level", "loud"], "--log-level"),
                         (["--mode", "dance"], "--mode"),
                         ([], "-c")):
        full = [bin_path("kite-proxy")] + (["-c", cfg] if args else []) + args
        r = subprocess.run(full, capture_output=True, text=True, timeout=20)
        assert r.returncode != 0, args
        assert needle in r.stderr, (args, r.stderr)


def test_mode_validate(tmp_path):
    port = free_port()
    r = run_proxy(tmp_path, yaml_config(listen=port), "--mode", "validate")
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
    with pytest.raises(OSError):  # validate never binds
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    r = run_proxy(tmp_path, yaml_config(e=("lb_policy: ROUND_ROBIN",
                                           "lb_policy: MAGLEVV")),
                  "--mode", "validate")
    assert r.returncode != 0 and "MAGLEVV" in r.stderr


def test_yaml_bootstrap_serves(procs):
    s = start_sample(procs, app="yaml")
    listen, admin = free_port(), free_port()
    p = start_proxy(procs, yaml_config(listen=listen, admin=admin,
                                       backend=s.port))
    wait_for(lambda: admin_request_ok(admin), 10, "the admin port")
    r = http_request(listen, "/")
    assert r.json()["workload"] == "yaml-v1"


def admin_request_ok(port):
    try:
        return http_request(port, "/ready").status == 200
    except OSError:
        return False


def test_listener_port_in_use(procs, tmp_path):
    taken = socket.socket()
    taken.bind((LOOPBACK, 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        r = run_proxy(tmp_path, yaml_config(listen=port))
        assert r.returncode != 0
        assert f"{LOOPBACK}:{port}" in r.stderr, r.stderr
        assert "in use" in r.stderr, r.stderr
    finally:
        taken.close()


def test_admin_port_in_use(tmp_path):
    taken = socket.socket()
    taken.bind((LOOPBACK, 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    listen = free_port()
    try:
        r = run_proxy(tmp_path, yaml_config(listen=listen, admin=port))
        assert r.returncode != 0
        assert "admin" in r.stderr and f"{LOOPBACK}:{port}" in r.stderr
        assert "in use" in r.stderr, r.stderr
    finally:
        taken.close()


def test_concurrency_two_workers(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}), concurrency=2)
    info = admin_request(p, "/server_info").json()
    assert info["command_line_options"]["concurrency"] == 2
    assert admin_request(p, "/ready").status == 200
    results = []

    def client(i):
        conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
        for j in range(10):
            conn.request("GET", f"/w{i}/{j}")
            r = conn.getresponse()
            results.append((r.status, json.loads(r.read())["path"]))
        conn.close()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 80
    assert all(st == 200 for st, _ in results)
    assert {path for _, path in results} == {f"/w{i}/{j}" for i in range(8)
                                             for j in range(10)}
    # stats shards of both workers add up
    st = proxy_stats(p)
    assert st["cluster.app.upstream_rq_total"] == 80
    assert st["server.concurrency"] == 2


def test_sigterm_drains_in_flight_request(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}),
                    drain_time_s=10)
    result = {}

    def slow():
        result["r"] = http_request(p.port, "/slow?delay_ms=1000",
                                   headers={"Connection": "keep-alive"})
        result["t"] = time.monotonic()
    # also an idle keep-alive client: it is closed, not waited for
    idle = socket.create_connection((LOOPBACK, p.port), timeout=10)
    idle.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
    idle_rd = SockReader(idle)
    assert read_response(idle_rd).status == 200
    t = threading.Thread(target=slow)
    t.start()
    wait_for(lambda: proxy_stats(p)["cluster.app.upstream_rq_active"] == 1,
             5, "the slow request to be upstream")
    t_term = time.monotonic()
    p.stopped = True  # judged here
    p.popen.send_signal(signal.SIGTERM)
    # the listener closes: new connections are refused
    wait_for(lambda: refused(p.port), 5, "the listener to close")
    # and readiness fails (kubelet stops sending traffic), while the admin
    # API still answers
    r = admin_request(p, "/ready")
    assert (r.status, r.body) == (503, b"DRAINING\n")
    assert idle_rd.at_eof(5), "idle keep-alive connection closed on drain"
    idle.close()
    t.join(10)
    r = result["r"]
    assert r.status == 200 and r.json()["path"] == "/slow"
    assert r.header("connection") == "close"  # no more on this connection
    assert p.popen.wait(10) == 0, p.output()[-3000:]
    exited = time.monotonic()
    assert exited - t_term < 5, "exit once drained, not at the drain time"
    assert exited >= result["t"] - 0.1


def refused(port):
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_sigterm_drain_time_limits_the_wait(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}),
                    drain_time_s=1)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /forever?delay_ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: proxy_stats(p)["cluster.app.upstream_rq_active"]
                 == 1, 5, "the request to be upstream")
        t0 = time.monotonic()
        p.stopped = True
        p.popen.send_signal(signal.SIGTERM)
        assert p.popen.wait(10) == 0, p.output()[-3000:]
        took = time.monotonic() - t0
        assert 0.8 <= took < 4, took
        # the client's connection was closed without an answer
        assert SockReader(c).read_to_eof() == b""


def test_sigint_exits_at_once(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}),
                    drain_time_s=30)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(b"GET /forever?delay_ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: proxy_stats(p)["cluster.app.upstream_rq_active"]
                 == 1, 5, "the request to be upstream")
        t0 = time.monotonic()
        p.stopped = True
        p.popen.send_signal(signal.SIGINT)
        assert p.popen.wait(10) == 0, p.output()[-3000:]
        assert time.monotonic() - t0 < 2


def test_sigterm_with_two_workers(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}), concurrency=2,
                    drain_time_s=10)
    results = []

    def slow(i):
        results.append(http_request(p.port, f"/s{i}?delay_ms=600").status)
    threads = [threading.Thread(target=slow, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: proxy_stats(p)["cluster.app.upstream_rq_active"] == 6,
             5, "all six requests to be upstream")
    p.stopped = True
    p.popen.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(10)
    assert results == [200] * 6
    assert p.popen.wait(10) == 0, p.output()[-3000:]


def test_sigterm_right_after_listener_accepts(procs):
    """A proxy that already accepts connections also handles SIGTERM
    (drain, exit 0), however early the signal comes: Kubernetes may stop a
    pod at any moment. Many workers make start-up (between the first
    listener accepting and the last worker starting) long enough to aim
    at."""
    s = start_sample(procs)
    for i in range(3):
        boot = proxy_bootstrap({"app": [s.port]})
        del boot["admin"]  # readiness = the listener accepting
        p = start_proxy(procs, boot, name=f"early-{i}", concurrency=64)
        p.stopped = True
        p.popen.send_signal(signal.SIGTERM)
        rc = p.popen.wait(10)
        assert rc == 0, (i, rc, p.output()[-2000:])
