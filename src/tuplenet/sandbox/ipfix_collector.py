"""A small IPFIX collector (RFC 7011) for tests and operators: UDP in, decoded flow records out.

Why our own: the agent configures bridge sampling on br-int (IPFIX_COLLECTOR), and a test must read what
ovs-vswitchd actually exports - addresses, protocol, ports, packet and octet counts - without a third-party
collector on the host. The decoder is pure (`Decoder.decode`) and raises only `IpfixError` for a datagram that
is not valid IPFIX; a bad datagram changes nothing (templates it carried are not learnt). `IpfixCollector` runs
it on a UDP socket in a thread. `python -m tuplenet.sandbox.ipfix_collector --listen 127.0.0.1:4739` prints
one JSON line per record.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

VERSION = 10
HEADER = struct.Struct("!HHIII")  # version, length, export time, sequence number, observation domain id
SET_HEADER = struct.Struct("!HH")
TEMPLATE_SET, OPTIONS_TEMPLATE_SET, FIRST_DATA_SET = 2, 3, 256
VARIABLE = 0xFFFF
MAX_TEMPLATES = 4096  # per decoder: a flood of distinct template ids must not grow memory without bound

# Information elements (IANA registry) worth a name here: what OVS bridge sampling exports and tests read.
# kind: "u" unsigned integer (reduced-size encoding allowed), "ip4"/"ip6"/"mac" addresses of fixed length,
# "s" a string (UTF-8). Other IEs are kept as raw bytes under "ie<id>" ("ie<enterprise>.<id>").
_IES: dict[int, tuple[str, str]] = {
    1: ("octetDeltaCount", "u"), 2: ("packetDeltaCount", "u"), 4: ("protocolIdentifier", "u"),
    5: ("ipClassOfService", "u"), 6: ("tcpControlBits", "u"), 7: ("sourceTransportPort", "u"),
    8: ("sourceIPv4Address", "ip4"), 10: ("ingressInterface", "u"), 11: ("destinationTransportPort", "u"),
    12: ("destinationIPv4Address", "ip4"), 14: ("egressInterface", "u"), 27: ("sourceIPv6Address", "ip6"),
    28: ("destinationIPv6Address", "ip6"), 32: ("icmpTypeCodeIPv4", "u"), 56: ("sourceMacAddress", "mac"),
    58: ("vlanId", "u"), 61: ("flowDirection", "u"), 80: ("destinationMacAddress", "mac"),
    85: ("octetTotalCount", "u"), 86: ("packetTotalCount", "u"), 136: ("flowEndReason", "u"),
    138: ("observationPointId", "u"), 149: ("observationDomainId", "u"), 152: ("flowStartMilliseconds", "u"),
    153: ("flowEndMilliseconds", "u"), 176: ("icmpTypeIPv4", "u"), 177: ("icmpCodeIPv4", "u"),
    192: ("ipTTL", "u"), 256: ("ethernetType", "u"), 60: ("ipVersion", "u"), 82: ("interfaceName", "s"),
    83: ("interfaceDescription", "s"),
}
_ADDR_LEN = {"ip4": 4, "ip6": 16, "mac": 6}


class IpfixError(ValueError):
    """The datagram is not a valid IPFIX message (the message names what is wrong and where)."""


class Field(NamedTuple):
    ie: int
    length: int  # VARIABLE: variable length
    enterprise: int = 0

    @property
    def name(self) -> str:
        if self.enterprise:
            return f"ie{self.enterprise}.{self.ie}"
        return _IES.get(self.ie, (f"ie{self.ie}", ""))[0]

    def decode(self, raw: bytes) -> Any:
        kind = "" if self.enterprise else _IES.get(self.ie, ("", ""))[1]
        if kind == "u":
            return int.from_bytes(raw, "big")
        if kind == "ip4":
            return str(ipaddress.IPv4Address(raw))
        if kind == "ip6":
            return str(ipaddress.IPv6Address(raw))
        if kind == "mac":
            return ":".join(f"{b:02x}" for b in raw)
        if kind == "s":
            return raw.decode("utf-8", "replace")
        return raw


class Template(NamedTuple):
    template_id: int
    fields: tuple[Field, ...]
    scope_count: int = 0  # > 0: an options template

    @property
    def min_length(self) -> int:
        return sum(1 if f.length == VARIABLE else f.length for f in self.fields)


class Record(NamedTuple):
    """One data record: the exporter's observation domain, its template, and fields by IE name (an IE the
    template repeats, such as OVS's ingress and egress interfaceName, gets "#2", "#3" on later copies)."""

    domain: int
    template_id: int
    fields: dict[str, Any]
    options: bool = False

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


class Message(NamedTuple):
    export_time: int
    sequence: int
    domain: int
    templates: tuple[int, ...]  # template ids defined (or withdrawn) by this message
    records: tuple[Record, ...]
    unknown_sets: int  # data sets whose template is not known (yet): skipped, as RFC 7011 §8 says


def _fields(body: bytes, pos: int, end: int, count: int, where: str) -> tuple[tuple[Field, ...], int]:
    out = []
    for _ in range(count):
        if pos + 4 > end:
            raise IpfixError(f"{where}: field specifier runs past the set")
        ie, length = SET_HEADER.unpack_from(body, pos)
        pos += 4
        enterprise = 0
        if ie & 0x8000:
            if pos + 4 > end:
                raise IpfixError(f"{where}: enterprise number runs past the set")
            ie &= 0x7FFF
            (enterprise,) = struct.unpack_from("!I", body, pos)
            pos += 4
        f = Field(ie, length, enterprise)
        kind = "" if enterprise else _IES.get(ie, ("", ""))[1]
        if length == 0:
            raise IpfixError(f"{where}: {f.name} has length 0")
        if kind in _ADDR_LEN and length != _ADDR_LEN[kind]:
            raise IpfixError(f"{where}: {f.name} has length {length}, expected {_ADDR_LEN[kind]}")
        if kind == "u" and length > 8:
            raise IpfixError(f"{where}: {f.name} has length {length}, at most 8 for an unsigned integer")
        out.append(f)
    return tuple(out), pos


class Decoder:
    """Templates learnt per (exporter, observation domain, template id), and message decoding."""

    def __init__(self) -> None:
        self.templates: dict[tuple[Hashable, int, int], Template] = {}

    def decode(self, data: bytes, source: Hashable = None) -> Message:
        """Decode one IPFIX message (one UDP datagram); `source` tells exporters apart (their address).
        Raises IpfixError, and then learns nothing from it."""
        data = bytes(data)
        if len(data) < HEADER.size:
            raise IpfixError(f"message of {len(data)} bytes is shorter than the 16-byte header")
        version, length, export_time, seq, domain = HEADER.unpack_from(data)
        if version != VERSION:
            raise IpfixError(f"version {version}, expected {VERSION}")
        if length != len(data):
            raise IpfixError(f"header length {length} but the datagram has {len(data)} bytes")
        templates = dict(self.templates)  # applied only once the whole message decodes
        defined: list[int] = []
        records: list[Record] = []
        unknown = 0
        pos = HEADER.size
        while pos < length:
            if pos + 4 > length:
                raise IpfixError(f"offset {pos}: truncated set header")
            set_id, set_len = SET_HEADER.unpack_from(data, pos)
            where = f"set {set_id} at offset {pos}"
            if set_len < 4 or pos + set_len > length:
                raise IpfixError(f"{where}: bad set length {set_len}")
            body_end = pos + set_len
            body = pos + 4
            if set_id in (TEMPLATE_SET, OPTIONS_TEMPLATE_SET):
                options = set_id == OPTIONS_TEMPLATE_SET
                for t in self._templates(data, body, body_end, options, where):
                    defined.append(t.template_id)
                    if t.template_id == set_id:  # withdraw all (options) templates of this domain
                        for k in [k for k, v in templates.items() if k[:2] == (source, domain)
                                  and (v.scope_count > 0) == options]:
                            del templates[k]
                    elif t.fields:
                        templates[(source, domain, t.template_id)] = t
                    else:
                        templates.pop((source, domain, t.template_id), None)
                if len(templates) > MAX_TEMPLATES:
                    raise IpfixError(f"{where}: more than {MAX_TEMPLATES} templates")
            elif set_id >= FIRST_DATA_SET:
                tpl = templates.get((source, domain, set_id))
                if tpl is None:
                    unknown += 1
                else:
                    records += self._records(data, body, body_end, tpl, domain, where)
            elif set_id < TEMPLATE_SET:
                raise IpfixError(f"{where}: set id {set_id} is not used in IPFIX")
            # 4..255: reserved for future use; skipped
            pos = body_end
        self.templates = templates
        return Message(export_time, seq, domain, tuple(defined), tuple(records), unknown)

    @staticmethod
    def _templates(data: bytes, pos: int, end: int, options: bool, where: str) -> list[Template]:
        """Template records of one set; a withdrawal is a Template without fields (id = the set id:
        withdraw all)."""
        out = []
        while end - pos >= 4:
            tid, count = SET_HEADER.unpack_from(data, pos)
            here = f"{where}, template {tid}"
            if tid == 0 and not any(data[pos:end]):
                break  # zero padding
            if count == 0:  # withdrawal: template id and a zero count only, in both kinds of set
                if tid < FIRST_DATA_SET and tid != (OPTIONS_TEMPLATE_SET if options else TEMPLATE_SET):
                    raise IpfixError(f"{here}: withdrawal of a template id below {FIRST_DATA_SET}")
                out.append(Template(tid, ()))
                pos += 4
                continue
            if tid < FIRST_DATA_SET:
                raise IpfixError(f"{here}: template id below {FIRST_DATA_SET}")
            scope = 0
            pos += 4
            if options:
                if pos + 2 > end:
                    raise IpfixError(f"{here}: scope field count runs past the set")
                (scope,) = struct.unpack_from("!H", data, pos)
                pos += 2
                if not 1 <= scope <= count:
                    raise IpfixError(f"{here}: scope field count {scope} not in 1..{count}")
            fields, pos = _fields(data, pos, end, count, here)
            out.append(Template(tid, fields, scope))
        return out

    @staticmethod
    def _records(data: bytes, pos: int, end: int, tpl: Template, domain: int, where: str) -> list[Record]:
        out = []
        need = tpl.min_length
        while end - pos >= need:  # shorter rest: padding
            values: dict[str, Any] = {}
            for f in tpl.fields:
                n = f.length
                if n == VARIABLE:
                    if pos >= end:
                        raise IpfixError(f"{where}: variable-length {f.name} runs past the set")
                    n = data[pos]
                    pos += 1
                    if n == 255:
                        if pos + 2 > end:
                            raise IpfixError(f"{where}: variable-length {f.name} runs past the set")
                        (n,) = struct.unpack_from("!H", data, pos)
                        pos += 2
                if pos + n > end:
                    raise IpfixError(f"{where}: {f.name} runs past the set")
                name = f.name
                if name in values:
                    name = next(f"{name}#{i}" for i in range(2, len(values) + 3) if f"{name}#{i}" not in values)
                values[name] = f.decode(data[pos:pos + n])
                pos += n
            out.append(Record(domain, tpl.template_id, values, tpl.scope_count > 0))
        return out


class IpfixCollector:
    """UDP listener decoding IPFIX into `records()` (`keep` False: only to the callback, for long runs); bad
    datagrams are counted in `errors` (the last 100 kept), never fatal."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, keep: bool = True) -> None:
        self.keep = keep
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.decoder = Decoder()
        self.messages = 0
        self.errors: list[str] = []
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """ip:port, as IPFIX_COLLECTOR takes it."""
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def start(self, on_record: Callable[[Record], None] | None = None) -> IpfixCollector:
        self._thread = threading.Thread(target=self._run, args=(on_record,), name="ipfix-collector",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self, on_record: Callable[[Record], None] | None) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                msg = self.decoder.decode(data, addr)
            except IpfixError as exc:
                with self._lock:
                    self.errors.append(f"{addr[0]}:{addr[1]}: {exc}")
                    del self.errors[:-100]
                continue
            with self._lock:
                self.messages += 1
                if self.keep:
                    self._records.extend(msg.records)
            if on_record is not None:
                for r in msg.records:
                    on_record(r)

    def records(self, pred: Callable[[Record], bool] | None = None) -> list[Record]:
        with self._lock:
            return [r for r in self._records if pred is None or pred(r)]

    def wait_records(self, pred: Callable[[Record], bool], count: int = 1, timeout: float = 10.0) -> list[Record]:
        """Block until at least `count` records satisfy `pred`; TimeoutError (with what arrived) otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.records(pred)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {count} IPFIX records after {timeout:.1f}s "
                                   f"({self.messages} messages, {len(self._records)} records, "
                                   f"errors: {self.errors[-3:]})")
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.sock.close()

    def __enter__(self) -> IpfixCollector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _jsonable(r: Record) -> dict[str, Any]:
    return {"domain": r.domain, "template": r.template_id, **({"options": True} if r.options else {}),
            **{k: v.hex() if isinstance(v, bytes) else v for k, v in r.fields.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tuplenet.sandbox.ipfix_collector",
                                 description="Print the IPFIX records sent to a UDP address, one JSON line each.")
    ap.add_argument("--listen", default="127.0.0.1:4739", help="ip:port to listen on (default %(default)s)")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        if not 0 <= int(port) <= 65535:
            raise ValueError
        coll = IpfixCollector(host, int(port), keep=False)
    except (ValueError, OSError) as exc:
        print(f"ipfix_collector: cannot listen on {args.listen!r}: {exc or 'expected ip:port'}", file=sys.stderr)
        return 2
    coll.start(lambda r: print(json.dumps(_jsonable(r)), flush=True))
    print(f"listening on {coll.address}", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        coll.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
