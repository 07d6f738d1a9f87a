"""The value of the import marker (`IMPORT_MARKER_KEY`): which import is writing, since when (pure).

Written by tpctl import, read by tpctl (to resume or refuse a different import) and by every agent (to
hold topology changes, and to call a marker stale). Anyone can write etcd, so parsing never raises.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from ..records import dataclass
from .addr import ModelError, parse_uint
from .codec import one_line, parse_value
from .entities import format_value


@dataclass(frozen=True)
class ImportMarker:
    """Who is importing what: the records' digest and count, batches written, start time, host and pid."""

    digest: str
    records: int = 0
    batches: int = 0
    started: int = 0  # unix seconds (the importing host's clock)
    host: str = ""
    pid: int = 0

    def to_value(self) -> str:
        return format_value([("digest", self.digest), ("records", str(self.records)),
                             ("batches", str(self.batches)), ("started", str(self.started)),
                             ("host", self.host), ("pid", str(self.pid))])

    @classmethod
    def parse(cls, value: str) -> ImportMarker:
        raw = parse_value(value if isinstance(value, str) else "")

        def num(name: str) -> int:
            try:
                return parse_uint(raw.get(name, ""), 63)
            except ModelError:
                return 0

        return cls(one_line(raw.get("digest", "")), num("records"), num("batches"), num("started"),
                   one_line(raw.get("host", "")), num("pid"))

    def age(self, now: float | None = None) -> float:
        """Seconds since the import (re)started; 0 for a marker from the future (clock skew)."""
        return max(0.0, (time.time() if now is None else now) - self.started)

    def describe(self) -> str:
        try:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        except (OverflowError, OSError, ValueError):  # a hand-written marker from the far future
            when = f"at {self.started}"
        who = f" by {self.host} pid {self.pid}" if self.host else ""
        return f"{self.records} records, digest {self.digest or '?'}, started {when}{who}"


def records_digest(records: Iterable[tuple[str, str]], overwrite: bool) -> str:
    """Identity of an import: its records in key order and the overwrite flag (not the file's layout)."""
    import hashlib  # here, not at the top: hashlib loads OpenSSL, and only an import computes a digest

    h = hashlib.sha256(b"overwrite\n" if overwrite else b"create\n")
    for key, value in sorted(records):
        h.update(f"{key}\t{value}\n".encode())
    return h.hexdigest()[:16]
