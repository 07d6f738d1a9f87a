"""OFPT_ERROR decoding into readable names, and the exception the connection raises.

Only the errors we can plausibly provoke are named; anything else is shown as numbers, which
`ovs-ofctl ofp-print` can still explain.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

NX_VENDOR_ID = 0x00002320
OFPET_EXPERIMENTER = 0xFFFF

_TYPES = ["HELLO_FAILED", "BAD_REQUEST", "BAD_ACTION", "BAD_INSTRUCTION", "BAD_MATCH", "FLOW_MOD_FAILED",
          "GROUP_MOD_FAILED", "PORT_MOD_FAILED", "TABLE_MOD_FAILED", "QUEUE_OP_FAILED",
          "SWITCH_CONFIG_FAILED", "ROLE_REQUEST_FAILED", "METER_MOD_FAILED", "TABLE_FEATURES_FAILED",
          "BAD_PROPERTY", "ASYNC_CONFIG_FAILED", "FLOW_MONITOR_FAILED", "BUNDLE_FAILED"]

_CODES: dict[int, tuple[str, list[str]]] = {
    0: ("OFPHFC", ["INCOMPATIBLE", "EPERM"]),
    1: ("OFPBRC", ["BAD_VERSION", "BAD_TYPE", "BAD_MULTIPART", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "EPERM",
                   "BAD_LEN", "BUFFER_EMPTY", "BUFFER_UNKNOWN", "BAD_TABLE_ID", "IS_SLAVE", "BAD_PORT",
                   "BAD_PACKET", "MULTIPART_BUFFER_OVERFLOW"]),
    2: ("OFPBAC", ["BAD_TYPE", "BAD_LEN", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_OUT_PORT",
                   "BAD_ARGUMENT", "EPERM", "TOO_MANY", "BAD_QUEUE", "BAD_OUT_GROUP", "MATCH_INCONSISTENT",
                   "UNSUPPORTED_ORDER", "BAD_TAG", "BAD_SET_TYPE", "BAD_SET_LEN", "BAD_SET_ARGUMENT"]),
    3: ("OFPBIC", ["UNKNOWN_INST", "UNSUP_INST", "BAD_TABLE_ID", "UNSUP_METADATA", "UNSUP_METADATA_MASK",
                   "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_LEN", "EPERM", "DUP_INST"]),
    4: ("OFPBMC", ["BAD_TYPE", "BAD_LEN", "BAD_TAG", "BAD_DL_ADDR_MASK", "BAD_NW_ADDR_MASK",
                   "BAD_WILDCARDS", "BAD_FIELD", "BAD_VALUE", "BAD_MASK", "BAD_PREREQ", "DUP_FIELD",
                   "EPERM"]),
    5: ("OFPFMFC", ["UNKNOWN", "TABLE_FULL", "BAD_TABLE_ID", "OVERLAP", "EPERM", "BAD_TIMEOUT",
                    "BAD_COMMAND", "BAD_FLAGS"]),
    10: ("OFPSCFC", ["BAD_FLAGS", "BAD_LEN", "EPERM"]),
    14: ("OFPBPC", ["BAD_TYPE", "BAD_LEN", "BAD_VALUE", "TOO_MANY", "DUP_TYPE", "BAD_EXPERIMENTER",
                    "BAD_EXP_TYPE", "BAD_EXP_VALUE", "EPERM"]),
    17: ("OFPBFC", ["UNKNOWN", "EPERM", "BAD_ID", "BUNDLE_EXIST", "BUNDLE_CLOSED", "OUT_OF_BUNDLES",
                    "BAD_TYPE", "BAD_FLAGS", "MSG_BAD_LEN", "MSG_BAD_XID", "MSG_UNSUP", "MSG_CONFLICT",
                    "MSG_TOO_MANY", "MSG_FAILED", "TIMEOUT", "BUNDLE_IN_PROGRESS"]),
}

# Nicira errors in OpenFlow 1.2+: type OFPET_EXPERIMENTER, experimenter NX_VENDOR_ID, this exp_code.
NX_ERRORS = {
    2: "NXBRC_NXM_INVALID", 3: "NXBRC_NXM_BAD_TYPE", 4: "NXBRC_MUST_BE_ZERO", 10: "NXBRC_UNENCODABLE_ERROR",
    11: "NXBAC_MUST_BE_ZERO", 12: "NXFMFC_HARDWARE", 13: "NXFMFC_BAD_TABLE_ID",
    16: "NXTTMFC_BAD_COMMAND", 17: "NXTTMFC_BAD_OPT_LEN", 18: "NXTTMFC_BAD_FIELD_IDX",
    19: "NXTTMFC_TABLE_FULL", 20: "NXTTMFC_ALREADY_MAPPED", 21: "NXTTMFC_DUP_ENTRY", 22: "OFPBFC_BAD_VERSION",
    34: "NXR_NOT_SUPPORTED", 35: "NXR_STALE", 36: "NXST_NOT_CONFIGURED", 37: "NXFMFC_INVALID_TLV_FIELD",
}

_ERROR_BODY = struct.Struct("!HH")
_EXP_BODY = struct.Struct("!HHI")


@dataclass(frozen=True)
class ErrorMsg:
    """A decoded OFPT_ERROR: `name` is e.g. OFPBAC_BAD_OUT_PORT or NXTTMFC_ALREADY_MAPPED."""

    xid: int
    type: int
    code: int
    experimenter: int | None
    data: bytes  # (the start of) the request that failed

    @property
    def name(self) -> str:
        if self.type == OFPET_EXPERIMENTER:
            if self.experimenter == NX_VENDOR_ID and self.code in NX_ERRORS:
                return NX_ERRORS[self.code]
            return f"EXPERIMENTER(vendor={self.experimenter or 0:#x},code={self.code})"
        prefix, codes = _CODES.get(self.type, ("", []))
        if prefix and self.code < len(codes):
            return f"{prefix}_{codes[self.code]}"
        tname = _TYPES[self.type] if self.type < len(_TYPES) else str(self.type)
        return f"{tname}(code={self.code})"

    def __str__(self) -> str:
        return self.name

    @property
    def failed_type(self) -> int | None:
        """OpenFlow message type of the request that failed (from the echoed data)."""
        return self.data[1] if len(self.data) >= 8 else None


def parse_error(xid: int, body: bytes) -> ErrorMsg:
    """`body` is the OFPT_ERROR message after its 8-byte header. Never raises: a short body (a broken
    or hostile switch) still yields an ErrorMsg, with the missing fields zero."""
    if len(body) < 4:
        body = bytes(body) + bytes(4 - len(body))
    etype, code = _ERROR_BODY.unpack_from(body)
    if etype == OFPET_EXPERIMENTER and len(body) >= 8:
        _, code, exp = _EXP_BODY.unpack_from(body)
        return ErrorMsg(xid, etype, code, exp, bytes(body[8:]))
    return ErrorMsg(xid, etype, code, None, bytes(body[4:]))


class OpenFlowError(Exception):
    """A request failed: `errors` holds what the switch said; for a rejected apply() bundle,
    `rejected` pairs each offending Flow (or deleted cookie) with its error, and `applied` says whether the
    rest of the bundle went in (see OpenFlowConnection.apply)."""

    def __init__(self, message: str, errors: list[ErrorMsg] | None = None) -> None:
        self.errors = list(errors or [])
        self.rejected: list[tuple[object, ErrorMsg]] = []
        self.applied = False
        super().__init__(message)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.errors]


class OpenFlowTimeout(OpenFlowError):
    """No reply within the deadline."""


class OpenFlowDisconnected(OpenFlowError):
    """The connection went away while a request was outstanding (or before it was sent)."""
