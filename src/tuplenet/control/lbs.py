"""Load balancers (`entity_view/LS|LR/<dp>/lb/<name>`, model/lb.py): add, delete, list, get, backends.

Every write is one transaction guarded by the switch/router's existence and the record's revision; a
second load balancer with the same VIP, port and protocol on one datapath is refused (one of them would
silently win in the datapath).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tuplenet.model import ModelError, decode, entity_key, validate_name
from tuplenet.model.lb import (
    KINDS,
    MAX_BACKENDS,
    Backend,
    LoadBalancer,
    decode_lb,
    parse_backend,
)
from tuplenet.store import Compare, Op

from .base import Core, Plan, checked, not_found
from .errors import AlreadyExists, ControlError, InvalidArgument, NotFound

OPTIONS = ("protocol", "affinity", "check", "interval", "rise", "fall")


def dp_kind_of(text: str) -> str:
    """`ls`/`LS`/`switch` -> "LS", `lr`/`LR`/`router` -> "LR"."""
    t = text.strip().lower()
    if t in ("ls", "switch"):
        return "LS"
    if t in ("lr", "router"):
        return "LR"
    raise InvalidArgument(f"datapath kind must be ls or lr: {text!r}")


def build(dp_kind: str, dp: str, name: str, vip_port: str, backends: str = "",
          options: dict[str, str] | None = None) -> LoadBalancer:
    """A validated record from tpctl-style arguments: VIP:PORT, backends `ip:port` separated by ',' or ';',
    options as record fields (protocol, affinity, check, interval, rise, fall)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidArgument(f"unknown option {unknown[0]} (known: {', '.join(OPTIONS)})")
    vip, sep, port = vip_port.strip().rpartition(":")
    if not sep:
        raise InvalidArgument(f"VIP must be IP:PORT: {vip_port!r}")
    raw = {"vip": vip, "port": port, "backends": backends.replace(",", ";"), **options}
    if any("," in v for v in raw.values()):
        raise InvalidArgument("',' is not allowed in option values")
    name = checked(validate_name, name)
    dp = checked(validate_name, dp)
    try:
        return decode_lb(KINDS[dp_kind], (dp, name), raw)
    except ModelError as exc:
        raise InvalidArgument(str(exc)) from None


class Lbs:
    """Load balancer records: validation, then one guarded transaction."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def add_lb(self, lb: LoadBalancer) -> LoadBalancer:
        key, dp_key = lb.key, entity_key(lb.dp_kind, (lb.dp,))

        def plan() -> Plan:
            (have, dp_kv, siblings), _ = self.core.read(Op.get(key), Op.get(dp_key),
                                                        Op.get_prefix(_prefix(lb.dp_kind, lb.dp)))
            if have is not None:
                raise AlreadyExists(f"load balancer {lb.name} exists on {_noun(lb.dp_kind)} {lb.dp}")
            if dp_kv is None:
                raise not_found(lb.dp_kind, (lb.dp,))
            for kv in siblings:
                other = self.core.decode_kv(kv)
                if isinstance(other, LoadBalancer) and (other.vip, other.port, other.protocol) == (
                        lb.vip, lb.port, lb.protocol):
                    raise AlreadyExists(f"{lb.vip}:{lb.port}/{lb.protocol} is already load balancer {other.name} "
                                        f"of {_noun(lb.dp_kind)} {lb.dp}")
            return Plan([Compare.missing(key), Compare.mod_revision(dp_key, "=", dp_kv.mod_revision)],
                        [Op.put(key, lb.to_value())], lb)

        return self.core.commit(plan)

    def delete_lb(self, dp_kind: str, dp: str, name: str) -> LoadBalancer | str:
        key = entity_key(KINDS[dp_kind], (dp, name))

        def plan() -> Plan:
            kv = self.core.store.get(key)
            if kv is None:
                raise _not_found(dp_kind, dp, name)
            try:
                result: Any = decode(KINDS[dp_kind], (dp, name), kv.value)
            except ModelError:
                result = name  # a bad record can still be deleted
            return Plan([Compare.mod_revision(key, "=", kv.mod_revision)], [Op.delete(key)], result)

        return self.core.commit(plan)

    def list_lbs(self, dp_kind: str, dp: str) -> list[LoadBalancer]:
        (dp_kv, kvs), _ = self.core.read(Op.get(entity_key(dp_kind, (dp,))), Op.get_prefix(_prefix(dp_kind, dp)))
        if dp_kv is None:
            raise not_found(dp_kind, (dp,))
        return self.core.decode_all(kvs, KINDS[dp_kind])

    def get_lb(self, dp_kind: str, dp: str, name: str) -> LoadBalancer:
        kv = self.core.store.get(entity_key(KINDS[dp_kind], (dp, name)))
        if kv is None:
            raise _not_found(dp_kind, dp, name)
        try:
            return decode(KINDS[dp_kind], (dp, name), kv.value)  # type: ignore[return-value]
        except ModelError as exc:
            raise ControlError(f"bad record in etcd: {exc}") from None

    def out_of_service(self, dp_kind: str, dp: str) -> dict[str, list[str]]:
        """Load balancer name -> its backends (`ip:port`) with a health verdict key, in key order."""
        from tuplenet.model.lb import HEALTH_PREFIX, parse_health_key

        kvs, _ = self.core.store.get_prefix(f"{HEALTH_PREFIX}{dp_kind}/{dp}/")
        out: dict[str, list[str]] = {}
        for kv in kvs:
            try:
                hk = parse_health_key(kv.key)
            except ModelError:
                continue
            out.setdefault(hk.lb, []).append(hk.backend.text())
        return out

    def change_backends(self, dp_kind: str, dp: str, name: str, add: tuple[str, ...] = (),
                        remove: tuple[str, ...] = ()) -> LoadBalancer:
        """Add and/or remove backends (`ip:port`); adding one present or removing one absent is an error."""
        plus = [checked(parse_backend, b) for b in add]
        minus = [checked(parse_backend, b) for b in remove]
        key = entity_key(KINDS[dp_kind], (dp, name))

        def plan() -> Plan:
            kv = self.core.store.get(key)
            if kv is None:
                raise _not_found(dp_kind, dp, name)
            try:
                lb: LoadBalancer = decode(KINDS[dp_kind], (dp, name), kv.value)  # type: ignore[assignment]
            except ModelError as exc:
                raise ControlError(f"bad record in etcd: {exc}") from None
            backends: list[Backend] = list(lb.backends)
            for b in minus:
                if b not in backends:
                    raise NotFound(f"backend {b.text()} is not in load balancer {name}")
                backends.remove(b)
            for b in plus:
                if b in backends:
                    raise AlreadyExists(f"backend {b.text()} is already in load balancer {name}")
                backends.append(b)
            if len(backends) > MAX_BACKENDS:
                raise InvalidArgument(f"at most {MAX_BACKENDS} backends")
            new = replace(lb, backends=tuple(backends))
            return Plan([Compare.mod_revision(key, "=", kv.mod_revision)], [Op.put(key, new.to_value())], new)

        return self.core.commit(plan)


def _prefix(dp_kind: str, dp: str) -> str:
    return f"entity_view/{dp_kind}/{dp}/lb/"


def _noun(dp_kind: str) -> str:
    return "switch" if dp_kind == "LS" else "router"


def _not_found(dp_kind: str, dp: str, name: str) -> NotFound:
    return NotFound(f"unable to get load balancer {name} of {_noun(dp_kind)} {dp}: unable to read key "
                    f"/{entity_key(KINDS[dp_kind], (dp, name))}: key not found")
