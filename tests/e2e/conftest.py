"""Shared fixtures and helpers for Kite's end-to-end tests.

Everything here is general on purpose: the sample's tests and the proxy's
tests both use it.

    free_port()                 a free TCP port on 127.0.0.1
    wait_port(host, port, ...)  wait (with a deadline) until it accepts
    bin_path(name)              build/bin/<name>, or $KITE_BIN_DIR/<name>
    procs (fixture)             start processes, output captured to a file,
                                stopped and reaped at teardown; a process
                                that dies badly (sanitizer report, crash,
                                non-zero exit on SIGTERM) fails the test
    start_sample(procs, ...)    start a kite-sample and wait for it
    http_request(...)           one raw HTTP/1.1 exchange over a socket
    read_response(sock)         read one response (any framing)
    wait_for(cond, ...)         poll a condition with a deadline
    proc_status_kib(pid, f)     VmHWM / VmRSS of a process

kite-proxy:
    proxy_bootstrap(...)        an Envoy v3 bootstrap dict (one listener,
                                admin; proxy_cluster, proxy_route build parts)
    start_proxy(procs, b, ...)  write it with free ports, start, wait
    admin_request, proxy_stats  the admin API; /stats as a dict
    access_log_lines, wait_access_log   the stdout access log
    raw_backend (fixture)       scripted upstream that records its bytes
"""

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


def bin_dir() -> Path:
    env = os.environ.get("KITE_BIN_DIR")
    return Path(env) if env else REPO_ROOT / "build" / "bin"


def bin_path(name: str) -> Path:
    """Path of a Kite binary; fails the test with a hint when missing."""
    p = bin_dir() / name
    if not p.is_file():
        pytest.fail(f"{p} not found: build first (make build), or set "
                    f"KITE_BIN_DIR", pytrace=False)
    return p


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now (the kernel's pick for port 0).

    There is a small window before the caller binds it; tests accept that
    rather than sleeping and retrying."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0, proc=None) -> None:
    """Poll until host:port accepts a connection or the deadline passes.

    With `proc` (a Proc or Popen), give up early when it has exited."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        popen = getattr(proc, "popen", proc)
        if popen is not None and popen.poll() is not None:
            out = proc.output() if hasattr(proc, "output") else ""
            raise RuntimeError(
                f"process exited with {popen.returncode} before "
                f"{host}:{port} accepted connections\n{out[-4000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} not accepting after "
                               f"{timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class Proc:
    """A started process with its output in a log file."""

    def __init__(self, name, args, popen, log_path, check_exit):
        self.name = name
        self.args = args
        self.popen = popen
        self.log_path = log_path
        self.check_exit = check_exit
        self.port = None
        self.stopped = False  # stopped by the test itself

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal, wait, and SIGKILL after `timeout`; returns the exit code
        (negative signal number if killed by one)."""
        self.stopped = True
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def __repr__(self):
        return f"<Proc {self.name} pid={self.pid}>"


class Procs:
    """Processes started by one test; all stopped at teardown."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.items = []

    def start(self, args, *, name=None, env=None, port=None, host=LOOPBACK,
              timeout=10.0, check_exit=True, cwd=None) -> Proc:
        """Start args (list). env entries are added to os.environ; a value
        of None removes that variable. With `port`, wait until it accepts.
        check_exit: fail the test when the process does not exit 0 on
        SIGTERM at teardown (catches sanitizer reports and crashes)."""
        args = [str(a) for a in args]
        name = name or f"{Path(args[0]).name}-{len(self.items)}"
        full_env = dict(os.environ)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(args, stdout=log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=full_env,
                                     cwd=cwd)
        p = Proc(name, args, popen, log_path, check_exit)
        self.items.append(p)
        if port is not None:
            p.port = port
            wait_port(host, port, timeout=timeout, proc=p)
        return p

    def stop_all(self):
        problems = []
        for p in reversed(self.items):
            if p.stopped:
                continue  # the test stopped it and judged the exit
            was_alive = p.alive()
            rc = p.stop()
            if p.check_exit and (rc != 0 or not was_alive):
                why = (f"exited with {rc} on SIGTERM" if was_alive else
                       f"died during the test with {rc}")
                problems.append(f"{p.name} (pid {p.pid}) {why}; output "
                                f"tail:\n{p.output()[-3000:]}")
        self.items = []
        return problems


@pytest.fixture
def procs(tmp_path):
    ps = Procs(tmp_path)
    yield ps
    problems = ps.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def start_sample(procs: Procs, app="sample", version="v1", calls=(),
                 env=None, extra_args=(), name=None) -> Proc:
    """Start kite-sample on a free loopback port; returns the Proc with
    .port set. Proxy variables are cleared unless passed in `env`."""
    port = free_port()
    args = [bin_path("kite-sample"), "--listen", f"{LOOPBACK}:{port}",
            "--app", app, "--version", version, "--log-level", "warn"]
    for c in calls:
        args += ["--call", c]
    args += list(extra_args)
    e = {"http_proxy": None, "HTTP_PROXY": None, "no_proxy": None,
         "NO_PROXY": None, "CALLS": None, "APP": None, "VERSION": None}
    e.update(env or {})
    return procs.start(args, name=name or f"sample-{app}-{version}", env=e,
                       port=port)


# ---- raw HTTP/1.1 over sockets: exact control of bytes and framing -------

class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def json(self):
        import json
        return json.loads(self.body)


class SockReader:
    """Buffered reads from a socket that keep leftover bytes (pipelining)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_until(self, sep: bytes, limit=1 << 20) -> bytes:
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self) -> bytes:
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out, self.buf = self.buf, b""
        return out

    def at_eof(self, timeout=5.0) -> bool:
        """True when the peer closes (with nothing more) before timeout."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def read_response(reader: SockReader, head_request=False,
                  body_sink=None) -> Response:
    """Read one response. body_sink(chunk) receives the body instead of
    keeping it (for huge bodies); 1xx responses are returned as they are."""
    raw = reader.read_until(b"\r\n\r\n")
    lines = raw[:-4].decode("latin-1").split("\r\n")
    version, status, *reason = lines[0].split(" ", 2)
    status = int(status)
    headers = []
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        headers.append((k, v.strip()))
    resp = Response(status, reason[0] if reason else "", headers, b"", raw)
    if head_request or status < 200 or status in (204, 304):
        return resp
    parts = []
    sink = body_sink or parts.append
    te = (resp.header("transfer-encoding") or "").lower()
    cl = resp.header("content-length")
    if te == "chunked":
        while True:
            size = int(reader.read_until(b"\r\n")[:-2].split(b";")[0], 16)
            if size == 0:
                while reader.read_until(b"\r\n") != b"\r\n":
                    pass  # trailers
                break
            left = size
            while left:
                n = min(left, 1 << 20)
                sink(reader.read_exact(n))
                left -= n
            assert reader.read_exact(2) == b"\r\n"
    elif cl is not None:
        left = int(cl)
        while left:
            if not reader.buf:
                reader._fill()
            n = min(left, len(reader.buf))
            chunk, reader.buf = reader.buf[:n], reader.buf[n:]
            sink(chunk)
            left -= n
    else:
        sink(reader.read_to_eof())
    resp.body = b"".join(parts)
    return resp


def http_request(port, path="/", method="GET", headers=None, body=None,
                 host=LOOPBACK, timeout=30.0) -> Response:
    """One request on a new connection (Connection: close)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        hdrs = {"Host": f"{host}:{port}", "Connection": "close"}
        hdrs.update(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        s.sendall(head.encode("latin-1") + (body or b""))
        return read_response(SockReader(s), head_request=method == "HEAD")


# ---- generic waiting -------------------------------------------------------

def wait_for(cond, timeout: float = 10.0, what: str = "condition",
             interval: float = 0.01):
    """Poll cond() until it returns something truthy (returned) or the
    deadline passes (AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def proc_status_kib(pid: int, field: str = "VmHWM") -> int:
    """A memory figure (kB) from /proc/<pid>/status: VmHWM (peak RSS),
    VmRSS, ..."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


# ---- kite-proxy --------------------------------------------------------------

HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager")
ROUTER_TYPE = ("type.googleapis.com/envoy.extensions.filters.http.router.v3."
               "Router")
STDOUT_LOG_TYPE = ("type.googleapis.com/envoy.extensions.access_loggers."
                   "stream.v3.StdoutAccessLog")


def socket_address(port, host=LOOPBACK) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


def proxy_cluster(name, ports, lb_policy="ROUND_ROBIN", connect_timeout="1s",
                  host=LOOPBACK, **extra) -> dict:
    """A STATIC cluster with one endpoint per port (ints, or (host, port))."""
    eps = []
    for p in ports:
        h, port = p if isinstance(p, tuple) else (host, p)
        eps.append({"endpoint": {"address": socket_address(port, h)}})
    c = {"name": name, "type": "STATIC", "connect_timeout": connect_timeout,
         "lb_policy": lb_policy,
         "load_assignment": {"cluster_name": name,
                             "endpoints": [{"lb_endpoints": eps}]}}
    c.update(extra)
    return c


def proxy_route(cluster=None, prefix=None, path=None, sep_prefix=None,
                timeout=None, direct=None, name=None) -> dict:
    """One route: a match (prefix, path or path_separated_prefix; prefix
    "/" when none is given) and an action: a cluster (with an optional
    timeout) or direct=(status, body)."""
    if path is not None:
        match = {"path": path}
    elif sep_prefix is not None:
        match = {"path_separated_prefix": sep_prefix}
    else:
        match = {"prefix": prefix if prefix is not None else "/"}
    r = {"match": match}
    if name:
        r["name"] = name
    if direct is not None:
        status, body = direct
        r["direct_response"] = {"status": status}
        if body is not None:
            r["direct_response"]["body"] = {"inline_string": body}
    else:
        r["route"] = {"cluster": cluster}
        if timeout is not None:
            r["route"]["timeout"] = timeout
    return r


def proxy_bootstrap(clusters, virtual_hosts=None, route_timeout=None,
                    hcm=None, access_log=True, listener_port=None,
                    admin_port=None, stat_prefix="ingress_http",
                    listener_name="ingress") -> dict:
    """An Envoy v3 bootstrap: one HTTP listener and an admin address.

    clusters: {name: [port, ...]} (STATIC, ROUND_ROBIN) or a list of
      cluster dicts (see proxy_cluster).
    virtual_hosts: list of vhost dicts; default one "*" vhost sending "/"
      to the first cluster (with route_timeout if given).
    hcm: extra HttpConnectionManager fields (merged in).
    Ports left None are filled in by start_proxy."""
    if isinstance(clusters, dict):
        clusters = [proxy_cluster(n, ps) for n, ps in clusters.items()]
    if virtual_hosts is None:
        virtual_hosts = [{"name": "default", "domains": ["*"],
                          "routes": [proxy_route(clusters[0]["name"],
                                                 timeout=route_timeout)]}]
    h = {"stat_prefix": stat_prefix,
         "route_config": {"name": "local_route",
                          "virtual_hosts": virtual_hosts},
         "http_filters": [{"name": "envoy.filters.http.router",
                           "typed_config": {"@type": ROUTER_TYPE}}]}
    if access_log:
        h["access_log"] = [{"name": "envoy.access_loggers.stdout",
                            "typed_config": {"@type": STDOUT_LOG_TYPE}}]
    h.update(hcm or {})
    h["@type"] = HCM_TYPE
    return {
        "admin": {"address": socket_address(admin_port)},
        "static_resources": {
            "listeners": [{
                "name": listener_name,
                "address": socket_address(listener_port),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": h}]}]}],
            "clusters": clusters,
        },
    }


def start_proxy(procs: Procs, bootstrap, concurrency=1, extra_args=(),
                name="kite-proxy", log_level="info", drain_time_s=5,
                wait=True, check_exit=True) -> Proc:
    """Write `bootstrap` (a dict, see proxy_bootstrap, or YAML/JSON text)
    into the test's directory and start kite-proxy on it.

    In a dict, listener and admin addresses whose port_value is None get
    free loopback ports. Waits (unless wait=False) until the admin API
    says /ready (the listeners are then listening; they are not probed,
    so their stats count only the test's connections), or without an
    admin address until every listener accepts. Returns the Proc with .port (first
    listener), .ports (all listeners), .admin_port (or None), .config_path
    and .bootstrap."""
    import json as _json
    ports, admin_port = [], None
    if isinstance(bootstrap, dict):
        bootstrap = _json.loads(_json.dumps(bootstrap))  # private copy
        for lst in bootstrap.get("static_resources", {}).get("listeners",
                                                              []):
            sa = lst["address"]["socket_address"]
            if sa.get("port_value") is None:
                sa["port_value"] = free_port()
            ports.append(sa["port_value"])
        adm = bootstrap.get("admin", {}).get("address", {}).get(
            "socket_address")
        if adm is not None:
            if adm.get("port_value") is None:
                adm["port_value"] = free_port()
            admin_port = adm["port_value"]
        text = _json.dumps(bootstrap, indent=1)
        suffix = ".json"
    else:
        text = bootstrap
        suffix = ".yaml"
    n = sum(1 for p in procs.items if p.name.startswith(name))
    pname = name if n == 0 else f"{name}-{n}"
    cfg = procs.log_dir / f"{pname}{suffix}"
    cfg.write_text(text)
    args = [bin_path("kite-proxy"), "-c", cfg, "--concurrency", concurrency,
            "--log-level", log_level]
    if drain_time_s is not None:
        args += ["--drain-time-s", drain_time_s]
    args += list(extra_args)
    p = procs.start(args, name=pname, check_exit=check_exit)
    p.ports = ports
    p.port = ports[0] if ports else None
    p.admin_port = admin_port
    p.config_path = cfg
    p.bootstrap = bootstrap
    if wait and admin_port is not None:
        # Ready without touching the listeners (a probe connection would
        # show in their stats, maybe after the test's first look): /ready
        # says LIVE once every worker listens.
        wait_port(LOOPBACK, admin_port, proc=p)
        deadline = time.monotonic() + 10
        while True:
            try:
                if http_request(admin_port, "/ready", timeout=5).status \
                        == 200:
                    break
            except OSError:
                pass
            if p.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{pname} not ready (exit "
                                   f"{p.popen.poll()}):\n"
                                   f"{p.output()[-4000:]}")
            time.sleep(0.01)
    elif wait:
        for port in ports:
            wait_port(LOOPBACK, port, proc=p)
    return p


def admin_request(proxy: Proc, path: str, method="GET", **kw) -> Response:
    return http_request(proxy.admin_port, path, method=method, **kw)


def proxy_stats(proxy: Proc) -> dict:
    """The proxy's /stats as {name: int} (counters and gauges)."""
    r = admin_request(proxy, "/stats")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        k, sep, v = line.partition(": ")
        if sep and v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def access_log_lines(proc: Proc, needle: str = "") -> list:
    """Access-log lines (Envoy's default format: they start with
    '[<time>] "') in the process output that contain needle."""
    return [ln for ln in proc.output().splitlines()
            if ln.startswith("[") and '] "' in ln[:40] and needle in ln]


def wait_access_log(proc: Proc, needle: str, timeout: float = 5.0) -> str:
    """The first access-log line containing needle; the proxy flushes its
    log buffers every second, so this waits (with a deadline)."""
    return wait_for(lambda: (access_log_lines(proc, needle) or [None])[0],
                    timeout, f"an access log line with {needle!r} in "
                    f"{proc.name}'s output")


# ---- a scripted raw upstream -------------------------------------------------

class RawRequest:
    def __init__(self, raw, head, body):
        self.raw = raw      # exactly the bytes of this message
        self.head = head    # start line and fields, up to the empty line
        self.body = body    # payload with chunked framing removed

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    def header(self, name, default=None):
        name = name.lower().encode()
        for ln in self.head.split(b"\r\n")[1:]:
            k, _, v = ln.partition(b":")
            if k.lower() == name:
                return v.strip().decode("latin-1")
        return default


def parse_raw_request(buf: bytes):
    """(RawRequest, rest) when buf starts with a complete request (CRLF
    framing, Content-Length or chunked body), else (None, buf)."""
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        return None, buf
    head, pos = buf[:i], i + 4
    te = cl = None
    for ln in head.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        k = k.strip().lower()
        if k == b"transfer-encoding":
            te = v.strip().lower()
        elif k == b"content-length":
            cl = int(v.strip())
    body = b""
    if te == b"chunked":
        parts = []
        while True:
            j = buf.find(b"\r\n", pos)
            if j < 0:
                return None, buf
            size = int(buf[pos:j].split(b";")[0], 16)
            pos = j + 2
            if size == 0:
                while True:  # trailers, then the empty line
                    j = buf.find(b"\r\n", pos)
                    if j < 0:
                        return None, buf
                    line, pos = buf[pos:j], j + 2
                    if not line:
                        break
                break
            if len(buf) < pos + size + 2:
                return None, buf
            parts.append(buf[pos:pos + size])
            pos += size + 2
        body = b"".join(parts)
    elif cl:
        if len(buf) < pos + cl:
            return None, buf
        body = buf[pos:pos + cl]
        pos += cl
    return RawRequest(buf[:pos], head, body), buf[pos:]


class RawConn:
    def __init__(self, sock, index):
        self.sock = sock
        self.index = index
        self.data = bytearray()  # every byte received on this connection
        self.requests = []       # complete RawRequests, in order
        self.closed = threading.Event()


OK_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n"


class RawBackend:
    """An upstream on a free loopback port, one thread per connection,
    that records every byte received and answers each complete request
    with handler(backend, conn, request). The handler sends what it likes
    on conn.sock and returns False to close the connection; the default
    answers 200 "ok\\n" and keeps the connection open."""

    def __init__(self, handler=None, backlog=64):
        self.handler = handler or (lambda b, c, r: c.sock.sendall(
            OK_RESPONSE) or True)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOOPBACK, 0))
        self.lsock.listen(backlog)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.errors = []
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list:
        with self.lock:
            return [r for c in self.conns for r in c.requests]

    @property
    def received(self) -> bytes:
        with self.lock:
            return b"".join(bytes(c.data) for c in self.conns)

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                c = RawConn(s, len(self.conns))
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c: RawConn):
        buf = b""
        try:
            while True:
                data = c.sock.recv(1 << 16)
                if not data:
                    return
                with self.lock:
                    c.data += data
                buf += data
                while True:
                    req, buf = parse_raw_request(buf)
                    if req is None:
                        break
                    with self.lock:
                        c.requests.append(req)
                    if self.handler(self, c, req) is False:
                        return
        except OSError:
            pass
        except Exception as e:  # a handler bug must not pass silently
            self.errors.append(repr(e))
        finally:
            try:
                c.sock.close()
            except OSError:
                pass
            c.closed.set()

    def close(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def raw_backend():
    """Factory: raw_backend(handler=None) -> a started RawBackend; all are
    closed at teardown."""
    made = []

    def make(handler=None, **kw):
        b = RawBackend(handler, **kw)
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()
    errs = [e for b in made for e in b.errors]
    if errs:
        pytest.fail("raw backend handler errors: " + "; ".join(errs),
                    pytrace=False)


def blackhole_listener():
    """A loopback listener that never accepts, its backlog full: Linux
    drops further SYNs, so a connect to it hangs (a connect timeout with
    no network outside the machine)."""
    lsock = socket.socket()
    lsock.bind((LOOPBACK, 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        probe = socket.socket()
        probe.settimeout(0.2)
        try:
            probe.connect((LOOPBACK, port))
        except socket.timeout:
            probe.close()
            return lsock, fillers, port
        fillers.append(probe)
    raise RuntimeError("could not fill the listen backlog")
