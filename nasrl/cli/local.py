"""Start nasrl services as local processes on loopback (for ``nasrl demo`` and the tests).

A service is started with ``--port 0``; the port it bound is read from its log line
``listening on HOST:PORT``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["LocalService", "ServiceFailed"]

_LISTENING = re.compile(r"listening on (\S+):(\d+)")


class ServiceFailed(RuntimeError):
    """A local service exited or did not come up; the message carries its log's tail."""


class LocalService:
    """``python -m MODULE ARGS --port 0`` as a child process, logging to a file."""

    def __init__(
        self,
        module: str,
        args: list[str],
        log_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.module = module
        self.args = list(args)
        folder = Path(log_dir or tempfile.mkdtemp(prefix="nasrl-"))
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / f"{module}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LocalService:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.module,
                    "--host",
                    "127.0.0.1",
                    *self.args,
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.log())
            if match:
                self.port = int(match.group(2))
                return self
            if self.process.poll() is not None:
                raise ServiceFailed(
                    f"{self.module} exited with {self.process.returncode}:\n{self.log()[-2000:]}"
                )
            time.sleep(0.05)
        self.kill()
        raise ServiceFailed(
            f"{self.module} did not start within {timeout:.0f}s:\n{self.log()[-2000:]}"
        )

    def restart(self, timeout: float = 60.0) -> LocalService:
        """Start again on the same port (after ``kill`` or ``stop``)."""
        return self.start(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in ``timeout``. Returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalService:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
