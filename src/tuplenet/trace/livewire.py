"""Live-trace records in etcd, in 0.3's `communicate/` layout (reference §1.5): the command tpctl writes for
the agent holding the source port, and the result an agent writes for every trace point the marked packet
passes. Pure encode/decode: a record from etcd is untrusted, so decoding is strict, bounded and raises
WireError with one line instead of anything else.

Command: `communicate/push/<system-id>/cmd/<cmd_id>` = `cmd=pkt_trace,packet=<hex>,port=<lsp>,switch=<ls>`
(0.3's fields; `switch` is ours, 0.3 knew the port by name alone), leased 10 s.
Result: `communicate/cmd_result/<cmd_id>/<seq>/<system-id>` = 0.3's fields
`cmd_type=pkt_trace,table_id,datapath_id,src_port_id,dst_port_id,tun_src,output_iface_id` plus ours,
`hop=<base64url(zlib(JSON))>`: that host's part of the trace document (trace.report.hop_json), leased 30 s.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib

from ..model.addr import ModelError, validate_name
from ..model.codec import parse_value
from ..records import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CMD_ROOT = "communicate/push/"
RESULT_ROOT = "communicate/cmd_result/"
CMD_TTL = 10
RESULT_TTL = 30
MAX_CMD_ID = 0xFFFF
MAX_SEQ = 0xFFFF
MAX_FRAME = 9216  # a jumbo frame; a trace needs the headers only
MIN_FRAME = 14
MAX_VALUE = 256 * 1024  # an encoded record, and the decompressed hop detail at most 4 times that
MAX_HOP_JSON = 4 * MAX_VALUE
CMD_TYPE = "pkt_trace"


class WireError(ValueError):
    """A live-trace record that does not decode: one line naming what is wrong."""


@dataclass(frozen=True)
class Command:
    cmd_id: int
    switch: str
    port: str
    frame: bytes


@dataclass(frozen=True)
class Result:
    cmd_id: int
    seq: int
    chassis: str
    table_id: int
    datapath_id: int = 0
    src_port_id: int = 0
    dst_port_id: int = 0
    tun_src: int = 0
    output_iface_id: str = "<UNK_PORT>"
    hop: dict[str, Any] | None = None  # see hop_detail()


# ---------------------------------------------------------------------------------------------- keys
def command_prefix(system_id: str) -> str:
    return f"{CMD_ROOT}{system_id}/cmd/"


def command_key(system_id: str, cmd_id: int) -> str:
    return f"{command_prefix(system_id)}{cmd_id}"


def result_prefix(cmd_id: int) -> str:
    return f"{RESULT_ROOT}{cmd_id}/"


def result_key(cmd_id: int, seq: int, chassis: str) -> str:
    return f"{result_prefix(cmd_id)}{seq}/{chassis}"


def _uint(text: str, what: str, limit: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise WireError(f"{what}: {text[:32]!r} is not a number")
    v = int(text)
    if v > limit:
        raise WireError(f"{what}: {v} is over {limit}")
    return v


def _name(text: str, what: str) -> str:
    try:
        name = validate_name(text)
    except ModelError as exc:
        raise WireError(f"{what}: {exc}") from None
    if name != text or len(name) > 255:
        raise WireError(f"{what}: not a valid name")
    return name


# ---------------------------------------------------------------------------------------------- command
def encode_command(cmd: Command) -> str:
    return f"cmd={CMD_TYPE},packet={cmd.frame.hex()},port={cmd.port},switch={cmd.switch}"


def decode_command(key: str, value: str) -> Command:
    """A command key (relative to the store prefix) and its value -> Command."""
    rest = key[len(CMD_ROOT):] if key.startswith(CMD_ROOT) else None
    parts = rest.split("/") if rest is not None else []
    if len(parts) != 3 or parts[1] != "cmd":
        raise WireError(f"not a command key: {key[:80]!r}")
    cmd_id = _uint(parts[2], "command id", MAX_CMD_ID)
    if len(value) > MAX_VALUE:
        raise WireError("command too long")
    raw = parse_value(value)
    if raw.get("cmd") != CMD_TYPE:
        raise WireError(f"unknown command {raw.get('cmd', '')[:32]!r}")
    hexframe = raw.get("packet", "")
    if len(hexframe) % 2 or len(hexframe) > 2 * MAX_FRAME or len(hexframe) < 2 * MIN_FRAME:
        raise WireError(f"packet: want {MIN_FRAME}..{MAX_FRAME} bytes in hex")
    try:
        frame = bytes.fromhex(hexframe)
    except ValueError:
        raise WireError("packet: not hexadecimal") from None
    if not all(c in "0123456789abcdefABCDEF" for c in hexframe):
        raise WireError("packet: not hexadecimal")
    port = _name(raw.get("port", ""), "port")
    switch = _name(raw["switch"], "switch") if raw.get("switch") else ""
    return Command(cmd_id, switch, port, frame)


# ---------------------------------------------------------------------------------------------- result
_NUMS = (("table_id", 255), ("datapath_id", 0xFFFFFF), ("src_port_id", 0xFFFF), ("dst_port_id", 0xFFFF),
         ("tun_src", 0xFFFFFFFF))


def encode_result(r: Result) -> str:
    fields = [f"cmd_type={CMD_TYPE}", *(f"{n}={getattr(r, n)}" for n, _ in _NUMS),
              f"output_iface_id={r.output_iface_id}"]
    if r.hop is not None:
        blob = zlib.compress(json.dumps(r.hop, separators=(",", ":")).encode(), 6)
        fields.append("hop=" + base64.urlsafe_b64encode(blob).decode().rstrip("="))
    return ",".join(fields)


def decode_result(key: str, value: str) -> Result:
    """A result key (relative to the store prefix) and its value -> Result (hop checked by check_hop)."""
    rest = key[len(RESULT_ROOT):] if key.startswith(RESULT_ROOT) else None
    parts = rest.split("/") if rest is not None else []
    if len(parts) != 3:
        raise WireError(f"not a result key: {key[:80]!r}")
    cmd_id = _uint(parts[0], "command id", MAX_CMD_ID)
    seq = _uint(parts[1], "sequence", MAX_SEQ)
    chassis = _name(parts[2], "chassis")
    if len(value) > MAX_VALUE:
        raise WireError("result too long")
    raw = parse_value(value)
    if raw.get("cmd_type") != CMD_TYPE:
        raise WireError(f"unknown result type {raw.get('cmd_type', '')[:32]!r}")
    nums = {n: _uint(raw.get(n, "0"), n, limit) for n, limit in _NUMS}
    iface = raw.get("output_iface_id", "<UNK_PORT>")
    if len(iface) > 255 or not iface.isprintable():
        raise WireError("output_iface_id: not printable")
    hop = _decode_hop(raw["hop"]) if "hop" in raw else None
    return Result(cmd_id, seq, chassis, output_iface_id=iface, hop=hop, **nums)


def _decode_hop(text: str) -> dict[str, Any]:
    try:
        blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        d = zlib.decompressobj()
        data = d.decompress(blob, MAX_HOP_JSON)
        if d.unconsumed_tail or not d.eof:
            raise WireError("hop: truncated or too large")
        doc = json.loads(data)
    except (binascii.Error, ValueError, zlib.error, RecursionError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"hop: {type(exc).__name__}") from None
    return check_hop(doc)


# What a hop detail holds, and the type of every field the report reads (a record from etcd may be anything).
_HOP_KEYS = {"chassis": str, "in_port": int, "in_port_name": str, "steps": list}
_STEP_KEYS = {"table": int, "stage": str, "owner": str, "datapath": str, "datapath_type": str,
              "from_port": str, "to_port": str, "depth": int, "events": list}
_EVENT_KEYS = {"kind": str, "text": str}
_OUTCOME_KEYS = {"result": str}
_RESULTS = ("delivered", "physical", "controller", "drop")


def _typed(obj: Any, spec: dict[str, type], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise WireError(f"{what}: not an object")
    for k, t in spec.items():
        v = obj.get(k)
        if not isinstance(v, t) or (t is int and isinstance(v, bool)):
            raise WireError(f"{what}: {k} missing or not {t.__name__}")
    return obj


def _optional(obj: dict[str, Any], key: str, t: type, what: str) -> None:
    """`key` present, None or of type `t` (the report reads it either way)."""
    v = obj.get(key, ...)
    if v is ... or not (v is None or (isinstance(v, t) and not isinstance(v, bool))):
        raise WireError(f"{what}: {key} missing or not {t.__name__}")


def check_hop(doc: Any) -> dict[str, Any]:
    """The hop detail {"hop": hop_json, "outcomes": [...], "sends": [chassis], "packet": {..}, "summary": str,
    "source": str|null}, every field the report reads of the right type; WireError otherwise."""
    if isinstance(doc, dict) and "error" in doc:  # the agent could not run the command (bad port, frame)
        if not isinstance(doc["error"], str):
            raise WireError("hop: error not a string")
        return {"error": doc["error"]}
    if isinstance(doc, dict) and "switch_drop" in doc:  # the drop stage saw the marked packet
        drop = _typed(doc["switch_drop"], dict.fromkeys(("datapath", "datapath_type", "from_port", "to_port"), str),
                      "switch_drop")
        return {"switch_drop": {k: drop[k] for k in ("datapath", "datapath_type", "from_port", "to_port")}}
    _typed(doc, {"hop": dict, "outcomes": list, "sends": list}, "hop")
    hop = _typed(doc["hop"], _HOP_KEYS, "hop")
    _optional(hop, "from_chassis", str, "hop")
    for st in hop["steps"]:
        _typed(st, _STEP_KEYS, "step")
        _optional(st, "priority", int, "step")
        _optional(st, "rule", str, "step")
        for ev in st["events"]:
            _typed(ev, _EVENT_KEYS, "event")
    for o in doc["outcomes"]:
        _typed(o, _OUTCOME_KEYS, "outcome")
        need = ("chassis", "switch", "port") if o["result"] in ("delivered", "physical") else ("chassis", "reason")
        if o["result"] not in _RESULTS or not all(isinstance(o.get(k), str) for k in need):
            raise WireError(f"outcome: {o['result'][:32]!r} without {', '.join(need)}")
    if not all(isinstance(s, str) for s in doc["sends"]):
        raise WireError("hop: sends not names")
    for k in ("summary", "source"):
        if doc.get(k) is not None and not isinstance(doc[k], str):
            raise WireError(f"hop: {k} not a string")
    if doc.get("packet") is not None and not isinstance(doc["packet"], dict):
        raise WireError("hop: packet not an object")
    return doc
