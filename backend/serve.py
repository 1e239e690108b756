"""Run Gatehouse in production: `python serve.py` execs the server that serves the WSGI app.

GATEHOUSE_SERVER chooses it: `granian` (the default) or `gunicorn`. Both are supported, tested and
measured (scripts/bench_token.py reports both). Granian is the default by measurement: its HTTP/1.1
handling is in Rust, where gunicorn's gthread worker parses HTTP in Python, so gunicorn's own
per-request cost weighs on the cheapest endpoints (JWKS, introspection; README's Performance table
has both servers' figures). Gunicorn is the server many operators
already run, monitor and tune; with it, serve.py runs gthread workers with the same worker and
thread counts. The server is taken from beside this interpreter (a virtualenv's bin/, the image's
/usr/local/bin), so that `.venv/bin/python serve.py` works without the virtualenv on PATH; PATH
only when it is not there. Every option below can be overridden from the environment:

    GATEHOUSE_SERVER        granian (default) or gunicorn
    GATEHOUSE_BIND          host:port to listen on (0.0.0.0:8000)
    GATEHOUSE_WORKERS       worker processes (one per CPU this container may use)
    GATEHOUSE_THREADS       threads per worker (2)
    GATEHOUSE_WORKER_CLASS  gunicorn only: gthread (default) or sync
    GATEHOUSE_ACCESS_LOG    1: the server writes an access log (off: nginx logs every request)
    GATEHOUSE_SCHED_BATCH   0: granian keeps the default scheduling policy (see schedule_for_throughput)
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from flask import Flask

SERVERS = ("granian", "gunicorn")
# Path only (granian's %(path)s, gunicorn's %(U)s), never the query string: authorization codes, tokens
# and reset links travel in query strings. The X-Request-ID of each response is in nginx's line and
# the application's own.
ACCESS_LOG_FORMAT = '%(addr)s [%(time)s] "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'
GUNICORN_ACCESS_LOG_FORMAT = '%(h)s [%(t)s] "%(m)s %(U)s %(H)s" %(s)s %(M)sms'
# A stopping worker gets 30 s to finish what it is serving (nginx's proxy_read_timeout is 60 s).
GRACEFUL_STOP_SECONDS = "30"


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def cpu_count(cgroup_cpu_max: str | os.PathLike[str] = CGROUP_CPU_MAX) -> int:
    """CPUs this container may actually use.

    os.cpu_count() reports the host's CPUs; a container limited with `cpus:`
    (cgroup v2 cpu.max) or a cpuset would otherwise start far too many workers,
    and every worker holds its own database connection pool.
    """
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # macOS and other non-Linux development machines
        count = os.cpu_count() or 1
    try:
        with open(cgroup_cpu_max, encoding="ascii") as f:
            quota, period = f.read().split()
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return count


def production_app() -> Flask:
    """The app each worker serves (granian's --factory, gunicorn's serve:production_app()): create_app(),
    then gc.freeze().

    What exists once the app is built (modules, the app and its extensions, mappers, the keyring)
    lives as long as the worker. Frozen, the cyclic collector stops traversing it on every full
    collection, which measurably raised the token and introspection rates (scripts/bench_token.py,
    alternating with and without it in one sitting).
    """
    from app import create_app

    application = create_app()
    gc.collect()  # startup's own garbage first: what is frozen is never collected
    gc.freeze()
    return application


def granian_command(env: Mapping[str, str]) -> list[str]:
    host, _, port = env.get("GATEHOUSE_BIND", "0.0.0.0:8000").rpartition(":")
    command = [
        "granian", "--interface", "wsgi", "--factory", "serve:production_app",
        "--host", host, "--port", port,
        # One worker process per CPU: the token endpoints are CPU-bound (signing), and more processes
        # than CPUs only add switching, and caches and database pools each.
        "--workers", env.get("GATEHOUSE_WORKERS", str(cpu_count())),
        # Threads let a worker keep serving while a request waits on PostgreSQL, Redis or an
        # upstream identity provider. Two, not more, under SCHED_BATCH (below): with four, a worker's
        # CPU-bound threads starve its network thread until the tick, and token p99 at 16
        # connections on one CPU went from 20 to 30-44 ms (scripts/bench_token.py).
        "--blocking-threads", env.get("GATEHOUSE_THREADS", "2"),
        "--http", "1",  # nginx speaks HTTP/1.1 to its upstreams
        "--respawn-failed-workers",
        "--workers-kill-timeout", GRACEFUL_STOP_SECONDS,
    ]
    # nginx (docker-compose.yml) logs every request, with its request id: a second access log here,
    # written in Python per request, measured at half the JWKS throughput (6,524 against 12,150
    # requests/s on one CPU). GATEHOUSE_ACCESS_LOG=1 turns it on where no such proxy logs.
    if env.get("GATEHOUSE_ACCESS_LOG", "0") == "1":
        command += ["--access-log", "--access-log-fmt", ACCESS_LOG_FORMAT]
    return command


def schedule_for_throughput(env: Mapping[str, str]) -> None:
    """Put this process, and so granian and every worker and thread it starts, under SCHED_BATCH.

    A granian worker answers on two kinds of thread: Python threads that run the app, and a network
    thread that reads requests and writes responses. Under the default policy each wake-up of the
    network thread preempts the Python thread at once, several times a request: on one CPU at 16
    connections, 3.3 context switches per token request and 14% of the worker's CPU in the kernel
    (perf). A SCHED_BATCH thread does not preempt on waking (sched(7)): the network thread runs when
    the Python threads wait, and then serves every ready connection at once: 0.3 switches per
    request, 3% in the kernel. Alternating in one sitting: 1,770-1,780 tokens/s at p99 20-21 ms
    under the default policy with four threads, 2,030-2,090 at p99 20 ms under SCHED_BATCH with two.
    With CPU to spare a woken thread runs at once under either policy (paced requests: the same
    latency); a lone client that keeps the CPU busy with one connection is served 5-20% slower.
    No privilege is needed. GATEHOUSE_SCHED_BATCH=0 keeps the default policy; platforms without
    SCHED_BATCH keep theirs.
    """
    if env.get("GATEHOUSE_SCHED_BATCH", "1") != "0" and hasattr(os, "SCHED_BATCH"):
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError as error:  # a sandbox or seccomp profile that refuses it: serve all the same
            print(f"serve.py: keeping the default scheduling policy ({error})", file=sys.stderr)


def gunicorn_command(env: Mapping[str, str]) -> list[str]:
    """Gunicorn with the workers and threads granian would have (gthread: a thread per request,
    so that a worker keeps serving while a request waits on PostgreSQL, Redis or an upstream)."""
    worker_class = env.get("GATEHOUSE_WORKER_CLASS", "gthread")
    if worker_class not in ("gthread", "sync"):
        raise SystemExit(f"serve.py: GATEHOUSE_WORKER_CLASS must be gthread or sync, not {worker_class!r}")
    command = [
        "gunicorn", "serve:production_app()",
        "--bind", env.get("GATEHOUSE_BIND", "0.0.0.0:8000"),
        "--workers", env.get("GATEHOUSE_WORKERS", str(cpu_count())),
        "--worker-class", worker_class,
        "--threads", env.get("GATEHOUSE_THREADS", "2") if worker_class == "gthread" else "1",
        "--graceful-timeout", GRACEFUL_STOP_SECONDS,
        # The heartbeat file on tmpfs: a container's disk-backed /tmp can stall a worker's heartbeat.
        "--worker-tmp-dir", "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp",
        # No control socket: its default path (~/.gunicorn/gunicorn.ctl) is shared by every gunicorn of a user.
        "--no-control-socket",
    ]
    if env.get("GATEHOUSE_ACCESS_LOG", "0") == "1":
        command += ["--access-logfile", "-", "--access-logformat", GUNICORN_ACCESS_LOG_FORMAT]
    return command


def server_command(env: Mapping[str, str]) -> list[str]:
    """The command of the server GATEHOUSE_SERVER names, its program found beside this interpreter."""
    server = env.get("GATEHOUSE_SERVER", "granian")
    if server not in SERVERS:
        raise SystemExit(f"serve.py: GATEHOUSE_SERVER must be one of {', '.join(SERVERS)}, not {server!r}")
    command = granian_command(env) if server == "granian" else gunicorn_command(env)
    return [server_program(command[0]), *command[1:]]


def server_program(name: str, interpreter: str = sys.executable) -> str:
    """`name` installed beside `interpreter` (not resolved: a virtualenv's python is a link out of
    its bin/), else as PATH finds it."""
    beside = Path(interpreter).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"serve.py: {name} is neither beside {interpreter} nor on PATH; install the backend")
    return found


if __name__ == "__main__":
    environment = os.environ
    command = server_command(environment)
    if environment.get("GATEHOUSE_SERVER", "granian") == "granian":
        schedule_for_throughput(environment)
    os.execv(command[0], command + sys.argv[1:])
