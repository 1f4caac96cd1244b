#!/usr/bin/python3
"""make bench: kite-proxy beside HAProxy, nginx and a direct connection.

One run, one backend (kite-sample on 127.0.0.1), one load generator per
measurement, every target measured the same way. See bench/README.md.
Only Debian's python3 standard library is used.
"""

import datetime
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"  # traffic stays on loopback
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = ("direct", "kite", "haproxy", "nginx")
PEERS = ("haproxy", "nginx")


def env_seconds(name, default):
    v = os.environ.get(name, str(default)).strip().lower()
    m = re.fullmatch(r"(\d+)(s?)", v)
    if not m or int(m.group(1)) <= 0:
        sys.exit(f"bench: {name}={v!r}: want whole seconds, e.g. 10 or 10s")
    return int(m.group(1))


def env_int(name, default):
    v = os.environ.get(name, str(default)).strip()
    if not v.isdigit() or int(v) <= 0:
        sys.exit(f"bench: {name}={v!r}: want a positive integer")
    return int(v)


class Config:
    def __init__(self):
        self.duration = env_seconds("BENCH_DURATION", 10)
        self.warmup = env_seconds("BENCH_WARMUP", 1)
        self.threads = env_int("BENCH_THREADS", 1)
        self.connections = env_int("BENCH_CONNECTIONS", 50)
        self.rate = env_int("BENCH_RATE", 2000)  # hey: total requests/s
        self.hey_conns = env_int("BENCH_HEY_CONNECTIONS", 10)
        self.path = os.environ.get("BENCH_PATH", "/")
        self.bin_dir = Path(os.environ.get("KITE_BIN_DIR",
                                           REPO / "build" / "bin"))
        self.out = Path(os.environ.get("BENCH_OUT",
                                       BENCH_DIR / "results-latest.md"))
        sel = os.environ.get("BENCH_TARGETS", ",".join(TARGETS))
        self.targets = [t.strip() for t in sel.split(",") if t.strip()]
        for t in self.targets:
            if t not in TARGETS:
                sys.exit(f"bench: BENCH_TARGETS: unknown target {t!r} "
                         f"(known: {', '.join(TARGETS)})")
        if self.rate < self.hey_conns:
            sys.exit("bench: BENCH_RATE must be >= BENCH_HEY_CONNECTIONS")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---- processes ----------------------------------------------------------

class Started:
    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.log_path = log_path

    def pids(self):
        """The process and its children (nginx: master and worker)."""
        root = self.popen.pid
        out = [root]
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == root:
                out.append(int(d))
        return out

    def tail(self, n=2000):
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class ProcessSet:
    """Everything the benchmark starts; stop_all() is called from a
    finally block and from signal handlers' unwinding, so nothing outlives
    the run. Each process leads its own process group, which lets one
    signal reach nginx's workers too."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.items = []

    def start(self, name, args):
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "wb") as lf:
            p = subprocess.Popen([str(a) for a in args], stdout=lf,
                                 stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        s = Started(name, p, log_path)
        self.items.append(s)
        return s

    def stop(self, s, timeout=5.0):
        if s.popen.poll() is None:
            try:
                os.killpg(s.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                s.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (a worker that outlived its
        # master) goes too.
        try:
            os.killpg(s.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if s.popen.poll() is None:
            s.popen.wait()
        if s in self.items:
            self.items.remove(s)

    def stop_all(self):
        for s in reversed(list(self.items)):
            self.stop(s)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(s, port, timeout=10.0):
    """Wait until port accepts; None when ready, else why not."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if s.popen.poll() is not None:
            return f"exited with status {s.popen.returncode}"
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return None
        except OSError:
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    return f"not accepting on port {port} after {timeout:.0f}s"


def check_route(port, path):
    """One request through the target: must reach the sample backend."""
    try:
        with socket.create_connection((HOST, port), timeout=5) as c:
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
                      f"Connection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return f"request failed: {e}"
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    if not re.match(r"HTTP/1\.[01] 200\b", status):
        return f"answered {status!r}"
    if b'"workload":"bench-v1"' not in body:
        return "answer did not come from the backend"
    return None


# ---- /proc readings -----------------------------------------------------

def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def mem_kib(pids, field):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


class RssSampler(threading.Thread):
    """Peak of the summed VmRSS while load runs (VmHWM is per process and
    would count nginx's master and worker peaks as if simultaneous)."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = mem_kib(pids, "VmRSS")
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.05):
            self.peak = max(self.peak, mem_kib(self.pids, "VmRSS"))

    def stop(self):
        self.done.set()
        self.join()
        self.peak = max(self.peak, mem_kib(self.pids, "VmRSS"))
        return self.peak


# ---- load generators ----------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(cfg, port, duration):
    url = f"http://{HOST}:{port}{cfg.path}"
    args = ["wrk", f"-t{cfg.threads}", f"-c{cfg.connections}",
            f"-d{duration}s", "--latency", url]
    p = subprocess.run(args, capture_output=True, text=True,
                       timeout=duration + 60)
    out = p.stdout
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr}{out}")
    res = {"raw": out}
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            res[f"p{pct}"] = float(m.group(1)) * _UNITS[m.group(2)]
    errs = []
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errs.append(f"{m.group(1)} non-2xx")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m and any(int(x) for x in m.groups()):
        errs.append("socket errors: connect {}, read {}, write {}, "
                    "timeout {}".format(*m.groups()))
    res["errors"] = errs
    return res


def run_hey(cfg, port):
    url = f"http://{HOST}:{port}{cfg.path}"
    per_worker = max(1, cfg.rate // cfg.hey_conns)
    args = ["hey", "-z", f"{cfg.duration}s", "-c", str(cfg.hey_conns),
            "-q", str(per_worker), url]
    p = subprocess.run(args, capture_output=True, text=True,
                       timeout=cfg.duration + 60)
    out = p.stdout
    if p.returncode != 0:
        raise RuntimeError(f"hey failed ({p.returncode}): {p.stderr}{out}")
    res = {"raw": out, "rate": per_worker * cfg.hey_conns}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%+ in ([\d.]+) secs", out, re.M)
        if m:
            res[f"p{pct}"] = float(m.group(1)) * 1e3
    codes = dict((int(a), int(b)) for a, b in
                 re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    bad = sum(n for c, n in codes.items() if c != 200)
    errs = []
    if bad:
        errs.append(f"hey: {bad} non-200")
    if "Error distribution" in out:
        errs.append("hey: transport errors")
    res["errors"] = errs
    return res


# ---- targets --------------------------------------------------------------

def render(template, out_path, values):
    text = (BENCH_DIR / template).read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise RuntimeError(f"{template}: unreplaced placeholders {left}")
    out_path.write_text(text)
    return out_path


def start_target(name, cfg, procs, tmp, backend_port):
    """Start one proxy in front of the backend. Returns (Started, port) or
    raises Skip with the reason."""
    port = free_port()
    if name == "kite":
        exe = cfg.bin_dir / "kite-proxy"
        if not os.access(exe, os.X_OK):
            raise Skip(f"{exe} not built")
        conf = render("kite-proxy.yaml", tmp / "kite-proxy.yaml", {
            "ADMIN_PORT": free_port(), "LISTEN_PORT": port,
            "BACKEND_PORT": backend_port})
        s = procs.start("kite-proxy", [exe, "-c", conf, "--concurrency", "1",
                                       "--log-level", "warn"])
    elif name == "haproxy":
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.access(exe, os.X_OK):
            raise Skip("haproxy not installed (make deps)")
        conf = render("haproxy.cfg", tmp / "haproxy.cfg", {
            "LISTEN_PORT": port, "BACKEND_PORT": backend_port})
        s = procs.start("haproxy", [exe, "-db", "-f", conf])
    elif name == "nginx":
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(exe, os.X_OK):
            raise Skip("nginx not installed (make deps)")
        prefix = tmp / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = render("nginx.conf", prefix / "nginx.conf", {
            "PREFIX": prefix, "LISTEN_PORT": port,
            "BACKEND_PORT": backend_port})
        s = procs.start("nginx", [exe, "-p", prefix, "-c", conf,
                                  "-e", prefix / "error.log"])
    else:
        raise ValueError(name)
    why = wait_ready(s, port)
    if why is None:
        why = check_route(port, cfg.path)
    if why is not None:
        tail = s.tail(600).strip()
        procs.stop(s)
        raise Skip(f"{name} failed to start: {why}"
                   + (f" (output: {tail})" if tail else ""))
    return s, port


class Skip(Exception):
    pass


def measure(name, cfg, procs, tmp, backend, backend_port):
    row = {"target": name, "notes": []}
    if name == "direct":
        s, port = backend, backend_port
        row["notes"].append("CPU and memory are the backend's own")
    else:
        s, port = start_target(name, cfg, procs, tmp, backend_port)
    try:
        pids = s.pids()
        if cfg.warmup:
            run_wrk(cfg, port, cfg.warmup)
        row["rss_idle"] = mem_kib(pids, "VmRSS")
        sampler = RssSampler(pids)
        sampler.start()
        t0 = cpu_ticks(pids)
        try:
            w = run_wrk(cfg, port, cfg.duration)
        finally:
            ticks = cpu_ticks(pids) - t0
            row["rss_peak"] = sampler.stop()
        row["wrk"] = w
        row["cpu_us"] = (ticks * 1e6 / CLK_TCK / w["requests"]
                         if w["requests"] else None)
        row["cpu_util"] = ticks / CLK_TCK / cfg.duration
        row["hey"] = run_hey(cfg, port)
        row["notes"] += w["errors"] + row["hey"]["errors"]
        if s.popen.poll() is not None:
            row["notes"].append(f"exited with {s.popen.returncode} "
                                f"during the run")
    finally:
        if s is not backend:
            procs.stop(s)
    return row


# ---- report ---------------------------------------------------------------

def fmt(v, spec, unit=""):
    return "–" if v is None else f"{v:{spec}}{unit}"


def cell(text):
    """One Markdown table cell: no line breaks, no column separators."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(rows, cfg):
    head = ("| target | wrk req/s | wrk p50 ms | wrk p99 ms | hey p50 ms "
            "| hey p90 ms | hey p99 ms | CPU µs/req | CPU util "
            "| RSS idle MiB | RSS peak MiB | notes |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        if "skip" in r:
            lines.append(f"| {r['target']} | skipped |  |  |  |  |  |  |  "
                         f"|  |  | {cell(r['skip'])} |")
            continue
        w, h = r["wrk"], r["hey"]
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |"
            .format(r["target"], fmt(w["rps"], ",.0f"),
                    fmt(w.get("p50"), ".3f"), fmt(w.get("p99"), ".3f"),
                    fmt(h.get("p50"), ".1f"), fmt(h.get("p90"), ".1f"),
                    fmt(h.get("p99"), ".1f"), fmt(r["cpu_us"], ".1f"),
                    fmt(r["cpu_util"] * 100, ".0f", "%"),
                    fmt(r["rss_idle"] / 1024, ".1f"),
                    fmt(r["rss_peak"] / 1024, ".1f"),
                    cell("; ".join(r["notes"]))))
    return "\n".join(lines)


def ratios(rows):
    by = {r["target"]: r for r in rows if "skip" not in r}
    kite = by.get("kite")
    peers = [by[p] for p in PEERS if p in by]
    out = []
    if not kite:
        out.append("kite/best-peer ratios: no kite row in this run.")
        return out
    if not peers:
        out.append("kite/best-peer ratios: no peer ran in this run.")
        return out
    best_rps = max(peers, key=lambda r: r["wrk"]["rps"])
    if best_rps["wrk"]["rps"]:
        out.append(f"- throughput kite/best peer ({best_rps['target']}): "
                   f"**{kite['wrk']['rps'] / best_rps['wrk']['rps']:.2f}** "
                   f"(higher is better)")
    cpu_peers = [r for r in peers if r["cpu_us"]]
    if cpu_peers and kite["cpu_us"]:
        best_cpu = min(cpu_peers, key=lambda r: r["cpu_us"])
        out.append(f"- CPU per request kite/best peer ({best_cpu['target']}): "
                   f"**{kite['cpu_us'] / best_cpu['cpu_us']:.2f}** "
                   f"(lower is better)")
    p99_peers = [r for r in peers if r["hey"].get("p99")]
    if p99_peers and kite["hey"].get("p99"):
        best = min(p99_peers, key=lambda r: r["hey"]["p99"])
        out.append(f"- hey p99 latency kite/best peer ({best['target']}): "
                   f"**{kite['hey']['p99'] / best['hey']['p99']:.2f}** "
                   f"(lower is better)")
    best_mem = min(peers, key=lambda r: r["rss_peak"])
    if best_mem["rss_peak"]:
        out.append(f"- peak RSS kite/best peer ({best_mem['target']}): "
                   f"**{kite['rss_peak'] / best_mem['rss_peak']:.2f}** "
                   f"(lower is better)")
    return out


def tool_version(args):
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=10)
        text = (p.stdout + p.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def report(rows, cfg):
    now = datetime.datetime.now(datetime.timezone.utc)
    parts = [
        f"# kite-proxy benchmark — {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {os.cpu_count()} CPU ({cpu_model()}), Linux "
        f"{platform.release()}. Backend: kite-sample on {HOST}, "
        f"GET {cfg.path}.",
        f"wrk: `-t{cfg.threads} -c{cfg.connections} -d{cfg.duration}s` "
        f"after a {cfg.warmup}s warm-up. hey: {cfg.hey_conns} connections "
        f"at {max(1, cfg.rate // cfg.hey_conns) * cfg.hey_conns} req/s "
        f"total for {cfg.duration}s (latency resolution 0.1 ms).",
        "CPU µs/req: utime+stime of the proxy's processes (nginx: master + "
        "worker) over the wrk run, divided by wrk's request count. CPU "
        "util: the same time over the run's wall time. RSS: summed VmRSS, "
        "idle after warm-up and peak sampled every 50 ms under wrk load.",
        "",
        table(rows, cfg),
        "",
        *ratios(rows),
        "",
        "Versions: " + "; ".join([
            tool_version(["haproxy", "-v"]),
            tool_version(["nginx", "-v"]),
            tool_version(["wrk", "-v"]),
        ]),
        "",
        "Absolute figures on a small shared machine are noise; compare the "
        "rows of one run (the ratios), not runs with each other.",
    ]
    return "\n".join(parts) + "\n"


# ---- main -----------------------------------------------------------------

def _on_signal(signum, frame):
    # Unwind through the finally blocks, which stop every process.
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    cfg = Config()
    for tool in ("wrk", "hey"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (make deps installs it)")
    sample = cfg.bin_dir / "kite-sample"
    if not os.access(sample, os.X_OK):
        sys.exit(f"bench: {sample} not found: run `make build` first")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    tmp = Path(tempfile.mkdtemp(prefix="kite-bench-"))
    procs = ProcessSet(tmp)
    rows = []
    ok = False
    try:
        bport = free_port()
        backend = procs.start("backend", [
            sample, "--listen", f"{HOST}:{bport}", "--app", "bench",
            "--version", "v1", "--log-level", "warn"])
        why = wait_ready(backend, bport) or check_route(bport, cfg.path)
        if why:
            raise RuntimeError(f"backend kite-sample: {why}\n"
                               f"{backend.tail()}")
        log(f"backend kite-sample on {HOST}:{bport}; {cfg.duration}s per "
            f"measurement")
        for name in cfg.targets:
            log(f"{name}: measuring")
            try:
                row = measure(name, cfg, procs, tmp, backend, bport)
                log(f"{name}: {row['wrk']['rps']:,.0f} req/s, "
                    f"{fmt(row['cpu_us'], '.1f')} µs CPU/req")
            except Skip as e:
                log(f"{name}: skipped: {e}")
                row = {"target": name, "skip": str(e)}
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                if name == "direct":
                    raise
                # One proxy misbehaving must not cost the other rows.
                log(f"{name}: failed: {e}")
                row = {"target": name, "skip": f"failed: {e}"}
            rows.append(row)
            if backend.popen.poll() is not None:
                raise RuntimeError(f"backend exited with "
                                   f"{backend.popen.returncode}:\n"
                                   f"{backend.tail()}")
        text = report(rows, cfg)
        print(text)
        cfg.out.write_text(text)
        log(f"wrote {cfg.out}")
        ok = True
    finally:
        procs.stop_all()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); all processes stopped")
        sys.exit(130)
    except RuntimeError as e:
        log(f"failed: {e}")
        sys.exit(1)
