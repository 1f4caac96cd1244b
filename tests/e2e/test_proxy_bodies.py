"""Bodies through kite-proxy: big uploads and downloads stream with
bounded memory, 100-continue, HEAD, pipelining, slow peers."""

import http.client
import json
import socket
import subprocess
import threading
import time

from conftest import (LOOPBACK, SockReader, http_request, proc_status_kib,
                      proxy_bootstrap, proxy_stats, read_response,
                      start_proxy, start_sample, wait_for)

MB = 1 << 20
BIG = 100 * MB
# A proxy that buffered a 100 MB body would need >= 100 MB; one that
# streams needs a few buffers. The allowance covers allocator and
# sanitizer noise (ASan keeps freed memory in quarantine for a while).
RSS_GROWTH_LIMIT_KIB = 64 * 1024

PATTERN = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
           b"0123456789+/")


class PatternCheck:
    """Checks a streamed body against kite-sample's ?size= pattern (byte i
    is PATTERN[i % 64]) without keeping it."""

    def __init__(self):
        self.n = 0
        self.ok = True
        self.ref = PATTERN * ((2 * MB) // len(PATTERN) + 1)

    def __call__(self, chunk):
        while chunk:
            piece, chunk = chunk[:MB], chunk[MB:]
            off = self.n % len(PATTERN)
            if piece != self.ref[off:off + len(piece)]:
                self.ok = False
            self.n += len(piece)


def behind_proxy(procs, **kw):
    s = start_sample(procs, app="files", version="v1")
    p = start_proxy(procs, proxy_bootstrap({"files": [s.port]}, **kw))
    # warm up: the first request allocates the pools and buffers
    assert http_request(p.port, "/warm?size=256k").status == 200
    return s, p


def body_chunks(total, block=256 * 1024):
    blk = bytes(range(256)) * (block // 256)
    left = total
    while left:
        n = min(left, block)
        yield blk[:n]
        left -= n


def test_chunked_upload_100mb_bounded_memory(procs):
    s, p = behind_proxy(procs)
    start = proc_status_kib(p.pid, "VmHWM")
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=60)
    conn.request("POST", "/upload", body=body_chunks(BIG),
                 headers={"Transfer-Encoding": "chunked"},
                 encode_chunked=True)
    r = conn.getresponse()
    j = json.loads(r.read())
    conn.close()
    assert r.status == 200
    assert j["body_bytes"] == BIG
    assert j["headers"]["transfer-encoding"] == "chunked"
    grew = proc_status_kib(p.pid, "VmHWM") - start
    assert grew < RSS_GROWTH_LIMIT_KIB, f"proxy peak RSS grew {grew} KiB"


def test_content_length_upload_100mb_bounded_memory(procs):
    s, p = behind_proxy(procs)
    start = proc_status_kib(p.pid, "VmHWM")
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=60)
    conn.request("PUT", "/upload", body=body_chunks(BIG),
                 headers={"Content-Length": str(BIG)})
    r = conn.getresponse()
    j = json.loads(r.read())
    conn.close()
    assert r.status == 200 and j["body_bytes"] == BIG
    assert j["headers"]["content-length"] == str(BIG)
    grew = proc_status_kib(p.pid, "VmHWM") - start
    assert grew < RSS_GROWTH_LIMIT_KIB, f"proxy peak RSS grew {grew} KiB"


def download(port, path):
    with socket.create_connection((LOOPBACK, port), timeout=60) as c:
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: files\r\n\r\n".encode())
        check = PatternCheck()
        r = read_response(SockReader(c), body_sink=check)
    return r, check


def test_download_100mb_content_length_bounded_memory(procs):
    s, p = behind_proxy(procs)
    start = proc_status_kib(p.pid, "VmHWM")
    r, check = download(p.port, f"/big?size={BIG}")
    assert r.status == 200
    assert r.header("content-length") == str(BIG)
    assert check.n == BIG and check.ok
    grew = proc_status_kib(p.pid, "VmHWM") - start
    assert grew < RSS_GROWTH_LIMIT_KIB, f"proxy peak RSS grew {grew} KiB"


def test_download_100mb_chunked_bounded_memory(procs):
    s, p = behind_proxy(procs)
    start = proc_status_kib(p.pid, "VmHWM")
    r, check = download(p.port, f"/big?size={BIG}&chunked=1")
    assert r.status == 200
    assert r.header("transfer-encoding") == "chunked"
    assert r.header("content-length") is None
    assert check.n == BIG and check.ok
    grew = proc_status_kib(p.pid, "VmHWM") - start
    assert grew < RSS_GROWTH_LIMIT_KIB, f"proxy peak RSS grew {grew} KiB"


def test_small_bodies_both_framings(procs):
    s, p = behind_proxy(procs)
    conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=10)
    for size in (0, 1, 4095, 65536, 300001):
        conn.request("POST", f"/echo?size={size}", body=b"x" * size)
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200 and len(data) == size
        assert data == (PATTERN * (size // 64 + 1))[:size]
        conn.request("GET", f"/echo?size={size}&chunked=1")
        r = conn.getresponse()
        assert r.read() == (PATTERN * (size // 64 + 1))[:size]
    conn.close()


def test_expect_100_continue(procs):
    s, p = behind_proxy(procs)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"POST /form HTTP/1.1\r\nHost: files\r\n"
                  b"Content-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        # the interim answer comes before we send a byte of the body
        interim = read_response(rd)
        assert interim.status == 100
        c.sendall(b"hello world")
        r = read_response(rd)
        assert r.status == 200
        j = r.json()
        assert j["body_bytes"] == 11
        # answered by the proxy: the backend never sees the Expect
        assert "expect" not in j["headers"]
        # the connection goes on
        c.sendall(b"GET /next HTTP/1.1\r\nHost: files\r\n\r\n")
        assert read_response(rd).json()["path"] == "/next"


def test_expect_100_continue_with_curl(procs, tmp_path):
    s, p = behind_proxy(procs)
    f = tmp_path / "body"
    f.write_bytes(b"z" * 200000)  # small: curl only adds Expect by itself
    # above 1 MiB, so ask for it
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-v",
                        "-H", "Expect: 100-continue",
                        "--expect100-timeout", "5",
                        "--data-binary", f"@{f}",
                        f"http://{LOOPBACK}:{p.port}/up"],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert b"HTTP/1.1 100 Continue" in r.stderr
    assert json.loads(r.stdout)["body_bytes"] == 200000


def test_head_has_no_body(procs):
    s, p = behind_proxy(procs)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"HEAD /h?size=5000 HTTP/1.1\r\nHost: files\r\n\r\n")
        r = read_response(rd, head_request=True)
        assert r.status == 200
        assert r.header("content-length") == "5000"
        # no body bytes follow: the next response starts right away
        c.sendall(b"GET /after HTTP/1.1\r\nHost: files\r\n\r\n")
        r = read_response(rd)
        assert r.status == 200 and r.json()["path"] == "/after"
        c.sendall(b"HEAD /h?size=5000&chunked=1 HTTP/1.1\r\nHost: f\r\n\r\n")
        r = read_response(rd, head_request=True)
        assert r.status == 200 and r.header("content-length") is None
        c.sendall(b"GET /after2 HTTP/1.1\r\nHost: files\r\n\r\n")
        assert read_response(rd).json()["path"] == "/after2"


def test_pipelining_answered_in_order(procs):
    s, p = behind_proxy(procs)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        # the first is the slowest: answers must still come in order
        c.sendall(b"GET /p1?delay_ms=200 HTTP/1.1\r\nHost: files\r\n\r\n"
                  b"POST /p2 HTTP/1.1\r\nHost: files\r\n"
                  b"Content-Length: 3\r\n\r\nabc"
                  b"GET /p3?size=100000&chunked=1 HTTP/1.1\r\nHost: files\r\n"
                  b"\r\n")
        r1 = read_response(rd)
        r2 = read_response(rd)
        r3 = read_response(rd)
        assert r1.json()["path"] == "/p1"
        assert r2.json()["path"] == "/p2" and r2.json()["body_bytes"] == 3
        assert len(r3.body) == 100000
        # and the connection stays usable
        c.sendall(b"GET /p4 HTTP/1.1\r\nHost: files\r\n\r\n")
        assert read_response(rd).json()["path"] == "/p4"


def test_slow_reader_one_byte_per_ms(procs):
    s, p = behind_proxy(procs)
    size = 2048
    with socket.socket() as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.settimeout(10)
        c.connect((LOOPBACK, p.port))
        c.sendall(f"GET /slow?size={size} HTTP/1.1\r\nHost: files\r\n"
                  f"Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = c.recv(1)
            if not b:
                break
            data += b
            time.sleep(0.001)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == (PATTERN * (size // 64 + 1))[:size]


def test_stalled_reader_applies_backpressure(procs):
    """The client stops reading while a large response is produced: the
    proxy must stop reading from the backend instead of buffering, and
    finish the response when the client resumes."""
    s, p = behind_proxy(procs)
    size = BIG
    rss0 = proc_status_kib(p.pid, "VmRSS")
    with socket.socket() as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.settimeout(30)
        c.connect((LOOPBACK, p.port))
        c.sendall(f"GET /stall?size={size} HTTP/1.1\r\nHost: files\r\n\r\n"
                  .encode())
        # wait until the pipe is full: the backend-side byte counter stops
        # moving (well short of the full size)

        def rx():
            return proxy_stats(p)["cluster.files.upstream_cx_rx_bytes_total"]
        last = [-1]

        def settled():
            v = rx()
            done = v == last[0] and v > 0
            last[0] = v
            return done
        # polled 0.2 s apart: "stopped" = no progress between two looks
        wait_for(lambda: settled() or time.sleep(0.2), 15,
                 "the proxy to stop reading from the backend")
        stalled_at = rx()
        # socket buffers hold a few MB (kernel autotuning); the rest must
        # wait in the backend
        assert stalled_at < 32 * MB, \
            f"the proxy read {stalled_at} bytes for a stalled client"
        grew = proc_status_kib(p.pid, "VmRSS") - rss0
        assert grew < RSS_GROWTH_LIMIT_KIB, f"proxy RSS grew {grew} KiB"
        # resume: everything arrives, intact
        check = PatternCheck()
        r = read_response(SockReader(c), body_sink=check)
        assert r.status == 200 and check.n == size and check.ok


def test_slow_upload_trickle(procs):
    s, p = behind_proxy(procs)
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"POST /trickle HTTP/1.1\r\nHost: files\r\n"
                  b"Content-Length: 2000\r\n\r\n")
        for _ in range(20):
            c.sendall(b"t" * 100)
            time.sleep(0.03)
        r = read_response(rd)
        assert r.status == 200 and r.json()["body_bytes"] == 2000
        # chunked, one byte of framing at a time
        c.sendall(b"POST /trickle2 HTTP/1.1\r\nHost: files\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        body = b"".join(b"%x\r\n%s\r\n" % (10, b"c" * 10) for _ in range(5))
        for i in range(0, len(body), 7):
            c.sendall(body[i:i + 7])
            time.sleep(0.005)
        c.sendall(b"0\r\n\r\n")
        r = read_response(rd)
        assert r.status == 200 and r.json()["body_bytes"] == 50


def test_head_split_across_many_writes(procs):
    s, p = behind_proxy(procs)
    data = (b"GET /split?x=1 HTTP/1.1\r\nHost: files\r\nX-Long: " +
            b"v" * 3000 + b"\r\n\r\n")
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), 97):
            c.sendall(data[i:i + 97])
        r = read_response(SockReader(c))
    assert r.status == 200 and r.json()["path"] == "/split"
    assert r.json()["headers"]["x-long"] == "v" * 3000


def test_backend_that_stops_reading_stalls_the_upload(procs):
    """Upload backpressure: a backend that accepts but never reads. The
    client's writes must block (the proxy stops reading from it) rather
    than the proxy buffering the body."""
    lsock = socket.socket()
    lsock.bind((LOOPBACK, 0))
    lsock.listen(8)
    held = []
    threading.Thread(target=lambda: held.append(lsock.accept()),
                     daemon=True).start()
    p = start_proxy(procs, proxy_bootstrap({"sink": [lsock.getsockname()[1]]}))
    rss0 = proc_status_kib(p.pid, "VmRSS")
    sent = 0
    with socket.socket() as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        c.settimeout(10)
        c.connect((LOOPBACK, p.port))
        c.sendall(f"POST /sink HTTP/1.1\r\nHost: s\r\nContent-Length: {BIG}"
                  f"\r\n\r\n".encode())
        c.settimeout(1.0)
        block = b"u" * (256 * 1024)
        try:
            while sent < BIG:
                sent += c.send(block)
        except socket.timeout:
            pass  # a write blocked for a second: backpressure reached us
        assert sent < 32 * MB, f"the proxy took {sent} bytes of the upload"
        grew = proc_status_kib(p.pid, "VmRSS") - rss0
        assert grew < RSS_GROWTH_LIMIT_KIB, f"proxy RSS grew {grew} KiB"
        wait_for(lambda: held, 5, "the backend connection")
        # the backend gives up: the client gets an answer or a close, and
        # the proxy stays healthy
        held[0][0].close()
        c.settimeout(10)
        try:
            rest = c.recv(65536)
        except ConnectionResetError:
            rest = b""
        assert rest == b"" or rest.startswith(b"HTTP/1.1 5")
    lsock.close()
    assert http_request(p.port, "/").status == 503  # backend now gone


def test_close_delimited_upstream_body_is_rechunked(procs, raw_backend):
    """An HTTP/1.0-style upstream ends its body by closing: a 1.1 client
    gets it chunked (so its end is explicit) and keeps its connection."""
    def old_server(b, c, req):
        c.sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for i in range(5):
            c.sock.sendall(b"line %d\n" % i)
        return False  # end of body = close
    b = raw_backend(old_server)
    p = start_proxy(procs, proxy_bootstrap({"old": [b.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        r = read_response(rd)
        assert r.status == 200
        assert r.header("transfer-encoding") == "chunked"
        assert r.body == b"".join(b"line %d\n" % i for i in range(5))
        c.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(rd).status == 200
    # an HTTP/1.0 client gets the body delimited by close, as it was
    with socket.create_connection((LOOPBACK, p.port), timeout=3) as c:
        c.sendall(b"GET /c HTTP/1.0\r\nHost: x\r\n\r\n")
        data = SockReader(c).read_to_eof()
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower()
        assert body == b"".join(b"line %d\n" % i for i in range(5))


def test_upstream_interim_100_is_not_relayed(procs, raw_backend):
    """The proxy answers Expect itself; the backend's own 100 Continue
    must not reach the client as a second interim response."""
    def with_interim(b, c, req):
        c.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"
                       b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n"
                       b"done")
        return True
    b = raw_backend(with_interim)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert read_response(rd).status == 100
        c.sendall(b"data")
        r = read_response(rd)
        assert (r.status, r.body) == (201, b"done")
        c.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        r = read_response(rd)  # in sync: no stray interim response first
        assert (r.status, r.body) == (201, b"done")
    assert b.requests[0].body == b"data"
    assert b.requests[0].header("expect") is None


def test_early_error_reply_survives_unread_upload(procs):
    """A request refused before its body is read (no route): the client,
    still uploading, must receive the whole 404 (lingering close), not a
    reset that destroys it."""
    s = start_sample(procs)
    vh = [{"name": "v", "domains": ["*"],
           "routes": [{"match": {"prefix": "/api"},
                       "route": {"cluster": "app"}}]}]
    p = start_proxy(procs, proxy_bootstrap({"app": [s.port]},
                                           virtual_hosts=vh))
    size = 8 * MB
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(f"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: {size}"
                  f"\r\n\r\n".encode())

        def upload():
            try:
                for chunk in body_chunks(size, 64 * 1024):
                    c.sendall(chunk)
            except OSError:
                pass  # the proxy may stop reading: fine
        t = threading.Thread(target=upload, daemon=True)
        t.start()
        rd = SockReader(c)
        r = read_response(rd)
        assert r.status == 404
        assert r.header("connection") == "close"
        assert "/nope" in r.header("x-kite-error")
        c.shutdown(socket.SHUT_RDWR)
        t.join(10)


def test_bodiless_statuses_keep_framing(procs, raw_backend):
    """204 and 304 (even with a Content-Length describing the resource)
    have no body: the proxy must not wait for one or pass one on."""
    answers = {
        "/204": b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
        "/304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n"
                b"ETag: \"v1\"\r\n\r\n",
        "/200": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    }

    def answer(b, c, req):
        c.sock.sendall(answers[req.request_line.split(" ")[1]])
        return True
    b = raw_backend(answer)
    p = start_proxy(procs, proxy_bootstrap({"raw": [b.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        rd = SockReader(c)
        c.sendall(b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /304 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /200 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = read_response(rd)
        assert r.status == 204 and r.header("content-length") is None
        assert r.header("transfer-encoding") is None
        r = read_response(rd)
        assert r.status == 304 and r.header("content-length") == "1234"
        r = read_response(rd)
        assert (r.status, r.body) == (200, b"ok")


def test_backend_answers_before_reading_the_upload(procs):
    """A backend may refuse an upload after its head (413) and close
    without reading the body: the client gets that answer, not a 503."""
    lsock = socket.socket()
    lsock.bind((LOOPBACK, 0))
    lsock.listen(8)

    def serve():
        conn, _ = lsock.accept()
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n"
                     b"Connection: close\r\n\r\ntoo big!\n")
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    p = start_proxy(procs, proxy_bootstrap({"strict": [lsock.getsockname()[1]]}))
    size = 16 * MB
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as c:
        c.sendall(f"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {size}"
                  f"\r\n\r\n".encode())

        def upload():
            try:
                for chunk in body_chunks(size, 64 * 1024):
                    c.sendall(chunk)
            except OSError:
                pass
        up = threading.Thread(target=upload, daemon=True)
        up.start()
        r = read_response(SockReader(c))
        assert (r.status, r.body) == (413, b"too big!\n"), \
            (r.status, r.header("x-kite-error"))
        assert r.header("connection") == "close"
        c.shutdown(socket.SHUT_RDWR)
        up.join(10)
    t.join(5)
    lsock.close()


def test_deep_pipelining(procs):
    s, p = behind_proxy(procs)
    n = 200
    data = b"".join(b"GET /deep/%d HTTP/1.1\r\nHost: files\r\n\r\n" % i
                    for i in range(n))
    with socket.create_connection((LOOPBACK, p.port), timeout=20) as c:
        c.sendall(data)
        rd = SockReader(c)
        paths = [read_response(rd).json()["path"] for _ in range(n)]
    assert paths == [f"/deep/{i}" for i in range(n)]


def test_many_concurrent_clients(procs):
    s = start_sample(procs, app="files")
    p = start_proxy(procs, proxy_bootstrap({"files": [s.port]}),
                    concurrency=2)
    errors, done = [], []

    def client(i):
        try:
            conn = http.client.HTTPConnection(LOOPBACK, p.port, timeout=20)
            for j in range(5):
                conn.request("POST", f"/c{i}/{j}?size=10000", body=b"b" * 999)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or len(body) != 10000:
                    errors.append((i, j, r.status, len(body)))
            conn.close()
            done.append(i)
        except Exception as e:  # reported below
            errors.append((i, repr(e)))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(done) == 100
    st = proxy_stats(p)
    assert st["cluster.files.upstream_rq_total"] == 500
    assert st["http.ingress_http.downstream_rq_2xx"] == 500
