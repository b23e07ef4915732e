"""A PostgreSQL cluster of Funnel's own, started from the system binaries.

Used by ``funnel dev`` (data kept in ``.funnel/pg``) and by the test suite (a
throwaway cluster per test session). PostgreSQL refuses to run as root, so as
root every server command runs as the ``postgres`` system user (created by
Debian's package).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

MIN_MAJOR = 15
INSTALL_HINT = ("PostgreSQL 15+ server binaries with contrib were not found. On Debian/Ubuntu: "
                "`sudo apt-get install -y postgresql` (Funnel's Makefile does this for you when run as root); "
                "elsewhere install PostgreSQL 15+ and its contrib extensions (citext).")


class PostgresNotInstalled(RuntimeError):
    pass


def find_bin_dir() -> Path:
    candidates = []
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        try:
            major = int(Path(path).parent.name)
        except ValueError:
            continue
        if major >= MIN_MAJOR and os.path.exists(os.path.join(path, "initdb")):
            candidates.append((major, Path(path)))
    if candidates:
        return max(candidates)[1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresNotInstalled(INSTALL_HINT)


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _hand_to_server_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    shutil.chown(path, "postgres", "postgres")
    for parent in path.resolve().parents:  # the server user must be able to traverse to its data
        if str(parent) == "/":
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o001)


class LocalPostgresError(RuntimeError):
    """The server would not start; the message carries pg_ctl's output and the server log's tail."""


class LocalPostgres:
    def __init__(self, base_dir: str | Path, port: int, tuned_for_tests: bool = False):
        self.base_dir = Path(base_dir).resolve()
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "run"
        self.log_file = self.base_dir / "postgres.log"
        self.port = port
        self.tuned_for_tests = tuned_for_tests
        self.bin_dir = find_bin_dir()

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def _initdb(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.log_file.touch()
        for path in (self.base_dir, self.data_dir, self.socket_dir, self.log_file):
            _hand_to_server_user(path)
        os.chmod(self.data_dir, 0o700)
        subprocess.run(_as_server_user([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                                        "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]),
                       check=True, capture_output=True)
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.socket_dir}'",
            "max_connections = 200",
            "shared_buffers = 128MB",
        ]
        if self.tuned_for_tests:  # throwaway data: durability buys nothing
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(self.data_dir / "postgresql.auto.conf", "a") as conf:
            conf.write("\n".join(settings) + "\n")

    def is_running(self) -> bool:
        result = subprocess.run(_as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"]),
                                capture_output=True)
        return result.returncode == 0

    def start(self) -> LocalPostgres:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.is_running():
            return self
        command = _as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                                   "-o", f"-p {self.port}", "-w", "-t", "60", "start"])
        for attempt in range(3):
            # A start right after a stop (LocalRuntime.restart) failed once on a loaded machine, its cause not
            # captured: try again after a pause, and if it still fails say why (pg_ctl's output, the log).
            started = subprocess.run(command, capture_output=True, text=True)
            if started.returncode == 0 or self.is_running():
                break
            time.sleep(1.0 + attempt)
        else:
            raise LocalPostgresError(f"PostgreSQL did not start on port {self.port}: {started.stderr.strip()}\n"
                                     f"{self.log_tail()}")
        self._wait_ready()
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            subprocess.run(_as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast",
                                            "-w", "stop"]), capture_output=True)
