"""kite-proxy under valgrind's memcheck: a short session through every
major path (keep-alive, chunked both ways, upstream down, malformed
requests, timeouts, admin, shutdown) must end with no memory errors and no
leaks. Valgrind needs an uninstrumented build: `make test` points
KITE_MEMCHECK_BIN_DIR at build/bin; without it the test is skipped."""
import os
import shutil
import socket
from pathlib import Path

import pytest

from conftest import (LOOPBACK, SockReader, free_port, http_request,
                      proxy_bootstrap, read_response, wait_for, wait_port)

MEMCHECK_DIR = os.environ.get("KITE_MEMCHECK_BIN_DIR")

pytestmark = pytest.mark.skipif(
    not MEMCHECK_DIR or not shutil.which("valgrind"),
    reason="set KITE_MEMCHECK_BIN_DIR to an uninstrumented build/bin "
           "(make test does) and install valgrind")


def test_proxy_session_is_memcheck_clean(procs, tmp_path):
    bindir = Path(MEMCHECK_DIR)
    sport = free_port()
    procs.start([bindir / "kite-sample", "--listen", f"{LOOPBACK}:{sport}",
                 "--log-level", "warn"], name="sample", port=sport)
    boot = proxy_bootstrap({"app": [sport], "down": [free_port()]},
                           route_timeout="0.5s")
    # second route to the dead cluster; the first vhost's routes are
    # /down -> down, / -> app
    vh = boot["static_resources"]["listeners"][0]["filter_chains"][0][
        "filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    vh["routes"].insert(0, {"match": {"prefix": "/down"},
                            "route": {"cluster": "down"}})
    port, admin = free_port(), free_port()
    boot["static_resources"]["listeners"][0]["address"]["socket_address"][
        "port_value"] = port
    boot["admin"] = {"address": {"socket_address": {
        "address": LOOPBACK, "port_value": admin}}}
    import json
    cfg = tmp_path / "memcheck.json"
    cfg.write_text(json.dumps(boot))
    vlog = tmp_path / "valgrind.log"
    p = procs.start(["valgrind", "--error-exitcode=99", "--leak-check=full",
                     "--errors-for-leak-kinds=definite,indirect",
                     f"--log-file={vlog}", bindir / "kite-proxy", "-c", cfg,
                     "--concurrency", "2", "--log-level", "warn"],
                    name="kite-proxy-memcheck", check_exit=False)
    wait_port(LOOPBACK, port, timeout=60, proc=p)
    wait_port(LOOPBACK, admin, timeout=60, proc=p)

    with socket.create_connection((LOOPBACK, port), timeout=30) as c:
        rd = SockReader(c)
        for path in ("/a", "/b?size=200000", "/c?size=100000&chunked=1"):
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert read_response(rd).status == 200
        body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        c.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + body)
        assert read_response(rd).json()["body_bytes"] == 11
    assert http_request(port, "/down", timeout=30).status == 503
    assert http_request(port, "/slow?delay_ms=2000", timeout=30).status == 504
    r = http_request(port, "/", headers={"Content-Length": "1",
                                         "Transfer-Encoding": "chunked"},
                     body=b"", timeout=30)
    assert r.status == 400
    for path in ("/stats", "/stats/prometheus", "/config_dump", "/clusters",
                 "/server_info", "/listeners"):
        assert http_request(admin, path, timeout=30).status == 200
    assert http_request(admin, "/quitquitquit", method="POST",
                        timeout=30).status == 200
    wait_for(lambda: not p.alive(), 60, "kite-proxy to exit under valgrind")
    rc = p.stop()
    report = vlog.read_text()
    assert rc == 0, f"valgrind reported problems (exit {rc}):\n{report[-4000:]}"
    assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
