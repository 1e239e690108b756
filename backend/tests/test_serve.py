"""serve.py: the production server command (granian), and that it serves the app."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import serve
from tests.conftest import TEST_SECRET_KEY, signing_keys_dir

BACKEND = Path(__file__).resolve().parent.parent


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_one_worker_per_cpu_with_two_threads_unless_told_otherwise():
    """Two threads: more, under SCHED_BATCH, took token p99 past its 25 ms target (serve.py)."""
    assert option(serve.granian_command({}), "--workers") == str(serve.cpu_count())
    assert option(serve.granian_command({}), "--blocking-threads") == "2"
    command = serve.granian_command({"GATEHOUSE_WORKERS": "3", "GATEHOUSE_THREADS": "5",
                                     "GATEHOUSE_BIND": "127.0.0.1:9000"})
    assert (option(command, "--workers"), option(command, "--blocking-threads")) == ("3", "5")
    assert (option(command, "--host"), option(command, "--port")) == ("127.0.0.1", "9000")
    assert option(command, "--interface") == "wsgi" and "--factory" in command


@pytest.mark.parametrize(("affinity", "cpu_max", "expected"), [
    ({0, 1, 2, 3}, "max 100000\n", 4),        # no quota: the CPUs this process may run on
    ({0, 1, 2, 3}, "150000 100000\n", 2),     # `cpus: 1.5`: rounded up
    ({0, 1, 2, 3}, "50000 100000\n", 1),      # below one CPU: still one worker
    ({0}, "400000 100000\n", 1),              # pinned to one CPU: the quota does not add any
    ({0, 1}, None, 2),                        # no cgroup v2 file (macOS, cgroup v1)
])
def test_cpu_count_follows_the_cpus_a_container_may_use(monkeypatch, tmp_path, affinity, cpu_max, expected):
    """A container limited by a CPU quota or a cpuset starts that many workers, not the host's count."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: affinity)
    cgroup_file = tmp_path / "cpu.max"
    if cpu_max is not None:
        cgroup_file.write_text(cpu_max)
    assert serve.cpu_count(cgroup_file) == expected


def test_access_log_is_off_by_default_and_never_writes_the_query_string():
    """nginx writes the access log; when granian does instead, tokens and codes in query strings stay out."""
    assert "--access-log" not in serve.granian_command({})
    command = serve.granian_command({"GATEHOUSE_ACCESS_LOG": "1"})
    assert "--access-log" in command
    fmt = option(command, "--access-log-fmt")
    assert "%(path)s" in fmt and "query_string" not in fmt


def test_workers_serve_the_app_with_what_startup_made_frozen(monkeypatch, database_url, tmp_path):
    """production_app builds the app, then takes what exists out of the cyclic collector's scans."""
    for name, value in dict(GATEHOUSE_ENV="testing", DATABASE_URL=database_url, SECRET_KEY=TEST_SECRET_KEY,
                            SIGNING_KEYS_DIR=signing_keys_dir(), MAIL_OUTBOX_DIR=str(tmp_path / "outbox")).items():
        monkeypatch.setenv(name, value)
    assert option(serve.granian_command({}), "--factory") == "serve:production_app"
    try:
        application = serve.production_app()
        assert gc.get_freeze_count() > 0
        assert application.test_client().get("/oauth2/jwks").status_code == 200
    finally:
        gc.unfreeze()


def test_a_refused_scheduling_policy_does_not_stop_the_server(monkeypatch, capsys):
    """Where the platform refuses SCHED_BATCH (a strict seccomp profile), serve.py says so and serves."""
    def refuse(pid, policy, param):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "sched_setscheduler", refuse, raising=False)
    monkeypatch.setattr(os, "SCHED_BATCH", 3, raising=False)
    serve.schedule_for_throughput({})
    assert "keeping the default scheduling policy" in capsys.readouterr().err


def threads_of_tree(pid: int) -> list[int]:
    """Every thread of a process and of its descendants (Linux: /proc/<pid>/task/<tid>/children)."""
    threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    children = [int(child) for tid in threads
                for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return threads + [thread for child in children for thread in threads_of_tree(child)]


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
@pytest.mark.parametrize(("setting", "policy"), [
    (None, "SCHED_BATCH"),  # the default: the network thread does not preempt the app's threads
    ("0", "SCHED_OTHER"),
])
def test_serve_py_runs_the_app_under_granian(database_url, tmp_path, setting, policy):
    """serve.py execs granian, which serves the app; granian, its worker and all their threads run
    under the scheduling policy serve.py set (sched(7))."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEHOUSE_", "GRANIAN_"))}
    env.update(GATEHOUSE_BIND=f"127.0.0.1:{port}", GATEHOUSE_WORKERS="1", GATEHOUSE_ENV="testing",
               DATABASE_URL=database_url, SECRET_KEY=TEST_SECRET_KEY, SIGNING_KEYS_DIR=signing_keys_dir(),
               MAIL_OUTBOX_DIR=str(tmp_path / "outbox"), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    if setting is not None:
        env["GATEHOUSE_SCHED_BATCH"] = setting
    server = subprocess.Popen([sys.executable, "serve.py"], cwd=BACKEND, env=env, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/oauth2/jwks", timeout=2) as response:
                    status, body = response.status, json.load(response)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stdout.read().decode(errors="replace")
                assert time.monotonic() < deadline, "granian did not start within 30s"
                time.sleep(0.2)
        assert status == 200
        assert body["keys"] and all("kid" in key for key in body["keys"])
        threads = threads_of_tree(server.pid)
        # The server process, its worker process, and their threads (granian's and Python's).
        assert len(threads) > 3
        assert {os.sched_getscheduler(tid) for tid in threads} == {getattr(os, policy)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
