"""serve.py: the production server commands (granian by default, gunicorn), and that each serves the app."""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete

import serve
from app.models import OAuthClient
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


def server_env(database_url: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment a server runs in here: PATH without this interpreter's bin/, so that the
    server is found beside the interpreter (serve.server_program), as `.venv/bin/python serve.py` needs."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEHOUSE_", "GRANIAN_"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update(GATEHOUSE_ENV="testing", GATEHOUSE_WORKERS="1", DATABASE_URL=database_url, SECRET_KEY=TEST_SECRET_KEY,
               SIGNING_KEYS_DIR=signing_keys_dir(), MAIL_OUTBOX_DIR=str(tmp_path / "outbox"),
               PATH=os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if d != venv_bin), **settings)
    return env


@contextlib.contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python serve.py` in `env` on a free loopback port, until it answers JWKS; stopped afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**env, "GATEHOUSE_BIND": f"127.0.0.1:{port}"}
    # A file, not a pipe: a pipe nobody reads fills up and stops the server mid-request.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "serve.py"], cwd=BACKEND, env=env, start_new_session=True,
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/oauth2/jwks", timeout=2) as response:
                    assert response.status == 200
                break
            # Refused, reset, or accepted by a listening server whose worker is still starting (a timeout).
            except OSError:
                assert server.poll() is None, log.seek(0) or log.read().decode(errors="replace")
                assert time.monotonic() < deadline, "the server did not start within 30s"
                time.sleep(0.2)
        yield server, base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_the_server_is_found_beside_the_interpreter(tmp_path):
    """A virtualenv's python finds its own granian and gunicorn, PATH or not; elsewhere, PATH's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gunicorn").write_text("#!/bin/sh\n")
    (bin_dir / "gunicorn").chmod(0o755)
    assert serve.server_program("gunicorn", interpreter=str(bin_dir / "python")) == str(bin_dir / "gunicorn")
    assert serve.server_program("sh", interpreter=str(bin_dir / "python")) == shutil.which("sh")
    with pytest.raises(SystemExit, match="neither beside"):
        serve.server_program("no-such-server", interpreter=str(bin_dir / "python"))


def test_gatehouse_server_chooses_granian_by_default_or_gunicorn():
    venv_bin = Path(sys.executable).parent
    assert serve.server_command({}) == [str(venv_bin / "granian"), *serve.granian_command({})[1:]]
    command = serve.server_command({"GATEHOUSE_SERVER": "gunicorn", "GATEHOUSE_WORKERS": "3",
                                    "GATEHOUSE_THREADS": "4", "GATEHOUSE_BIND": "127.0.0.1:9000"})
    assert command[:2] == [str(venv_bin / "gunicorn"), "serve:production_app()"]
    assert (option(command, "--workers"), option(command, "--threads"), option(command, "--bind")) == \
        ("3", "4", "127.0.0.1:9000")
    assert option(command, "--worker-class") == "gthread" and "--access-logfile" not in command
    logged = serve.gunicorn_command({"GATEHOUSE_ACCESS_LOG": "1", "GATEHOUSE_WORKER_CLASS": "sync"})
    assert "%(U)s" in option(logged, "--access-logformat") and "%(q)s" not in option(logged, "--access-logformat")
    assert (option(logged, "--worker-class"), option(logged, "--threads")) == ("sync", "1")
    for wrong in ({"GATEHOUSE_SERVER": "uwsgi"}, {"GATEHOUSE_SERVER": "gunicorn", "GATEHOUSE_WORKER_CLASS": "gevent"}):
        with pytest.raises(SystemExit):
            serve.server_command(wrong)


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
@pytest.mark.parametrize(("setting", "policy"), [
    (None, "SCHED_BATCH"),  # the default: the network thread does not preempt the app's threads
    ("0", "SCHED_OTHER"),
])
def test_serve_py_runs_the_app_under_granian(database_url, tmp_path, setting, policy):
    """`python serve.py`, without the interpreter's bin/ on PATH, execs granian, which serves the app;
    granian, its worker and all their threads run under the scheduling policy serve.py set (sched(7))."""
    env = server_env(database_url, tmp_path, **({"GATEHOUSE_SCHED_BATCH": setting} if setting is not None else {}))
    with serving(env) as (server, base):
        with urllib.request.urlopen(f"{base}/oauth2/jwks", timeout=5) as response:
            body = json.load(response)
        assert body["keys"] and all("kid" in key for key in body["keys"])
        threads = threads_of_tree(server.pid)
        # The server process, its worker process, and their threads (granian's and Python's).
        assert len(threads) > 3
        assert {os.sched_getscheduler(tid) for tid in threads} == {getattr(os, policy)}


def test_serve_py_with_gatehouse_server_gunicorn_serves_a_token(database_url, tmp_path):
    """GATEHOUSE_SERVER=gunicorn: gunicorn's gthread worker serves the app, a client-credentials token
    included (RFC 6749 §4.4; plain http is allowed to loopback, RFC 8252 §7.3)."""
    env = server_env(database_url, tmp_path, GATEHOUSE_SERVER="gunicorn", FLASK_APP="app:create_app")
    created = subprocess.run([str(Path(sys.executable).parent / "flask"), "clients", "create", "--name", "serve test",
                              "--confidential", "--grant-types", "client_credentials", "--scopes", "api:read"],
                             cwd=BACKEND, env=env, capture_output=True, text=True, check=True)
    registered = json.loads(created.stdout)
    try:
        with serving(env) as (server, base):
            request = urllib.request.Request(f"{base}/oauth2/token", data=b"grant_type=client_credentials",
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            request.add_unredirected_header("Authorization", "Basic " + base64.b64encode(
                f"{registered['client_id']}:{registered['client_secret']}".encode()).decode())
            with urllib.request.urlopen(request, timeout=10) as response:
                status, cache_control, body = response.status, response.headers["Cache-Control"], json.load(response)
            command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        assert status == 200 and cache_control == "no-store"
        assert body["token_type"] == "Bearer" and body["access_token"].count(".") == 2
        assert Path(command[1].decode()).name == "gunicorn"  # serve.py exec'd gunicorn (python's script)
    finally:
        engine = create_engine(database_url)
        with engine.begin() as connection:
            connection.execute(delete(OAuthClient).where(OAuthClient.client_id == registered["client_id"]))
        engine.dispose()
