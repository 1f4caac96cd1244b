"""End-to-end tests of kite-sample, the demo/test/benchmark backend."""

import socket
import subprocess
import threading
import time

import pytest

from conftest import (LOOPBACK, SockReader, bin_path, free_port,
                      http_request, read_response, start_sample)

PATTERN = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
           b"0123456789+/")


def rss_kib(pid, field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def connect(port):
    s = socket.create_connection((LOOPBACK, port), timeout=30)
    return s, SockReader(s)


def get(sock, path, extra=""):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode())


class PatternCheck:
    """Checks a streamed body against the sample's pattern without keeping
    it: byte i must be PATTERN[i % 64]."""

    def __init__(self):
        self.n = 0
        self.ok = True
        self.big = PATTERN * ((1 << 20) // len(PATTERN) + 1)

    def __call__(self, chunk):
        off = self.n % len(PATTERN)
        if chunk != self.big[off:off + len(chunk)]:
            # chunks are <= 1 MiB, the reference covers off + 1 MiB
            self.ok = False
        self.n += len(chunk)


def test_json_describes_request(procs):
    s = start_sample(procs, app="reviews", version="v2")
    r = http_request(s.port, "/api/x?a=1&b=2",
                     headers={"X-Custom": "hello", "x-custom": "again"})
    assert r.status == 200
    assert r.header("content-type") == "application/json"
    j = r.json()
    assert j["workload"] == "reviews-v2"
    assert j["app"] == "reviews" and j["version"] == "v2"
    assert j["method"] == "GET"
    assert j["path"] == "/api/x" and j["query"] == "a=1&b=2"
    assert j["host"] == f"{LOOPBACK}:{s.port}"
    # names lower-cased, repeated fields joined as one list value
    assert j["headers"]["x-custom"] == "hello, again"
    assert j["body_bytes"] == 0
    assert j["calls"] == []


def test_env_fallbacks(procs):
    port = free_port()
    procs.start([bin_path("kite-sample")], port=port,
                env={"KITE_SAMPLE_LISTEN": f"{LOOPBACK}:{port}",
                     "APP": "ratings", "VERSION": "v3", "CALLS": None})
    assert http_request(port, "/").json()["workload"] == "ratings-v3"


def test_healthz(procs):
    s = start_sample(procs)
    r = http_request(s.port, "/healthz")
    assert r.status == 200 and r.body == b"ok\n"


def test_status_and_headers_controls(procs):
    s = start_sample(procs)
    r = http_request(s.port, "/?status=503&headers=x-a:1,x-b:hello%20world")
    assert r.status == 503
    assert r.json()["workload"] == "sample-v1"
    assert r.header("x-a") == "1" and r.header("x-b") == "hello world"
    r = http_request(s.port, "/?status=204")
    assert r.status == 204 and r.body == b""


@pytest.mark.parametrize("query,param", [
    ("status=abc", "status"),
    ("status=99", "status"),
    ("delay_ms=-1", "delay_ms"),
    ("size=lots", "size"),
    ("chunked=maybe", "chunked"),
    ("headers=novalue", "headers"),
    ("headers=content-length:5", "headers"),
    ("headers=x-a:%0d%0ainjected:1", "headers"),
])
def test_invalid_controls_are_400(procs, query, param):
    s = start_sample(procs, name="sample")
    r = http_request(s.port, "/?" + query)
    assert r.status == 400
    j = r.json()
    assert j["parameter"] == param
    assert j["reason"]


def test_delay_is_nonblocking(procs):
    s = start_sample(procs)
    result = {}

    def slow():
        t0 = time.monotonic()
        result["r"] = http_request(s.port, "/?delay_ms=600")
        result["t"] = time.monotonic() - t0

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.05)  # let the slow request get in first (not a readiness wait)
    t0 = time.monotonic()
    assert http_request(s.port, "/fast").status == 200
    fast = time.monotonic() - t0
    th.join(10)
    assert result["r"].status == 200
    assert result["t"] >= 0.6
    assert fast < 0.5, "a delayed request must not block the loop"


def test_size_exact_and_pattern(procs):
    s = start_sample(procs)
    r = http_request(s.port, "/?size=4096")
    assert r.status == 200
    assert r.header("content-length") == "4096"
    assert r.body == (PATTERN * 64)[:4096]
    r = http_request(s.port, "/?size=0")
    assert r.body == b"" and r.header("content-length") == "0"


def test_size_streamed_large_bounded_memory(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    get(sock, "/?size=1g")  # warm the connection state first
    before = rss_kib(s.pid)
    chk = PatternCheck()
    r = read_response(rd, body_sink=chk)
    assert r.status == 200 and r.header("content-length") == str(1 << 30)
    assert chk.n == 1 << 30 and chk.ok
    # streamed from a static pattern: memory must not follow the size
    assert rss_kib(s.pid) - before < 32 * 1024
    # the connection is still usable
    get(sock, "/after")
    assert read_response(rd).json()["path"] == "/after"
    sock.close()


def test_chunked_response(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    get(sock, "/c?chunked=1")
    r = read_response(rd)
    assert r.header("transfer-encoding") == "chunked"
    assert r.header("content-length") is None
    assert r.json()["path"] == "/c"
    chk = PatternCheck()
    get(sock, "/?size=3000000&chunked=1")
    r = read_response(rd, body_sink=chk)
    assert r.header("transfer-encoding") == "chunked"
    assert chk.n == 3000000 and chk.ok
    sock.close()


def test_head(procs):
    s = start_sample(procs)
    r = http_request(s.port, "/?size=123456", method="HEAD")
    assert r.status == 200 and r.header("content-length") == "123456"
    r = http_request(s.port, "/", method="HEAD")
    assert int(r.header("content-length")) > 0


def test_chunked_upload_100mb(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    before = rss_kib(s.pid)
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * (1 << 20)
    framed = b"100000\r\n" + chunk + b"\r\n"
    for _ in range(100):
        sock.sendall(framed)
    sock.sendall(b"0\r\n\r\n")
    r = read_response(rd)
    assert r.status == 200
    assert r.json()["body_bytes"] == 100 * (1 << 20)
    assert rss_kib(s.pid) - before < 32 * 1024, "upload must be streamed"
    sock.close()


def test_content_length_upload_and_expect_continue(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    body = b"y" * 300000
    sock.sendall(b"PUT /put HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body))
    r = read_response(rd)
    assert r.status == 100
    sock.sendall(body)
    r = read_response(rd)
    assert r.status == 200
    assert r.json()["body_bytes"] == len(body)
    sock.close()


def test_keep_alive_reuse(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    for i in range(5):
        get(sock, f"/ka/{i}")
        r = read_response(rd)
        assert r.status == 200 and r.json()["path"] == f"/ka/{i}"
        assert r.header("connection") is None  # HTTP/1.1 default: persistent
    sock.close()


def test_pipelining_answers_in_order(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    sock.sendall(b"GET /first?delay_ms=100 HTTP/1.1\r\nHost: t\r\n\r\n"
                 b"POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                 b"\r\nabcGET /third HTTP/1.1\r\nHost: t\r\n\r\n")
    got = [read_response(rd).json() for _ in range(3)]
    assert [j["path"] for j in got] == ["/first", "/second", "/third"]
    assert got[1]["body_bytes"] == 3
    sock.close()


def test_split_reads(procs):
    """Heads and bodies arriving in small pieces, the head boundary falling
    anywhere: the parser must resume correctly."""
    s = start_sample(procs)
    sock, rd = connect(s.port)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = (b"POST /split?x=1 HTTP/1.1\r\nHost: t\r\nX-Long: " + b"v" * 3000 +
           b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
           b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n")
    for i in range(0, len(msg), 7):
        sock.sendall(msg[i:i + 7])
        if i % 700 == 0:
            time.sleep(0.001)  # split into separate segments, not a wait
    j = read_response(rd).json()
    assert j["path"] == "/split" and j["body_bytes"] == 8
    assert len(j["headers"]["x-long"]) == 3000
    sock.close()


def test_http10_and_obs_text(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    sock.sendall(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n"
                 b"X-Bin: caf\xe9\r\n\r\n")
    r = read_response(rd)
    assert r.header("connection").lower() == "keep-alive"
    j = r.json()
    assert j["protocol"] == "HTTP/1.0"
    assert j["headers"]["x-bin"] == "caf\u00e9"
    sock.sendall(b"GET /old2 HTTP/1.0\r\n\r\n")
    r = read_response(rd)
    assert r.json()["path"] == "/old2"
    assert rd.at_eof()
    sock.close()


def test_pipelining_backpressure(procs):
    """Pipelined requests from a client that reads late, with more answer
    bytes than the socket buffers hold: the server must stop reading
    instead of queueing answers without bound, then answer all in order."""
    s = start_sample(procs)
    sock, rd = connect(s.port)
    n = 1000  # 16 MiB of answers
    batch = b"".join(b"GET /p/%d?size=16k HTTP/1.1\r\nHost: t\r\n\r\n" % i
                     for i in range(n))
    writer = threading.Thread(target=sock.sendall, args=(batch,))
    writer.start()
    time.sleep(0.3)  # let answers pile up unread (not a readiness wait)
    for i in range(n):
        r = read_response(rd)
        assert r.status == 200 and r.body == (PATTERN * 256)[:16384], i
    writer.join(10)
    get(sock, "/last")
    assert read_response(rd).json()["path"] == "/last"
    sock.close()


def test_close_control(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    get(sock, "/?close=1")
    r = read_response(rd)
    assert r.status == 200 and r.header("connection") == "close"
    assert rd.at_eof()
    sock.close()


def test_drop_control(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    get(sock, "/?drop=1")
    assert rd.at_eof(), "dropped connection must close without a response"
    sock.close()


def test_bad_request_rejected(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    r = read_response(rd)
    assert r.status == 400 and r.header("connection") == "close"
    assert "error" in r.json()
    sock.close()


def test_fanout_nests_answers_and_propagates(procs):
    back = start_sample(procs, app="reviews", version="v2")
    url = f"http://{LOOPBACK}:{back.port}/reviews/1"
    front = start_sample(procs, app="productpage", calls=[url, url + "?x=2"])
    r = http_request(front.port, "/productpage",
                     headers={"x-request-id": "req-123",
                              "traceparent": "00-0af7651916cd43dd8448eb211c80"
                                             "319c-b7ad6b7169203331-01",
                              "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
                              "x-unrelated": "no"})
    assert r.status == 200
    j = r.json()
    assert j["workload"] == "productpage-v1"
    assert len(j["calls"]) == 2
    c = j["calls"][0]
    assert c["url"] == url and c["status"] == 200
    assert c["body"]["workload"] == "reviews-v2"
    assert c["body"]["path"] == "/reviews/1"
    h = c["body"]["headers"]
    assert h["x-request-id"] == "req-123"
    assert h["traceparent"].startswith("00-0af7651916cd43dd")
    assert h["x-b3-traceid"] == "80f198ee56343ba864fe8b2a57d3eff7"
    assert "x-unrelated" not in h
    assert j["calls"][1]["body"]["query"] == "x=2"


def test_fanout_nests_non_json_as_string(procs):
    back = start_sample(procs, app="backend")
    front = start_sample(procs, app="front", calls=[
        f"http://{LOOPBACK}:{back.port}/healthz"])
    c = http_request(front.port, "/").json()["calls"][0]
    assert c["status"] == 200 and c["body"] == "ok\n"


def test_fanout_failure_reported(procs):
    dead = free_port()
    front = start_sample(procs, app="front",
                         calls=[f"http://{LOOPBACK}:{dead}/x"])
    r = http_request(front.port, "/")
    assert r.status == 200
    c = r.json()["calls"][0]
    assert "status" not in c
    assert "refused" in c["error"]
    assert http_request(front.port, "/?fail_on_call_error=1").status == 502


def test_fanout_timeout(procs):
    back = start_sample(procs, app="slow")
    front = start_sample(procs, app="front", calls=[
        f"http://{LOOPBACK}:{back.port}/?delay_ms=3000"],
        extra_args=["--call-timeout-ms", "200"])
    t0 = time.monotonic()
    c = http_request(front.port, "/").json()["calls"][0]
    assert "timeout" in c["error"]
    assert time.monotonic() - t0 < 2.5


def test_fanout_through_deep_chain(procs):
    leaf = start_sample(procs, app="leaf")
    mid = start_sample(procs, app="mid",
                       calls=[f"http://{LOOPBACK}:{leaf.port}/leaf"])
    top = start_sample(procs, app="top",
                       calls=[f"http://{LOOPBACK}:{mid.port}/mid"])
    j = http_request(top.port, "/", headers={"x-request-id": "chain"}).json()
    leaf_answer = j["calls"][0]["body"]["calls"][0]["body"]
    assert leaf_answer["workload"] == "leaf-v1"
    assert leaf_answer["headers"]["x-request-id"] == "chain"


class RecordingProxy:
    """A tiny forward proxy: records request lines, rewrites absolute-form
    to origin-form, forwards to the named host and relays the answer."""

    def __init__(self):
        self.lines = []
        self.lsock = socket.socket()
        self.lsock.bind((LOOPBACK, 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _handle(self, conn):
        with conn:
            rd = SockReader(conn)
            head = rd.read_until(b"\r\n\r\n")
            line, rest = head.split(b"\r\n", 1)
            self.lines.append(line.decode())
            method, target, version = line.split(b" ")
            assert target.startswith(b"http://")
            hostport, _, path = target[7:].partition(b"/")
            host, _, port = hostport.partition(b":")
            with socket.create_connection(
                    (host.decode(), int(port or 80))) as up:
                up.sendall(b"%s /%s %s\r\n" % (method, path, version) + rest
                           + rd.buf)
                while True:
                    data = up.recv(65536)
                    if not data:
                        break
                    conn.sendall(data)

    def close(self):
        self.lsock.close()


def test_http_proxy_env_honoured(procs):
    back = start_sample(procs, app="details")
    proxy = RecordingProxy()
    try:
        url = f"http://{LOOPBACK}:{back.port}/details/0"
        front = start_sample(procs, app="front", calls=[url], env={
            "HTTP_PROXY": f"http://{LOOPBACK}:{proxy.port}"})
        c = http_request(front.port, "/").json()["calls"][0]
        assert c["status"] == 200
        assert c["body"]["workload"] == "details-v1"
        assert c["body"]["host"] == f"{LOOPBACK}:{back.port}"
        assert proxy.lines == [f"GET {url} HTTP/1.1"]
        # no_proxy exempts the host: straight to the backend
        front2 = start_sample(procs, app="front2", calls=[url], env={
            "http_proxy": f"http://{LOOPBACK}:{proxy.port}",
            "no_proxy": f"localhost,{LOOPBACK}"})
        c = http_request(front2.port, "/").json()["calls"][0]
        assert c["status"] == 200
        assert len(proxy.lines) == 1
    finally:
        proxy.close()


def test_absolute_form_request(procs):
    s = start_sample(procs)
    sock, rd = connect(s.port)
    sock.sendall(b"GET http://svc.example:80/abs?status=202 HTTP/1.1\r\n"
                 b"Host: svc.example:80\r\n\r\n")
    r = read_response(rd)
    assert r.status == 202
    j = r.json()
    assert j["path"] == "/abs" and j["host"] == "svc.example:80"
    sock.close()


def test_many_connections_and_sigterm(procs):
    s = start_sample(procs)
    socks = []
    for _ in range(50):
        sock, rd = connect(s.port)
        socks.append((sock, rd))
    for sock, _ in socks:
        get(sock, "/many")
    for _, rd in socks:
        assert read_response(rd).status == 200
    # idle keep-alive connections, one mid-delay and one mid-stream must
    # not stop a clean exit (the sanitizer build also checks for leaks)
    socks[0][0].sendall(b"GET /?delay_ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n")
    socks[1][0].sendall(b"GET /?size=1g HTTP/1.1\r\nHost: t\r\n\r\n")
    socks[1][1].read_until(b"\r\n\r\n")
    assert s.stop() == 0
    for sock, _ in socks:
        sock.close()


def test_sigterm_during_fanout(procs):
    back = start_sample(procs, app="slow")
    front = start_sample(procs, app="front", calls=[
        f"http://{LOOPBACK}:{back.port}/?delay_ms=5000"])
    sock, rd = connect(front.port)
    get(sock, "/")
    # wait until the call has reached the backend: it is then mid-fan-out
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Htn", "state", "established",
                              f"dst {LOOPBACK}:{back.port}"],
                             capture_output=True, text=True).stdout
        if out.strip():
            break
        time.sleep(0.01)
    assert front.stop() == 0
    assert rd.at_eof()
    sock.close()
