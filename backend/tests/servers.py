"""A Redis and a PostgreSQL of a test's own, on free loopback ports, for the fault tests to stop and
start: the machine's own servers (6379, 5432) are never touched.

PostgreSQL's initdb and pg_ctl refuse to run as root: as root they run as the `postgres` user, in
a directory it owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

from redis import Redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_listening(port: int, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"{what} did not start on port {port}"
            time.sleep(0.02)


class OwnRedis:
    """redis-server without persistence: every start is an empty Redis."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--logfile", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until_listening(self.port, "redis-server")
        Redis.from_url(self.url).ping()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


class OwnPostgres:
    """A throwaway cluster (trust authentication, no fsync) in a temporary directory."""

    def __init__(self) -> None:
        [self.bin] = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.directory = tempfile.mkdtemp(prefix="gatehouse-test-pg-")
        self.data = os.path.join(self.directory, "data")
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")

    def _run(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)

    def create(self) -> None:
        self._run(f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.directory, "log"),
                  "-w", "start")

    def stop(self) -> None:
        """As a crash would: connections cut, nothing waited for."""
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
