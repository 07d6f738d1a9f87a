"""A daemon the sandbox has just started is ours even while the kernel is still exec'ing it."""
from __future__ import annotations

import subprocess
import sys

from tuplenet.sandbox.netns_util import owned_alive


def test_a_process_caught_inside_execve_is_still_ours() -> None:
    # Right after Popen returns, /proc/<pid>/cmdline is empty a few times in a hundred (the new image's
    # arguments are not mapped yet); wait_agents used to report such an agent as exited.
    marker = "/tmp/tn-owned-marker/"
    for _ in range(60):
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", marker])
        try:
            assert owned_alive(p.pid, marker)
        finally:
            p.kill()
            p.wait()


def test_a_dead_or_foreign_pid_is_not_ours() -> None:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert not owned_alive(p.pid, "/tmp/tn-owned-marker/")  # alive, but not started with our marker
    finally:
        p.kill()
        p.wait()
    assert not owned_alive(p.pid, "")  # reaped
    assert not owned_alive(None, "")
