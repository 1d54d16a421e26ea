"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests (no pytest in here).

`postgres_url()` answers MONITOR_TEST_POSTGRES_URL when set; otherwise
`Throwaway().start()` runs Debian's initdb/pg_ctl (as the `postgres` user when we
are root, since initdb refuses root) in a temp dir, on a free loopback port, with
the unix socket in the same dir and a random scram password.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

ENV = "MONITOR_TEST_POSTGRES_URL"


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<ver>/bin with initdb, or the one holding initdb on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Throwaway:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.user = "monitor"
        self.runas: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.runas = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self.runas, *args], capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")

    def start(self) -> str:
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        if self.runas:
            pw = pwd.getpwnam("postgres")
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", opts, "-w", "start"
        )
        return self.url

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


async def create_database(url: str) -> str:
    """A fresh database on the server of `url`; returns its URL."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Wait until the server of `url` accepts TCP connections (no event loop: fixtures may run inside one)."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 5432)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(address, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL server on loopback: $MONITOR_TEST_POSTGRES_URL, or a throwaway
    cluster from Debian's binaries for this session; skips when neither exists."""
    import pytest

    url = os.environ.get(ENV)
    if url:
        wait_ready(url)
        yield url
        return
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(f"no PostgreSQL binaries (apt-get install postgresql) and {ENV} is not set")
    server = Throwaway(bindir)
    try:
        yield server.start()
    finally:
        server.stop()
