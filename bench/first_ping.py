"""One definition of "first successful ping" for the container benchmarks (CNI and CNM)."""

from __future__ import annotations

import subprocess
import time


def first_ping(nsenter: list[str], ip: str, t0: float, timeout: float) -> float:
    """Seconds from `t0` until one echo from the namespace `nsenter` selects (its options, e.g.
    ["--net=/run/netns/x"] or ["-t", pid, "-n"]) to `ip` is answered."""
    while time.perf_counter() - t0 < timeout:
        r = subprocess.run(["nsenter", *nsenter, "ping", "-c1", "-W0.2", ip], capture_output=True)
        if r.returncode == 0:
            return time.perf_counter() - t0
    raise TimeoutError(f"no reply from {ip} within {timeout}s")
