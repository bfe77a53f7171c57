"""A private PostgreSQL cluster a test may stop, start and restart at will.

Why not the shared server (`TEST_POSTGRES_URL`): other test runs use it, and stopping it is the
point of these tests. The cluster lives in a temporary directory, listens on a free loopback
port, runs as the ``postgres`` OS user (PostgreSQL refuses to run as root; CI runs as root) and
is removed afterwards. Skipped locally when it cannot be created; a failure in CI (``CI`` set).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.stack import free_port

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class PrivateCluster:
    """``pg_ctl`` on one throw-away cluster; ``url`` is for ``DATABASE_URL``."""

    def __init__(self, bin_dir: Path, home: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.home = home
        self.port = port
        self.url = f"postgresql://ctip@127.0.0.1:{port}/ctip"

    def _run(self, *args: str) -> None:
        command = " ".join([str(self.bin_dir / args[0]), *args[1:]])
        # The server refuses to run as root; CI and this machine run as root.
        argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def _options(self) -> str:
        server = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        return f"-D {self.home / 'data'} -o '{server}' -l {self.home / 'server.log'} -w"

    def start(self) -> None:
        self._run("pg_ctl", self._options(), "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in a restart for an upgrade."""
        self._run("pg_ctl", self._options(), "-m fast", "stop")

    def restart(self) -> None:
        self._run("pg_ctl", self._options(), "-m fast", "restart")

    def create(self) -> None:
        self._run("initdb", f"-D {self.home / 'data'}", "-A trust -U ctip --no-sync -E UTF8")
        self.start()
        self._run("createdb", f"-h 127.0.0.1 -p {self.port} -U ctip ctip")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self._run("pg_ctl", self._options(), "-m immediate", "stop")
        shutil.rmtree(self.home, ignore_errors=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"cannot create a private PostgreSQL cluster in CI: {reason}")
    pytest.skip(f"no private PostgreSQL cluster: {reason}")


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """A started, empty cluster with a database ``ctip`` owned by ``ctip`` (no password)."""
    if not BIN_DIRS:
        _unavailable("no /usr/lib/postgresql/*/bin (install postgresql)")
    home = Path(tempfile.mkdtemp(prefix="ctip-pg-", dir="/tmp"))
    cluster = PrivateCluster(BIN_DIRS[0], home, free_port())
    try:
        if os.geteuid() == 0:
            shutil.chown(home, "postgres")
        cluster.create()
    except (OSError, LookupError, subprocess.SubprocessError) as exc:
        cluster.destroy()
        _unavailable(f"{type(exc).__name__}: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()
