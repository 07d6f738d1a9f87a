"""The CNI commands. Names are derived, never stored: the lsp is `lsp-<ifname>-<container id>` (0.3's name)
and the host veth a hash of both, so DEL and GC find every leftover of a crashed ADD without local state.

ADD order, chosen so the agent works while we do: the veth is created in the background while the lsp is
written (one etcd write, chassis already set), then the OVS port, address and routes inside the sandbox, and
last the wait for the agent's readiness mark. A failure undoes what was done, so an ADD error leaves nothing
behind (a write whose outcome etcd left unknown is undone too, as far as etcd lets us).
"""

from __future__ import annotations

from collections.abc import Callable

from . import links
from .errors import (
    ALREADY_ATTACHED,
    CHECK_FAILED,
    INTERNAL,
    INVALID_CONFIG,
    IO_FAILURE,
    NO_ADDRESS,
    NOT_AVAILABLE,
    TRY_AGAIN_LATER,
    CniError,
)
from .ovsdb import READY_KEY, Ovsdb
from .result import add_result, container_address
from .spec import Env, NetConf, ip_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar
    T = TypeVar("T")


def lsp_name(ifname: str, container_id: str) -> str:
    return f"lsp-{ifname}-{container_id}"


def host_names(container_id: str, ifname: str) -> tuple[str, str]:
    """(host veth name, its MAC): stable per (container, interface), 13 characters, locally administered."""
    try:  # the C module itself: hashlib would load OpenSSL first, a measurable share of start-up
        from _blake2 import blake2s
    except ImportError:  # pragma: no cover - other Python builds
        from hashlib import blake2s

    digest = blake2s(f"{container_id}/{ifname}".encode(), digest_size=8).digest()
    return "tp" + digest.hex()[:11], "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def etcd_store(conf: NetConf) -> Any:
    """The etcd client of `conf` (no request yet); CniError if the settings are unusable."""
    from types import SimpleNamespace

    from tuplenet.store import Store, StoreError
    from tuplenet.store.security import from_args

    names = ("cacert", "cert", "key", "user", "password")
    try:
        security = from_args(SimpleNamespace(**{n: conf.etcd_security.get(n) for n in names}), {})
        return Store(conf.etcd_endpoints, conf.etcd_prefix, timeout=conf.etcd_timeout, security=security)
    except StoreError as exc:  # bad endpoint syntax, unreadable certificates, user without password
        raise CniError(INVALID_CONFIG, f"etcd settings: {exc}") from None


def controller(conf: NetConf, store: Any = None) -> Any:
    """The control layer over `store` (a new one from `conf` if not given)."""
    from tuplenet.control import Controller

    return Controller(store if store is not None else etcd_store(conf))


def etcd(conf: NetConf, call: Callable[[], T]) -> T:
    """Run a control operation, translating its errors into CNI codes."""
    from tuplenet.control import AlreadyExists, Conflict, ControlError, InvalidArgument, NotFound
    from tuplenet.store import StoreError, Unavailable

    try:
        return call()
    except NotFound as exc:
        if f"switch {conf.switch}:" in str(exc) or "unable to get switch " in str(exc):
            raise CniError(INVALID_CONFIG, f"switch {conf.switch} does not exist in etcd "
                                           f"(prefix {conf.etcd_prefix})") from None
        raise CniError(INVALID_CONFIG, str(exc)) from None
    except AlreadyExists as exc:
        raise CniError(ALREADY_ATTACHED, f"{exc}: this container interface is attached already (DEL it first)") \
            from None
    except InvalidArgument as exc:
        code = NO_ADDRESS if "no free IP" in str(exc) else INVALID_CONFIG
        raise CniError(code, str(exc)) from None
    except Conflict as exc:
        code = NO_ADDRESS if "conflict with other IP" in str(exc) else TRY_AGAIN_LATER
        raise CniError(code, str(exc)) from None
    except ControlError as exc:
        raise CniError(INVALID_CONFIG, str(exc)) from None
    except Unavailable as exc:
        raise CniError(TRY_AGAIN_LATER, str(exc)) from None
    except StoreError as exc:
        raise CniError(IO_FAILURE, f"etcd: {exc}") from None


# ---- ADD ------------------------------------------------------------------------------------------------

def cmd_add(env: Env, conf: NetConf) -> dict[str, Any]:
    trace = Trace()
    name = lsp_name(env.ifname, env.container_id)
    host_if, host_mac = host_names(env.container_id, env.ifname)
    veth = links.Creation(host_if, host_mac, env.ifname, conf.mtu, env.netns)  # runs while etcd works
    ovs = Ovsdb(conf.ovsdb)
    released = False
    ctl = store = None
    try:
        chassis = ovs.system_id(conf.bridge)
        store = etcd_store(conf)
        store.preconnect()  # the handshake overlaps the control layer's import
        ctl = controller(conf, store)
        trace("start")
        if not conf.subnet:
            switch_subnet(ctl, conf)
        try:
            lsp = etcd(conf, lambda: ctl.allocate_switch_port(conf.switch, name, conf.subnet,
                                                               ip_text(conf.gateway), chassis))
        except CniError as exc:
            if "unknown" in exc.msg:  # the txn may have been applied: do not leave its lsp behind
                try:
                    _delete_lsp(ctl, conf, conf.switch, name, chassis)
                except CniError as again:
                    exc.details = f"cleanup: {again.msg}"[:500]
            raise
        trace("etcd")
        try:
            veth.wait()
            ovs.add_port(conf.bridge, host_if, {
                "iface-id": name, "attached-mac": lsp.mac, "tpcni-network": conf.name,
                "tpcni-container": env.container_id, "tpcni-ifname": env.ifname, "tpcni-switch": conf.switch})
            trace("veth+port")
            links.configure(conf, env.netns, env.ifname, lsp.mac, lsp.ip, conf.tx_offload)
            trace("address")
            if conf.readiness_timeout > 0 and not ovs.wait_ready(host_if, conf.readiness_timeout):
                raise CniError(TRY_AGAIN_LATER, f"the TupleNet agent did not mark port {name} ready within "
                                                f"{conf.readiness_timeout:g}s (is the agent running on chassis "
                                                f"{chassis}?); nothing was kept")
            trace("ready")
        except BaseException as exc:
            released = True
            problems = _release(ovs, lambda: ctl, conf, host_if, name, chassis)
            if isinstance(exc, CniError) and problems:
                exc.details = ("cleanup: " + "; ".join(problems))[:500]
            raise
    except BaseException:
        if not released:  # failed before the lsp existed: only our veth can
            veth.undo()
        raise
    finally:
        ovs.close()
        if store is not None:  # also when the control layer failed to load (a leak per ADD in `tpcni serve`)
            store.close()
    trace.done()
    return add_result(conf, env.ifname, env.netns, host_if, host_mac, lsp.ip, lsp.mac)


class Trace:
    """Stage times on stderr when TPCNI_TRACE is set (for finding where an ADD spends its time)."""

    def __init__(self) -> None:
        import os
        import time

        self.on = bool(os.environ.get("TPCNI_TRACE"))
        self.clock = time.perf_counter
        self.last = self.clock()
        self.parts: list[str] = []

    def __call__(self, stage: str) -> None:
        if self.on:
            now = self.clock()
            self.parts.append(f"{stage}={(now - self.last) * 1000:.1f}ms")
            self.last = now

    def done(self) -> None:
        if self.on:
            import sys

            sys.stderr.write("tpcni trace: " + " ".join(self.parts) + "\n")


def switch_subnet(ctl: Any, conf: NetConf) -> None:
    """No subnet configured: take it (and the gateway) from the router port linked to the switch.
    Costs two more etcd reads per ADD; with several routers linked, the first by name wins."""
    from .spec import set_subnet

    lsps = etcd(conf, lambda: ctl.list_switch_ports(conf.switch))
    links_ = {p.peer: p.name for p in lsps if p.peer and not p.is_patch}
    kvs, _ = etcd(conf, lambda: ctl.store.get_prefix("entity_view/LR/"))
    for kv in sorted(kvs, key=lambda kv: kv.key):
        lrp = ctl.core.decode_kv(kv, "lrp")
        if lrp is not None and links_.get(lrp.name) == lrp.peer:
            set_subnet(conf, f"{lrp.ip}/{lrp.prefix}", None)
            return
    raise CniError(INVALID_CONFIG, f"subnet is not set and switch {conf.switch} has no router port to take it "
                                   "from (set \"subnet\" in the network configuration)")


def _release(ovs: Ovsdb, ctl_of: Callable[[], Any], conf: NetConf, host_if: str, name: str, chassis: str | None,
             switch: str | None = None, trace: Trace | None = None) -> list[str]:
    """Remove the OVS port, the veth and the lsp (if it is ours); every step runs, problems are returned (in
    that order). The veth goes in the background (its removal is mostly the kernel's wait, 15-25 ms) while the
    lsp is deleted in etcd. `ctl_of()` gives the controller: DEL builds it (the control layer's import) during
    that wait."""
    problems: list[str] = []
    try:
        ovs.del_port(host_if)
    except CniError as exc:
        problems.append(exc.msg)
    if trace is not None:
        trace("ovs_port")
    veth = links.Deletion(host_if)
    lsp_problem = None
    try:
        ctl = ctl_of()
        if trace is not None:
            trace("control")
        _delete_lsp(ctl, conf, switch or conf.switch, name, chassis)
    except CniError as exc:
        lsp_problem = exc.msg
    finally:
        if trace is not None:
            trace("lsp")
        try:
            veth.wait()
        except CniError as exc:
            problems.append(exc.msg)
        if trace is not None:
            trace("veth")
    return problems if lsp_problem is None else [*problems, lsp_problem]


def _delete_lsp(ctl: Any, conf: NetConf, switch: str, name: str, chassis: str | None) -> None:
    """Delete the lsp in one guarded txn, unless another chassis owns it now (it moved; not ours to drop)."""
    from tuplenet.control import NotFound

    def plan() -> Any:
        p = ctl.plan_port_delete("lsp", switch, name)
        owner = getattr(p.result, "chassis", None)
        if chassis is not None and owner not in (None, chassis):
            raise _Foreign(owner)
        return p

    try:
        etcd(conf, lambda: ctl.commit(plan))
    except CniError as exc:
        if "does not exist" not in exc.msg and "key not found" not in exc.msg:
            raise
    except (_Foreign, NotFound):
        pass


class _Foreign(Exception):
    """The lsp is bound to another chassis now."""


# ---- DEL ------------------------------------------------------------------------------------------------

def cmd_del(env: Env, conf: NetConf) -> None:
    """Idempotent: whatever of port, veth and lsp still exists is removed; missing pieces are fine."""
    trace = Trace()
    host_if, _ = host_names(env.container_id, env.ifname)
    ovs = Ovsdb(conf.ovsdb)
    store = None
    try:
        chassis = ovs.system_id(conf.bridge)
        trace("chassis")
        store = etcd_store(conf)  # unusable etcd settings fail here, before anything is removed
        store.preconnect()
        trace("etcd_client")
        problems = _release(ovs, lambda: controller(conf, store), conf, host_if,
                            lsp_name(env.ifname, env.container_id), chassis, trace=trace)
    finally:
        ovs.close()
        if store is not None:
            store.close()
    trace.done()
    if problems:
        raise CniError(TRY_AGAIN_LATER if any("unavailable" in p for p in problems) else IO_FAILURE,
                       "DEL incomplete: " + "; ".join(problems)[:400])


# ---- CHECK ----------------------------------------------------------------------------------------------

def cmd_check(env: Env, conf: NetConf) -> None:
    if conf.prev_result is None:
        raise CniError(INVALID_CONFIG, "CHECK needs prevResult")
    found = container_address(conf, env.ifname)
    if found is None:
        raise CniError(CHECK_FAILED, f"prevResult has no address on {env.ifname}")
    address, mac = found
    name = lsp_name(env.ifname, env.container_id)
    host_if, _ = host_names(env.container_id, env.ifname)
    ovs = Ovsdb(conf.ovsdb)
    try:
        chassis = ovs.system_id(conf.bridge)
        ctl = controller(conf)
        lsp = etcd(conf, lambda: ctl.get_switch_port(conf.switch, name))
        want_ip = address.split("/")[0]
        if (lsp.ip, lsp.mac, lsp.chassis) != (want_ip, mac, chassis):
            raise CniError(CHECK_FAILED, f"lsp {name} is ip={lsp.ip} mac={lsp.mac} chassis={lsp.chassis}, "
                                         f"expected ip={want_ip} mac={mac} chassis={chassis}")
        ports = {i["name"]: i for i in ovs.interfaces({"iface-id": name})}
        if host_if not in ports:
            raise CniError(CHECK_FAILED, f"OVS port {host_if} with iface-id {name} is missing")
        if conf.readiness_timeout > 0 and ports[host_if]["external_ids"].get(READY_KEY) != "true":
            raise CniError(CHECK_FAILED, f"OVS port {host_if} is not marked ready by the agent")
    finally:
        ovs.close()
    got_mac, addrs, _ = links.container_addresses(env.netns, env.ifname)
    if got_mac != mac or address not in addrs:
        raise CniError(CHECK_FAILED, f"{env.ifname} has mac {got_mac} and {addrs}, expected {mac} and {address}")
    # The MTU is not compared: a later plugin of the chain (tuning) may have changed it on purpose.


# ---- STATUS and GC (CNI 1.1) ----------------------------------------------------------------------------

def cmd_status(env: Env, conf: NetConf) -> None:
    ovs = Ovsdb(conf.ovsdb, timeout=5)
    try:
        ovs.system_id(conf.bridge)
        ctl = controller(conf)
        etcd(conf, lambda: ctl.get_switch(conf.switch))
    except CniError as exc:
        raise CniError(NOT_AVAILABLE, f"not ready for ADD: {exc.msg}") from None
    finally:
        ovs.close()


def cmd_gc(env: Env, conf: NetConf) -> None:
    """Release every attachment of this network on this host that the runtime no longer lists as valid."""
    valid = {lsp_name(ifname, cid) for cid, ifname in conf.valid_attachments}
    ovs = Ovsdb(conf.ovsdb)
    problems: list[str] = []
    try:
        chassis = ovs.system_id(conf.bridge)
        ctl = controller(conf)
        for iface in ovs.interfaces({"tpcni-network": conf.name}):
            ids = iface["external_ids"]
            name = ids.get("iface-id", "")
            if name in valid:
                continue
            problems += _release(ovs, lambda: ctl, conf, iface["name"], name, chassis, ids.get("tpcni-switch"))
        bound = {i["external_ids"].get("iface-id") for i in ovs.interfaces({})}
        for lsp in etcd(conf, lambda: ctl.list_switch_ports(conf.switch)):
            # An lsp of ours on this chassis with no local port at all: an ADD that died before its OVS port.
            if lsp.chassis == chassis and lsp.name.startswith("lsp-") and lsp.name not in valid \
                    and lsp.name not in bound and lsp.peer is None:
                try:
                    _delete_lsp(ctl, conf, conf.switch, lsp.name, chassis)
                except CniError as exc:
                    problems.append(exc.msg)
    finally:
        ovs.close()
    if problems:
        raise CniError(IO_FAILURE, "GC incomplete: " + "; ".join(problems)[:400])


COMMANDS: dict[str, Callable[[Env, NetConf], Any]] = {
    "ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc}


def run(env: Env, conf: NetConf) -> Any:
    try:
        return COMMANDS[env.command](env, conf)
    except KeyError:
        raise CniError(INTERNAL, f"no handler for {env.command}") from None
