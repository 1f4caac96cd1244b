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
"""

import os
import signal
import socket
import subprocess
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
