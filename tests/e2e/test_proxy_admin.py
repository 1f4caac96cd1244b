"""kite-proxy's admin API, as an operator (or Prometheus, or kubelet)
uses Envoy's."""

import http.client
import json
import re
import socket

import pytest

from conftest import (LOOPBACK, admin_request, http_request, proxy_bootstrap,
                      proxy_stats, start_proxy, start_sample, wait_for)

N_REQUESTS = 7


@pytest.fixture
def busy_proxy(procs):
    """A proxy in front of a sample that has served N_REQUESTS requests
    (200s) on one connection and one 404 on another."""
    s = start_sample(procs, app="details")
    p = start_proxy(procs, proxy_bootstrap(
        {"details": [s.port]},
        virtual_hosts=[{"name": "d", "domains": ["*"], "routes": [
            {"match": {"prefix": "/details"},
             "route": {"cluster": "details"}}]}]))
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    for i in range(N_REQUESTS):
        conn.request("GET", f"/details/{i}")
        assert conn.getresponse().read()
    conn.close()
    assert http_request(p.port, "/nothing-here").status == 404
    p.sample = s
    return p


def test_ready_and_healthz(busy_proxy):
    r = admin_request(busy_proxy, "/ready")
    assert r.status == 200 and r.body == b"LIVE\n"
    r = admin_request(busy_proxy, "/healthz")
    assert r.status == 200


def test_stats_use_envoy_names(busy_proxy):
    p = busy_proxy
    st = wait_for(lambda: (lambda s: s if s[
        "http.ingress_http.downstream_cx_active"] == 0 else None)(
            proxy_stats(p)), 5, "client connections to close")
    assert st["http.ingress_http.downstream_rq_total"] == N_REQUESTS + 1
    assert st["http.ingress_http.downstream_rq_2xx"] == N_REQUESTS
    assert st["http.ingress_http.downstream_rq_4xx"] == 1
    assert st["http.ingress_http.downstream_rq_completed"] == N_REQUESTS + 1
    assert st["http.ingress_http.no_route"] == 1
    assert st["cluster.details.upstream_rq_total"] == N_REQUESTS
    assert st["cluster.details.upstream_rq_2xx"] == N_REQUESTS
    assert st["cluster.details.upstream_cx_total"] == 1
    assert st["cluster.details.upstream_cx_active"] == 1  # pooled
    assert st["cluster.details.upstream_rq_active"] == 0
    assert st["cluster.details.membership_healthy"] == 1
    assert st["server.live"] == 1
    assert st["server.concurrency"] == 1
    lst = f"listener.{LOOPBACK}_{p.port}"
    # the fixture's two client connections (start_proxy never probes)
    assert st[f"{lst}.downstream_cx_total"] == 2
    assert st["http.ingress_http.downstream_cx_total"] == 2
    assert st[f"{lst}.downstream_cx_active"] == 0


def test_listener_stats_count_closed_connections(busy_proxy):
    """Closed connections are downstream_cx_destroy, not overflow (the
    listener never refused one)."""
    p = busy_proxy
    lst = f"listener.{LOOPBACK}_{p.port}"
    st = wait_for(lambda: (lambda s: s if s[
        f"{lst}.downstream_cx_active"] == 0 else None)(proxy_stats(p)),
        5, "client connections to close")
    assert st[f"{lst}.downstream_cx_overflow"] == 0, st
    assert st[f"{lst}.downstream_cx_destroy"] == \
        st[f"{lst}.downstream_cx_total"]


def test_stats_filter_and_json(busy_proxy):
    r = admin_request(busy_proxy, "/stats?filter=upstream_rq_total")
    assert r.status == 200
    assert r.body.decode() == \
        f"cluster.details.upstream_rq_total: {N_REQUESTS}\n"
    r = admin_request(busy_proxy, "/stats?format=json")
    assert r.status == 200 and r.header("content-type") == "application/json"
    stats = {s["name"]: s["value"] for s in r.json()["stats"]}
    assert stats["cluster.details.upstream_rq_total"] == N_REQUESTS


def test_stats_prometheus(busy_proxy):
    r = admin_request(busy_proxy, "/stats/prometheus")
    assert r.status == 200
    assert r.header("content-type").startswith("text/plain")
    types, samples = {}, {}
    sample_re = re.compile(
        r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="'
        r'(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')
    for line in r.body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"second TYPE line for {name}"
            assert kind in ("counter", "gauge", "histogram", "summary",
                            "untyped")
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = sample_re.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"{name} has no TYPE line"
        key = name + (m.group(2) or "")
        assert key not in samples, f"duplicate series {key}"
        samples[key] = float(m.group(3))
    assert samples['envoy_cluster_upstream_rq_total{envoy_cluster_name='
                   '"details"}'] == N_REQUESTS
    assert types["envoy_cluster_upstream_rq_total"] == "counter"
    assert types["envoy_cluster_upstream_cx_active"] == "gauge"
    assert samples['envoy_http_downstream_rq_total{envoy_http_conn_manager'
                   '_prefix="ingress_http"}'] == N_REQUESTS + 1
    assert samples["envoy_server_live"] == 1


def test_config_dump_is_the_bootstrap(busy_proxy):
    r = admin_request(busy_proxy, "/config_dump")
    assert r.status == 200 and r.header("content-type") == "application/json"
    dump = r.json()
    text = json.dumps(dump)
    assert '"details"' in text
    (boot,) = [c for c in dump["configs"]
               if c["@type"].endswith("BootstrapConfigDump")]
    sr = boot["bootstrap"]["static_resources"]
    assert [c["name"] for c in sr["clusters"]] == ["details"]
    # proto3 JSON: durations as "1s"; default enum values are left out
    assert sr["clusters"][0]["connect_timeout"] == "1s"
    assert sr["clusters"][0].get("lb_policy", "ROUND_ROBIN") == "ROUND_ROBIN"
    eps = sr["clusters"][0]["load_assignment"]["endpoints"][0]
    addr = eps["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert addr == {"address": LOOPBACK,
                    "port_value": busy_proxy.sample.port}
    lst = sr["listeners"][0]
    assert lst["address"]["socket_address"]["port_value"] == busy_proxy.port
    assert "type.googleapis.com/envoy.extensions.filters.network." \
           "http_connection_manager.v3.HttpConnectionManager" in text


def test_clusters_lists_endpoints(busy_proxy):
    p = busy_proxy
    r = admin_request(p, "/clusters")
    assert r.status == 200
    lines = r.body.decode().splitlines()
    ep = f"details::{LOOPBACK}:{p.sample.port}"
    assert f"{ep}::rq_total::{N_REQUESTS}" in lines
    assert f"{ep}::health_flags::healthy" in lines
    r = admin_request(p, "/clusters?format=json")
    (cl,) = r.json()["cluster_statuses"]
    assert cl["name"] == "details"
    (h,) = cl["host_statuses"]
    assert h["address"]["socket_address"]["port_value"] == p.sample.port


def test_listeners(busy_proxy):
    r = admin_request(busy_proxy, "/listeners")
    assert r.status == 200
    assert r.body.decode() == f"ingress::{LOOPBACK}:{busy_proxy.port}\n"


def test_server_info(busy_proxy):
    r = admin_request(busy_proxy, "/server_info")
    assert r.status == 200
    info = r.json()
    assert info["state"] == "LIVE"
    assert info["command_line_options"]["concurrency"] == 1
    assert info["command_line_options"]["config_path"] == \
        str(busy_proxy.config_path)
    assert "version" in info


def test_unknown_path_404(busy_proxy):
    r = admin_request(busy_proxy, "/no-such-endpoint")
    assert r.status == 404
    assert b"/stats" in r.body  # lists what exists


def test_quitquitquit_needs_post_then_exits_zero(procs):
    s = start_sample(procs)
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]}))
    r = admin_request(p, "/quitquitquit")
    assert r.status == 405
    assert p.alive()
    assert http_request(p.port, "/").status == 200
    r = admin_request(p, "/quitquitquit", method="POST")
    assert r.status == 200
    p.stopped = True  # judged here
    assert p.popen.wait(10) == 0, p.output()[-3000:]
    with pytest.raises(OSError):
        socket.create_connection((LOOPBACK, p.port), timeout=1).close()
