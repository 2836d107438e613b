"""A throw-away Postgres server from Debian's ``postgresql`` package: a temporary data folder,
a loopback port, trust authentication. Used by the test fixtures and benchmarks/serve.py."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ttc_agent.backends.vllm_server import free_port


def postgres_bin() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or ``None`` where Postgres is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


class LocalPostgres:
    """``with LocalPostgres() as pg:`` gives ``pg.dsn``; the server and its folder go on exit.

    Postgres refuses to run as root: under root the server runs as the ``postgres`` user.
    """

    def __init__(self) -> None:
        binary = postgres_bin()
        if binary is None:
            raise FileNotFoundError("Postgres is not installed (Debian: apt-get install postgresql)")
        self.bin = binary
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="ttc-pg-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def start(self) -> LocalPostgres:
        data = self.folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        subprocess.run(
            self._as_owner([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True,
            capture_output=True,
        )
        cmd = [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1",
               "-k", str(self.folder), "-c", "max_connections=200", "-c", "fsync=off"]  # fmt: skip
        log = open(self.folder / "postgres.log", "wb")  # noqa: SIM115 - the server writes it until stop()
        self._proc = subprocess.Popen(self._as_owner(cmd), stdout=log, stderr=subprocess.STDOUT)
        import psycopg

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited; see {self.folder / 'postgres.log'}")
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                time.sleep(0.3)
        raise RuntimeError(f"postgres did not start; see {self.folder / 'postgres.log'}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
