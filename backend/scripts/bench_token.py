#!/usr/bin/env python3
"""Benchmark the token endpoints on the production-like stack, side by side with node-oidc-provider.

What it does (loopback only, everything it creates is removed again, even on failure):

1. creates a throwaway PostgreSQL database (127.0.0.1:5432, user postgres) and uses Redis db 14
   under a key prefix of its own;
2. prepares a signing-key directory (`flask keys ensure`), runs `flask db upgrade`, registers a
   machine client and a first-party web client (`flask clients create`), a user
   (`flask users create`) and one browser session per load connection (the sessions service);
3. starts the production server as serve.py runs it: granian, `--server gunicorn`, or both
   (`--server granian,gunicorn`, one after the other on the same database), with GATEHOUSE_ENV=production,
   pinned to CPU 0 (`--cpus 1`) or CPUs 0-1 (`--cpus 2`) with taskset;
   and measures in-process on the same CPU (scripts/bench_app.py) the framework overhead per request
   (GET /oauth2/jwks through the app against a bare Flask app serving the same serialised JSON) and what one
   code + PKCE exchange asks of PostgreSQL and Redis (statements, transactions, pings, commands);
4. drives load for each scenario at a fixed concurrency and duration, `--runs` times after a
   warm-up, and reports the median:
     token       client-credentials issuance        (wrk, ../shared/peers/bench/loadtest.sh)
     introspect  introspection of a JWT access token (same)
     jwks        GET jwks_uri                         (same)
     code        authorize with an existing session -> token, with PKCE (the Python driver below;
                 one exchange = both requests; latency is per exchange)
5. with `--targets gatehouse,peer` (the default), starts the oidc-provider peer too (its own start.sh,
   PORT=3100, pinned to the same CPUs), and measures both in rounds that alternate
   between them, so both are measured in the same sitting; then stops it.

The peer and the wrk harness (loadtest.sh) live in the peers folder: `--peers-dir`, by default
../shared/peers beside the repository. Without the peer, Gatehouse is measured alone; without
loadtest.sh, only the code-flow scenario (this script's own driver) runs.

Prints a table (scenario, req/s, p50, p99, errors), each Gatehouse server's ratio to the peer, and the
framework overhead, and writes JSON to backend/scripts/out/.

Run from backend/ with the project's venv, e.g.:

    PYTHONPATH=$PWD ../.venv/bin/python scripts/bench_token.py --cpus 1 --server granian,gunicorn

--workers and --threads override serve.py's defaults (GATEHOUSE_WORKERS, GATEHOUSE_THREADS);
--worker-class sync|gthread chooses gunicorn's worker (GATEHOUSE_WORKER_CLASS). --hold keeps the server running after setup (for py-spy) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import http.cookiejar
import json
import multiprocessing as mp
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import serve  # backend/serve.py: PYTHONPATH=backend, as above

HOST = "127.0.0.1"  # every server this script starts or loads listens here, and only here
BACKEND = Path(__file__).resolve().parent.parent
OUT_DIR = BACKEND / "scripts" / "out"
BENCH_APP = BACKEND / "scripts" / "bench_app.py"
VENV_BIN = Path(sys.executable).parent
# The team's shared folder sits beside the repository (../shared).
DEFAULT_PEERS_DIR = BACKEND.parent.parent / "shared" / "peers"
PEER_PORT = 3100
REDIRECT_URI = "http://127.0.0.1:8765/cb"  # never contacted: the driver reads the Location header
WEB_SCOPES = "openid profile email offline_access api:read"  # registered (same as the peer's bench-web)
CODE_SCOPE = "openid profile email api:read"  # requested: access token + ID token, no refresh token
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/14"
SCENARIOS = ("token", "introspect", "jwks", "code")
WRK_SCENARIOS = ("token", "introspect", "jwks")
SERVERS = ("granian", "gunicorn")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loopback(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing non-loopback URL {url}")
    return url


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, text=True, stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}:\n{proc.stdout or ''}{proc.stderr or ''}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_ticks(root: int) -> int:
    """utime+stime of a process and all its descendants, in clock ticks."""
    kids: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        f = s[s.rfind(")") + 2:].split()
        kids.setdefault(int(f[1]), []).append(int(d))
        ticks[int(d)] = int(f[11]) + int(f[12])
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo += kids.get(p, [])
    return total


def all_cpu_ticks() -> int:
    with open("/proc/stat") as f:
        v = f.readline().split()[1:]
    return sum(int(v[i]) for i in (0, 1, 2, 5, 6, 7))


def pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


# --- the code + PKCE load driver ---------------------------------------------------------

class Browser:
    """One keep-alive connection with its own cookies (path=/ cookies only)."""

    def __init__(self, base: str, cookies: dict[str, str]) -> None:
        parts = urllib.parse.urlsplit(loopback(base))
        self.host, self.port = parts.hostname, parts.port or 80
        self.cookies = dict(cookies)
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        h = {"Accept": "application/json", **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        for raw in resp.headers.get_all("Set-Cookie") or []:
            first, *attrs = [p.strip() for p in raw.split(";")]
            name, _, value = first.partition("=")
            attrs_l = {a.split("=", 1)[0].lower(): (a.split("=", 1) + [""])[1] for a in attrs}
            if attrs_l.get("path", "/") != "/":
                continue
            if not value or "1970" in attrs_l.get("expires", "") or attrs_l.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return resp.status, resp.headers, data


def one_exchange(b: Browser, cfg: dict[str, Any]) -> tuple[float, float]:
    """authorize (existing session) -> token with PKCE; returns (authorize ms, token ms)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    q = urllib.parse.urlencode({
        "client_id": cfg["client_id"], "response_type": "code", "redirect_uri": REDIRECT_URI,
        "scope": cfg["scope"], "state": state, "nonce": nonce, "code_challenge": challenge,
        "code_challenge_method": "S256"})
    t0 = time.perf_counter()
    st, hd, body = b.request("GET", f"{cfg['authorize_path']}?{q}")
    t1 = time.perf_counter()
    loc = hd.get("Location", "")
    if st not in (302, 303) or not loc.startswith(REDIRECT_URI):
        raise RuntimeError(f"authorize -> {st} {loc[:80]!r} {body[:100]!r}")
    p = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
    if "code" not in p or p.get("state", [""])[0] != state:
        raise RuntimeError(f"authorize redirect without code/state: {loc[:120]!r}")
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": p["code"][0],
                                   "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    st, hd, body = b.request("POST", cfg["token_path"], form, {"Authorization": cfg["basic"]})
    t2 = time.perf_counter()
    if st != 200 or b'"access_token"' not in body or b'"id_token"' not in body:
        raise RuntimeError(f"token -> {st} {body[:120]!r}")
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def _driver_process(cfg: dict[str, Any], cookie_sets: list[dict[str, str]], start_at: float, measure_from: float,
                    end_at: float, cpus: list[int] | None, q: mp.Queue) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    lock = threading.Lock()
    out = {"lat": [], "auth": [], "tok": [], "errors": 0, "first_error": ""}

    def worker(cookies: dict[str, str]) -> None:
        b = Browser(cfg["base"], cookies)
        lat, auth, tok, errors, first = [], [], [], 0, ""
        while time.time() < start_at:
            time.sleep(0.005)
        while True:
            t_start = time.time()
            if t_start >= end_at:
                break
            try:
                a, t = one_exchange(b, cfg)
                ok = True
            except Exception as err:  # counted, reported once
                ok, errors = False, errors + (1 if t_start >= measure_from else 0)
                first = first or f"{type(err).__name__}: {err}"[:200]
                time.sleep(0.01)
            t_end = time.time()
            if ok and t_start >= measure_from and t_end <= end_at:
                lat.append(a + t)
                auth.append(a)
                tok.append(t)
        with lock:
            out["lat"] += lat
            out["auth"] += auth
            out["tok"] += tok
            out["errors"] += errors
            out["first_error"] = out["first_error"] or first

    threads = [threading.Thread(target=worker, args=(c,)) for c in cookie_sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.put(out)


def drive_code_flow(cfg: dict[str, Any], cookie_sets: list[dict[str, str]], *, warmup: float, duration: float,
                    processes: int, cpus: list[int] | None, server_pid: int) -> dict[str, Any]:
    """Run len(cookie_sets) concurrent exchange loops over `processes` processes; one measured window."""
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    start_at = time.time() + 1.0
    measure_from, end_at = start_at + warmup, start_at + warmup + duration
    chunks = [cookie_sets[i::processes] for i in range(processes)]
    procs = [ctx.Process(target=_driver_process, args=(cfg, c, start_at, measure_from, end_at, cpus, q))
             for c in chunks if c]
    for p in procs:
        p.start()
    while time.time() < measure_from:
        time.sleep(0.002)
    s0, a0, w0, t0 = cpu_ticks(server_pid), all_cpu_ticks(), sum(cpu_ticks(p.pid) for p in procs), time.time()
    while time.time() < end_at:
        time.sleep(0.002)
    s1, a1, w1, t1 = cpu_ticks(server_pid), all_cpu_ticks(), sum(cpu_ticks(p.pid) for p in procs), time.time()
    results = [q.get(timeout=duration + warmup + 60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    clk, wall = os.sysconf("SC_CLK_TCK"), t1 - t0
    lat = sorted(x for r in results for x in r["lat"])
    auth = sorted(x for r in results for x in r["auth"])
    tok = sorted(x for r in results for x in r["tok"])
    server, driver = (s1 - s0) / clk / wall, (w1 - w0) / clk / wall
    return {
        "rps": len(lat) / duration, "good_rps": len(lat) / duration,
        "p50_ms": pct(lat, 0.5), "p90_ms": pct(lat, 0.9), "p99_ms": pct(lat, 0.99), "max_ms": lat[-1] if lat else None,
        "authorize_p50_ms": pct(auth, 0.5), "token_p50_ms": pct(tok, 0.5),
        "authorize_p99_ms": pct(auth, 0.99), "token_p99_ms": pct(tok, 0.99),
        "errors": sum(r["errors"] for r in results),
        "first_bad": next((r["first_error"] for r in results if r["first_error"]), ""),
        "server_cpu_cores": server, "driver_cpu_cores": driver,
        "other_cpu_cores": max(0.0, (a1 - a0) / clk / wall - server - driver),
    }


# --- wrk scenarios through the shared loadtest.sh ----------------------------------------

def parse_loadtest_runs(out: Path, scenario: str) -> list[dict[str, Any]]:
    runs = []
    for f in sorted(out.glob(f"{scenario}.run*.log")):
        txt = f.read_text()
        m = re.search(r"^RESULT (\{.*\})$", txt, re.M)
        if not m:
            continue
        r = json.loads(m.group(1))
        s = re.search(r"^SERVERCPU (\d+) (\d+) ([\d.]+) ([\d.]+) (\S+)$", txt, re.M)
        w = re.search(r"^WRKCPU ([\d.]+) ([\d.]+)$", txt, re.M)
        a = re.search(r"^ALLCPU (\d+) (\d+)$", txt, re.M)
        wall = float(s.group(4)) - float(s.group(3))
        r["server_cpu_cores"] = int(s.group(1)) / int(s.group(2)) / wall if s.group(5) != "none" else None
        r["wrk_cpu_cores"] = (float(w.group(1)) + float(w.group(2))) / wall if w else None
        if a and r["server_cpu_cores"] is not None and r["wrk_cpu_cores"] is not None:
            r["other_cpu_cores"] = max(0.0, int(a.group(1)) / int(a.group(2)) / wall
                                       - r["server_cpu_cores"] - r["wrk_cpu_cores"])
        r["errors"] = r["bad_responses"] + r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
        runs.append(r)
    return runs


def run_loadtest(target: dict[str, Any], scenarios: list[str], a: argparse.Namespace, out: Path) -> dict[str, list]:
    cmd = ["bash", str(a.peers_dir / "bench" / "loadtest.sh"), "--client-id", target["cc_id"], "--client-secret", target["cc_secret"],
           "--scenarios", ",".join(scenarios), "-c", str(a.connections), "-t", "1", "-d", str(a.duration),
           "--runs", str(a.runs), "--warmup", str(a.warmup), "--server-pid", str(target["pid"]),
           "--max-req", str(a.max_req),
           "--label", target["name"], "--out", str(out)]
    if "issuer" in target:
        cmd += ["--issuer", target["issuer"]]
    else:
        cmd += ["--token-url", target["token_url"], "--jwks-url", target["jwks_url"],
                "--introspect-url", target["introspect_url"]]
    for u in (target.get("issuer"), target.get("token_url"), target.get("jwks_url"), target.get("introspect_url")):
        if u:
            loopback(u)
    if target.get("introspect_extra"):
        cmd += ["--introspect-extra", target["introspect_extra"]]
    if a.wrk_cpus:
        cmd += ["--wrk-cpus", a.wrk_cpus]
    proc = run(cmd, check=False)
    (out / "loadtest.stdout").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"loadtest.sh failed for {target['name']}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return {sc: parse_loadtest_runs(out, sc) for sc in scenarios}


# --- Gatehouse setup ---------------------------------------------------------------------

def flask(env: dict[str, str], *args: str) -> str:
    return run([str(VENV_BIN / "flask"), *args], env=env, cwd=BACKEND).stdout


def setup_gatehouse(stack: contextlib.ExitStack, a: argparse.Namespace, tmp: Path, out: Path) -> dict[str, Any]:
    """The database, keys, clients, user and browser sessions every Gatehouse server measured here shares;
    returns the environment the servers run in, and what the load needs."""
    run_id = f"{os.getpid()}_{secrets.token_hex(3)}"
    dbname = f"gatehouse_bench_{run_id}"
    prefix = f"gatehouse-bench-{run_id}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEHOUSE_", "GRANIAN_", "DATABASE_", "REDIS_"))}
    env.update(
        PYTHONPATH=str(BACKEND), FLASK_APP="app:create_app", GATEHOUSE_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48), ISSUER="https://bench.local",
        DATABASE_URL=f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{dbname}",
        REDIS_URL=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix, SIGNING_KEYS_DIR=str(tmp / "keys"),
        ENCRYPTION_KEYS=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(), PYTHONDONTWRITEBYTECODE="1",
        # The code-flow sessions are created at setup and must outlive long sittings (same work per request).
        SESSION_IDLE_TIMEOUT="28800",
        # Production requires an SMTP relay; no mail is sent while benchmarking.
        MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", MAIL_FROM="Gatehouse bench <bench@bench.local>",
    )
    # One worker per server CPU, as serve.py counts them inside the pinned server (not here, unpinned).
    for name, value in (("GATEHOUSE_WORKERS", a.workers or a.cpus), ("GATEHOUSE_THREADS", a.threads),
                        ("GATEHOUSE_WORKER_CLASS", a.worker_class)):
        if value is not None:
            env[name] = str(value)
    for extra in a.env or []:
        k, _, v = extra.partition("=")
        env[k] = v

    where = run([sys.executable, "-c", "import app; print(app.__file__)"], env=env, cwd=BACKEND).stdout.strip()
    if not where.startswith(str(BACKEND)):
        raise SystemExit(f"`import app` resolves to {where}, not under {BACKEND}; check PYTHONPATH")

    pg = ["-h", PG["host"], "-p", PG["port"], "-U", PG["user"]]
    run(["createdb", *pg, dbname])
    stack.callback(lambda: run(["dropdb", *pg, "--if-exists", "--force", dbname], check=False))
    stack.callback(log, f"dropping database {dbname}")
    stack.callback(_redis_cleanup, prefix)

    log(f"database {dbname}, redis db 14 prefix {prefix}, keys in {tmp / 'keys'}")
    flask(env, "keys", "ensure")
    flask(env, "db", "upgrade")
    cc = json.loads(flask(env, "clients", "create", "--name", "bench-cc", "--confidential",
                          "--grant-types", "client_credentials", "--scopes", "api:read"))
    web = json.loads(flask(env, "clients", "create", "--name", "bench-web", "--confidential", "--first-party",
                           "--grant-types", "authorization_code,refresh_token", "--redirect-uri", REDIRECT_URI,
                           "--scopes", WEB_SCOPES))
    email, password = "bench@example.test", "Bench-" + secrets.token_urlsafe(18)
    flask(env, "users", "create", "--email", email, "--password", password, "--name", "Bench User")
    tokens = json.loads(run([sys.executable, str(BENCH_APP), "sessions", email, str(a.connections)],
                            env=env, cwd=BACKEND).stdout.strip().splitlines()[-1])
    return {"env": env, "cc": cc, "web": web, "tokens": tokens}


def start_gatehouse(stack: contextlib.ExitStack, a: argparse.Namespace, prepared: dict[str, Any], server: str,
                    tmp: Path, out: Path) -> dict[str, Any]:
    """`python serve.py` with GATEHOUSE_SERVER=`server`, pinned to the server CPUs; the target it serves."""
    port = a.port or free_port()
    env = {**prepared["env"], "GATEHOUSE_SERVER": server, "GATEHOUSE_BIND": f"{HOST}:{port}"}
    name = "gatehouse" if server == "granian" else f"gatehouse-{server}"
    pin = ["taskset", "-c", a.server_cpus] if a.server_cpus else []
    log_path = tmp / f"{name}.log"
    logf = open(log_path, "w")
    stack.callback(_keep_log, log_path, out / f"{name}.log")  # after the server has stopped
    stack.callback(logf.close)
    # As the container starts it: serve.py finds the server beside this interpreter (not on PATH).
    cmd = [*pin, sys.executable, str(BACKEND / "serve.py")]
    proc = subprocess.Popen(cmd, cwd=BACKEND, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    stack.callback(_stop_group, proc, server)
    base = f"http://{HOST}:{port}"
    _wait_ready(proc, f"{base}/.well-known/openid-configuration", log_path)
    n_workers = len([p for p in _children(proc.pid)])
    log(f"{server} {proc.pid} on {base}, {n_workers} child processes, cpus {a.server_cpus or 'any'}")
    cc, web = prepared["cc"], prepared["web"]
    return {
        "name": name, "pid": proc.pid, "base": base, "log": str(log_path),
        "server": {"server": server, "command": " ".join(serve.server_command(env))},
        "token_url": f"{base}/oauth2/token", "jwks_url": f"{base}/oauth2/jwks",
        "introspect_url": f"{base}/oauth2/introspect",
        "cc_id": cc["client_id"], "cc_secret": cc["client_secret"],
        "web_id": web["client_id"], "web_secret": web["client_secret"],
        "authorize_path": "/oauth2/authorize", "token_path": "/oauth2/token",
        "cookie_sets": [{"gatehouse_session": t} for t in prepared["tokens"]],
        "env": {k: env[k] for k in ("GATEHOUSE_ENV", "ISSUER", "REDIS_URL")}
        | {k: env[k] for k in env if k.startswith(("GATEHOUSE_", "GRANIAN_"))},
    }


def in_process(a: argparse.Namespace, prepared: dict[str, Any], *args: str) -> dict[str, Any]:
    """scripts/bench_app.py `args`, in the servers' environment and on their CPU."""
    pin = ["taskset", "-c", a.server_cpus.split(",")[0]] if a.server_cpus else []
    proc = run([*pin, sys.executable, str(BENCH_APP), *args], env=prepared["env"], cwd=BACKEND)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _keep_log(src: Path, dst: Path) -> None:
    """The server's log, kept with the results (the temporary directory is removed)."""
    shutil.copyfile(src, dst)


def _redis_cleanup(prefix: str) -> None:
    try:
        import redis
        r = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        keys = list(r.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            r.delete(*keys)
        log(f"removed {len(keys)} redis keys with prefix {prefix}")
    except Exception as err:  # cleanup must not mask the real error
        log(f"redis cleanup failed: {err}")


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(s[s.rfind(")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def _wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(loopback(url), timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log_path.read_text()[-3000:]}")


def _stop_group(proc: subprocess.Popen, what: str) -> None:
    if proc.poll() is not None:
        return
    log(f"stopping {what} (pid {proc.pid})")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


# --- the peer ----------------------------------------------------------------------------

def setup_peer(stack: contextlib.ExitStack, a: argparse.Namespace) -> dict[str, Any]:
    peer_dir = a.peers_dir / "oidc-provider"
    start = peer_dir / "start.sh"
    if subprocess.run([str(start), "status"], capture_output=True).returncode == 0:
        raise RuntimeError("the peer is already running (someone else's?); stop it first: "
                           f"{start} stop")
    env = dict(os.environ, PORT=str(PEER_PORT))
    if a.server_cpus:
        env["CPU_PIN"] = a.server_cpus
    if a.peer_alg:
        env["AT_ALG"] = a.peer_alg
    proc = run([str(start)], env=env, check=False)
    stack.callback(lambda: run([str(start), "stop"], check=False))
    stack.callback(log, "stopping the peer")
    if proc.returncode != 0:
        raise RuntimeError(f"peer failed to start:\n{proc.stdout}{proc.stderr}")
    pid = int((peer_dir / "run" / "server.pid").read_text())
    base = f"http://{HOST}:{PEER_PORT}"
    log(f"peer pid {pid} on {base}")
    return {
        "name": "peer", "pid": pid, "base": base, "issuer": base, "introspect_extra": "resource=urn:bench:opaque",
        "cc_id": "bench-cc", "cc_secret": "bench-cc-secret", "web_id": "bench-web", "web_secret": "bench-web-secret",
        "authorize_path": "/auth", "token_path": "/token",
        "cookie_sets": [_peer_login(base) for _ in range(a.connections)],
        "env": {"AT_ALG": a.peer_alg or "RS256", "CPU_PIN": a.server_cpus or ""},
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _peer_login(base: str) -> dict[str, str]:
    """Sign in once through the peer's dev interactions (login + consent) and return its session cookies,
    so that later authorization requests are answered at once, as Gatehouse's are with a session cookie."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)

    def req(method: str, url: str, data: dict | None = None):
        r = urllib.request.Request(loopback(url), data=urllib.parse.urlencode(data).encode() if data else None,
                                   method=method)
        try:
            resp = opener.open(r, timeout=10)
            return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    url = f"{base}/auth?" + urllib.parse.urlencode({
        "client_id": "bench-web", "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": CODE_SCOPE,
        "state": "s", "nonce": "n", "code_challenge": challenge, "code_challenge_method": "S256"})
    for _ in range(12):
        st, hd, body = req("GET", url)
        if st in (302, 303):
            loc = urllib.parse.urljoin(url, hd["Location"])
            if loc.startswith(REDIRECT_URI):
                break
            url = loc
            continue
        m = re.search(r'name="prompt" value="(\w+)"', body.decode(errors="replace"))
        if st != 200 or not m:
            raise RuntimeError(f"peer login: GET {url} -> {st}")
        form = {"prompt": m.group(1)}
        if m.group(1) == "login":
            form.update(login=f"bench-{secrets.token_hex(4)}", password="any")
        st, hd, body = req("POST", url, form)
        if st not in (302, 303):
            raise RuntimeError(f"peer login: POST {url} -> {st}")
        url = urllib.parse.urljoin(url, hd["Location"])
    else:
        raise RuntimeError("peer login did not reach the redirect URI")
    return {c.name: c.value for c in jar if c.path == "/"}


# --- orchestration -----------------------------------------------------------------------

def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(k: str) -> float | None:
        vals = [r[k] for r in runs if r.get(k) is not None]
        return statistics.median(vals) if vals else None
    keys = ("rps", "good_rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "server_cpu_cores", "wrk_cpu_cores",
            "driver_cpu_cores", "other_cpu_cores", "authorize_p50_ms", "token_p50_ms", "authorize_p99_ms",
            "token_p99_ms")
    s = {k: med(k) for k in keys if any(r.get(k) is not None for r in runs)}
    s["runs_rps"] = [round(r["rps"], 1) for r in runs]
    s["errors"] = sum(r.get("errors", 0) for r in runs)
    s["first_bad"] = next((r.get("first_bad") for r in runs if r.get("first_bad")), "")
    # CPU time per request: unlike req/s, barely moved by other load on the machine.
    per_req = [r["server_cpu_cores"] / r["rps"] * 1000 for r in runs if r.get("server_cpu_cores") and r.get("rps")]
    if per_req:
        s["server_cpu_ms_per_req"] = statistics.median(per_req)
        s["rps_per_server_core"] = 1000 / s["server_cpu_ms_per_req"]
    return s


def print_table(results: dict[str, dict[str, Any]], scenarios: list[str]) -> str:
    f = lambda v, p=1: "-" if v is None else f"{v:,.{p}f}"  # noqa: E731
    lines = ["| scenario | target | req/s | p50 ms | p99 ms | errors | server CPU (cores) | server CPU ms/req "
             "| other procs CPU (cores) | runs req/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for sc in scenarios:
        for name, res in results.items():
            s = res.get(sc)
            if not s:
                continue
            lines.append(f"| {sc} | {name} | {f(s.get('rps'))} | {f(s.get('p50_ms'), 2)} | {f(s.get('p99_ms'), 2)} | "
                         f"{s['errors']} | {f(s.get('server_cpu_cores'), 2)} | {f(s.get('server_cpu_ms_per_req'), 3)} | "
                         f"{f(s.get('other_cpu_cores'), 2)} | "
                         f"{' / '.join(f(x, 0) for x in s['runs_rps'])} |")
    peer = results.get("peer", {})
    for name, res in results.items():
        if name == "peer" or not peer:
            continue
        for sc in scenarios:
            mine, theirs = res.get(sc), peer.get(sc)
            if mine and theirs and mine.get("rps") and theirs.get("rps"):
                lines.append(f"| {sc} | {name} / peer | {mine['rps'] / theirs['rps']:.2f}x | | "
                             f"{f(mine.get('p99_ms'), 2)} vs {f(theirs.get('p99_ms'), 2)} | | | | | |")
    text = "\n".join(lines)
    print(text)
    for name, res in results.items():
        c = res.get("code")
        if c:
            print(f"  {name} code exchange split: authorize p50 {f(c.get('authorize_p50_ms'), 2)} ms / "
                  f"p99 {f(c.get('authorize_p99_ms'), 2)} ms, token p50 {f(c.get('token_p50_ms'), 2)} ms / "
                  f"p99 {f(c.get('token_p99_ms'), 2)} ms")
        for sc, s in res.items():
            if s.get("first_bad"):
                print(f"  WARNING {name} {sc}: {s['errors']} bad/errors, first: {s['first_bad']}")
    return text


def wait_for_quiet(max_wait: float, below: float, own_pids: list[int]) -> float:
    """Wait up to max_wait seconds until the rest of the machine uses fewer than `below` cores
    (over a 2 s window); other sessions' test runs would otherwise take CPU from the pinned server.
    Returns the busy cores seen last."""
    deadline, clk = time.time() + max_wait, os.sysconf("SC_CLK_TCK")
    while True:
        a0, o0, t0 = all_cpu_ticks(), sum(cpu_ticks(p) for p in own_pids), time.time()
        time.sleep(2)
        busy = max(0.0, (all_cpu_ticks() - a0 - (sum(cpu_ticks(p) for p in own_pids) - o0)) / clk / (time.time() - t0))
        if busy < below or time.time() >= deadline:
            return busy
        log(f"  machine busy ({busy:.2f} cores used by other processes); waiting")


def measure(target: dict[str, Any], scenarios: list[str], a: argparse.Namespace, out: Path,
            round_no: int) -> dict[str, list]:
    runs: dict[str, list] = {}
    if a.quiet_wait:
        busy = wait_for_quiet(a.quiet_wait, a.quiet_below, [target["pid"]])
        log(f"{target['name']} round {round_no}: other processes use {busy:.2f} cores")
    wrk_scen = [s for s in scenarios if s != "code"]
    if wrk_scen:
        log(f"{target['name']} round {round_no}: wrk {','.join(wrk_scen)}")
        runs.update(run_loadtest(target, wrk_scen, a, out / f"{target['name']}-r{round_no}"))
    if "code" in scenarios:
        log(f"{target['name']} round {round_no}: code + PKCE exchanges")
        cfg = {"base": target["base"], "client_id": target["web_id"], "scope": CODE_SCOPE,
               "authorize_path": target["authorize_path"], "token_path": target["token_path"],
               "basic": "Basic " + base64.b64encode(f"{target['web_id']}:{target['web_secret']}".encode()).decode()}
        cpus = [int(c) for c in a.wrk_cpus.split(",")] if a.wrk_cpus else None
        code_runs = []
        for r in range(a.runs):
            code_runs.append(drive_code_flow(cfg, target["cookie_sets"], warmup=a.warmup if r == 0 else 0.5,
                                             duration=a.duration, processes=a.driver_procs, cpus=cpus,
                                             server_pid=target["pid"]))
            c = code_runs[-1]
            log(f"  run{r + 1} {c['rps']:.1f} exch/s p50 {c['p50_ms'] or 0:.2f} p99 {c['p99_ms'] or 0:.2f} "
                f"errors {c['errors']} {c['first_bad']}")
        runs["code"] = code_runs
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpus", type=int, choices=(1, 2), default=1,
                    help="server CPUs: 1 = pinned to CPU 0 (load generator on CPU 1); 2 = CPUs 0-1, shared with it")
    ap.add_argument("-c", "--connections", type=int, default=16)
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-req", type=int, default=0, metavar="N",
                    help="loadtest.sh's cap on requests per wrk thread and run (its default, 200,000, caps JWKS "
                         "at 25,000 req/s over 8 s for both servers); 0: no cap")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate the targets this many times; medians are over every run of every round")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--targets", default="gatehouse,peer",
                    help="gatehouse, peer, or gatehouse,peer (the peer is left out when it is absent)")
    ap.add_argument("--server", default="granian",
                    help="Gatehouse's server(s) as serve.py runs them: granian, gunicorn, or granian,gunicorn")
    ap.add_argument("--peers-dir", type=Path, default=DEFAULT_PEERS_DIR,
                    help="the folder of the oidc-provider peer and the wrk harness (default: ../shared/peers "
                         "beside the repository)")
    ap.add_argument("--workers", type=int, help="worker processes (default: one per server CPU)")
    ap.add_argument("--worker-class", choices=("sync", "gthread"), help="gunicorn's worker (serve.py's default: gthread)")
    ap.add_argument("--threads", type=int, help="threads per worker (default: serve.py's)")
    ap.add_argument("--env", action="append", metavar="NAME=VALUE", help="extra environment for Gatehouse")
    ap.add_argument("--peer-alg", choices=("RS256", "ES256", "EdDSA"), help="the peer's access-token alg")
    ap.add_argument("--driver-procs", type=int, default=2, help="processes of the code-flow driver")
    ap.add_argument("--port", type=int, help="Gatehouse port (default: a free one)")
    ap.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                    help="before each target's measurements, wait up to this long for the machine to be quiet")
    ap.add_argument("--quiet-below", type=float, default=0.3, metavar="CORES",
                    help="'quiet': other processes use fewer cores than this")
    ap.add_argument("--label", default="")
    ap.add_argument("--hold", action="store_true", help="after setup, print how to reach the servers and wait")
    a = ap.parse_args()

    scenarios = [s for s in a.scenarios.split(",") if s]
    targets = [t for t in a.targets.split(",") if t]
    servers = [s for s in a.server.split(",") if s]
    if set(scenarios) - set(SCENARIOS) or set(targets) - {"gatehouse", "peer"} or set(servers) - set(SERVERS):
        ap.error("unknown scenario, target or server")
    if "peer" in targets and not (a.peers_dir / "oidc-provider" / "start.sh").exists():
        log(f"no peer in {a.peers_dir} (--peers-dir): measuring Gatehouse alone")
        targets.remove("peer")
    if not (a.peers_dir / "bench" / "loadtest.sh").exists() and set(scenarios) & set(WRK_SCENARIOS):
        log(f"no wrk harness in {a.peers_dir / 'bench'} (--peers-dir): {', '.join(WRK_SCENARIOS)} left out")
        scenarios = [s for s in scenarios if s not in WRK_SCENARIOS]
    if not targets or not scenarios:
        ap.error("nothing left to measure")
    if not (1 <= a.connections <= 256 and 1 <= a.duration <= 120 and 1 <= a.runs <= 10):
        ap.error("bounds: 1 <= connections <= 256, 1 <= duration <= 120, 1 <= runs <= 10")
    ncpu = len(os.sched_getaffinity(0))
    a.server_cpus = "0" if a.cpus == 1 else "0,1"
    a.wrk_cpus = "1" if a.cpus == 1 and ncpu > 1 else ""
    for tool in ("wrk", "taskset", "createdb", "dropdb"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install -y wrk postgresql-client util-linux)")

    stamp = time.strftime("%Y%m%dT%H%M%S")
    label = a.label or f"cpus{a.cpus}"
    out = OUT_DIR / f"{label}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    ignore = OUT_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Benchmark output: never committed.\n*\n")

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        live: dict[str, dict[str, Any]] = {}
        overhead = exchange = None
        if "gatehouse" in targets:
            prepared = setup_gatehouse(stack, a, tmp, out)
            overhead = in_process(a, prepared, "overhead")
            log(f"framework overhead: {overhead}")
            # "--": a random secret or session token may begin with "-", which argparse would take for an option.
            exchange = in_process(a, prepared, "exchange", "--", prepared["web"]["client_id"],
                                  prepared["web"]["client_secret"], prepared["tokens"][0], REDIRECT_URI, CODE_SCOPE)
            log(f"one code + PKCE exchange: {exchange}")
            for server in servers:
                target = start_gatehouse(stack, a, prepared, server, tmp, out)
                live[target["name"]] = target
        if "peer" in targets:
            live["peer"] = setup_peer(stack, a)
        if a.hold:
            for t in live.values():
                print(json.dumps({k: v for k, v in t.items() if k != "cookie_sets"}
                                 | {"cookie_example": t["cookie_sets"][0]}, indent=1))
            log("holding; Ctrl-C or SIGTERM to stop and clean up")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            return 0

        all_runs: dict[str, dict[str, list]] = {name: {} for name in live}
        for rnd in range(1, a.rounds + 1):
            for name, target in live.items():
                for sc, runs in measure(target, scenarios, a, out, rnd).items():
                    all_runs[name].setdefault(sc, []).extend(runs)
        results = {name: {sc: summarise(runs) for sc, runs in per.items()} for name, per in all_runs.items()}
        meta = {
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "argv": sys.argv,
            "cpus": a.cpus, "server_cpus": a.server_cpus, "load_cpus": a.wrk_cpus or "any",
            "connections": a.connections, "duration_s": a.duration, "runs": a.runs, "rounds": a.rounds,
            "warmup_s": a.warmup, "nproc": os.cpu_count(), "loadavg_end": os.getloadavg(),
            "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
                        "?"),
            "git": run(["git", "-C", str(BACKEND), "describe", "--always", "--dirty"], check=False).stdout.strip(),
            "targets": {n: {k: t.get(k) for k in ("server", "env")} for n, t in live.items()},
            "code_scope": CODE_SCOPE, "peers_dir": str(a.peers_dir), "framework_overhead": overhead,
            "code_exchange_in_process": exchange,
        }
        print(f"\n{label}: server on CPU(s) {a.server_cpus}, load on {a.wrk_cpus or 'any'}; "
              f"-c {a.connections}, {a.duration}s x {a.runs} runs x {a.rounds} round(s), median")
        for n, t in live.items():
            print(f"  {n}: {json.dumps(meta['targets'][n])}")
        table = print_table(results, scenarios)
        if overhead:
            line = (f"framework overhead per request, in-process on the server's CPU: GET {overhead['path']} "
                    f"{overhead['app_us']} us through the app, {overhead['bare_flask_us']} us through a bare "
                    f"Flask app serving the same serialised JSON: {overhead['ratio']}x")
            print(line)
            table += "\n" + line
        if exchange:
            line = (f"one code + PKCE exchange, in-process: {exchange['per_exchange']}, "
                    f"{exchange['cpu_ms_in_process']} ms CPU")
            print(line)
            table += "\n" + line
        path = out / "summary.json"
        path.write_text(json.dumps({"meta": meta, "results": results, "runs": all_runs, "table": table}, indent=1))
        (out / "summary.md").write_text(table + "\n")
        print(f"results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
