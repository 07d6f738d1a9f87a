"""Launch and control one `tuplenet` agent process for a simulated host.

Tests restart, kill and inspect the agent, so the process is owned here (Popen, stopped by pid) with its
console output captured next to the agent's own log directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence


class AgentProcess:
    """One agent process: argv and env are fixed at construction so `restart()` reproduces it exactly."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], logdir: str, name: str = "agent") -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.logdir = logdir
        self.logfile = os.path.join(logdir, "tuplenet.log")  # the agent's own log (0.3 name)
        self.console = os.path.join(logdir, f"{name}.console")  # captured stdout + stderr
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        if self.alive():
            raise RuntimeError(f"agent already running as pid {self.pid}")
        os.makedirs(self.logdir, exist_ok=True)
        with open(self.console, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("agent not started")
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit status."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL at once: the 'agent crashed' case, leaving flows and ports behind."""
        return self._signal(signal.SIGKILL, 5.0)

    def restart(self, timeout: float = 5.0) -> AgentProcess:
        self.stop(timeout)
        return self.start()

    def _signal(self, sig: int, timeout: float) -> int | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout)

    def output(self, limit: int = 20000) -> str:
        """The tail of the console capture and the agent log, for assertion messages."""
        parts = []
        for path in (self.console, self.logfile):
            try:
                with open(path, "rb") as f:
                    f.seek(max(0, os.path.getsize(path) - limit))
                    parts.append(f"== {path} ==\n" + f.read().decode(errors="replace"))
            except OSError:
                continue
        return "\n".join(parts)

    def wait_exit(self, timeout: float = 5.0) -> int:
        """Wait for the agent to exit on its own (e.g. a bad option) and return its status."""
        if self.proc is None:
            raise RuntimeError("agent not started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"agent pid {self.proc.pid} still running after {timeout}s") from None
