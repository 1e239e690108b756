"""Gunicorn settings for Gatehouse. Every value can be overridden from the environment."""

import os


def _cpu_count() -> int:
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
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota, period = f.read().split()
        if quota != "max":
            count = min(count, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return count


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One worker process per CPU. The token endpoints are CPU-bound (signing, Flask,
# Authlib); more processes than CPUs only add switching, and caches and pools each.
# Measured with scripts/bench_token.py (16 connections, medians): client-credentials
# tokens/s 549 with 1 worker against 388 with 2*CPUs+1 on 1 CPU, 738 against 507 on 2;
# introspection and JWKS no slower; the code + PKCE exchange (7 database round trips)
# equal on 1 CPU, about 20% slower on 2 (65 against 83 exchanges/s).
workers = int(os.environ.get("GUNICORN_WORKERS", _cpu_count()))

# Threads let a worker keep serving while a request waits on PostgreSQL, Redis
# or an upstream identity provider, and (unlike the sync worker) honour keep-alive
# from nginx. (With 2 or more CPUs and no upstream calls, GUNICORN_WORKER_CLASS=sync
# GUNICORN_THREADS=1 measured faster still; on 1 CPU, slower: see scripts/bench_token.py.)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))

# Gunicorn only believes X-Forwarded-Proto from these addresses. The app's own
# ProxyFix (TRUSTED_PROXY_COUNT) is what handles the nginx hop; leave this narrow.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Logs go to stdout/stderr for the container runtime to collect.
accesslog = "-"
errorlog = "-"

# Path only (%(U)s), never the query string (%(r)s / %(q)s): authorization codes,
# tokens and reset links travel in query strings. The referer is left out for the
# same reason. X-Request-ID ties each line to the application's logs.
access_log_format = (
    '%(h)s "%({x-forwarded-for}i)s" %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms '
    '"%(a)s" request_id=%({x-request-id}o)s'
)

# Idle keep-alive connections from nginx stay open 5s. nginx's upstream
# keepalive_timeout is 4s on purpose: nginx must be the side that closes idle
# connections, or it may reuse one gunicorn is closing and answer 502.
keepalive = 5

# A worker that has not checked in for 30s is killed and replaced. With gthread
# this catches a stuck worker process, not one slow request: nginx's
# proxy_read_timeout bounds those.
timeout = 30

# Match nginx's 8k request-line buffer so long authorize URLs that nginx accepts
# are not refused here (gunicorn's default is 4094 bytes).
limit_request_line = 8190

# The worker heartbeat file lives on tmpfs: on the container's overlay filesystem
# the periodic fchmod can block a worker (see gunicorn's "Blocking os.fchmod" FAQ).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
