"""A benchmark's private directory (etcd data, OVS dbs and logs, sockets), removed when the process exits.

Runs at 1,000 or 20,000 ports leave 60-200 MB each; KEEP_BENCH_DIR=1 keeps the directory for a post-mortem.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile


def bench_dir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    if not os.environ.get("KEEP_BENCH_DIR"):
        atexit.register(shutil.rmtree, path, True)  # after every finally: the daemons are stopped by then
    return path
