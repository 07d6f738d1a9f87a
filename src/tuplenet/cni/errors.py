"""CNI errors: every failure leaves the plugin as this JSON on stdout with a non-zero exit status."""

from __future__ import annotations

# Codes 1-99 are the spec's (1.0.0 and 1.1.0); 100+ are ours (listed in docs/cni.md).
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50  # STATUS: the plugin cannot serve ADD now
INTERNAL = 100
NO_ADDRESS = 101  # the switch's subnet has no free address
ALREADY_ATTACHED = 102  # an lsp for this container and interface exists already (DEL it first)
OVS_FAILURE = 103
CHECK_FAILED = 104


class CniError(Exception):
    """A failure to report to the runtime: `code`, one-line `msg`, optional `details`."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details

    def to_json(self, cni_version: str) -> dict[str, object]:
        out: dict[str, object] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out
