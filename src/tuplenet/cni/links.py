"""The veth pair: host end on this host, container end inside the sandbox, configured with `ip -batch`.

Two process spawns per ADD (host side, then `nsenter --net` for the container side); `ip` accepts a netns
path after `netns`, so the container end is born inside the sandbox and never collides with host names.
Removal needs no process: one rtnetlink request from a thread (tuplenet.cni.netlink), so DEL imports
neither subprocess nor runs `ip`.
"""

from __future__ import annotations

import os
import threading

from . import netlink
from .errors import IO_FAILURE, UNKNOWN_CONTAINER, CniError
from .spec import NetConf, ip_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

IP = "ip"
NSENTER = "nsenter"


def _run(argv: list[str], script: str | None = None, what: str = "") -> str:
    import subprocess  # here, not at the top: DEL runs no process (~5 ms of its start)

    try:
        proc = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CniError(IO_FAILURE, f"{what or argv[0]}: {exc}") from None
    if proc.returncode != 0:
        err = " ".join(proc.stderr.split())[:300]
        raise CniError(IO_FAILURE, f"{what or ' '.join(argv)}: {err or f'exit status {proc.returncode}'}")
    return proc.stdout


def check_netns(netns: str) -> None:
    if not os.path.exists(netns):
        raise CniError(UNKNOWN_CONTAINER, f"network namespace {netns} does not exist")


class Creation:
    """`ip link add` of the pair running in the background (it overlaps the etcd work of ADD)."""

    def __init__(self, host_if: str, host_mac: str, ifname: str, mtu: int, netns: str) -> None:
        check_netns(netns)
        self.host_if, self.what = host_if, f"creating veth {host_if} / {ifname} in {netns}"
        self.created = False
        import subprocess

        script = (f"link add {host_if} address {host_mac} mtu {mtu} type veth peer name {ifname} mtu {mtu} "
                  f"netns {netns}\nlink set {host_if} up\n")
        try:
            self.proc: subprocess.Popen[str] | None = subprocess.Popen(
                [IP, "-batch", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True)
            assert self.proc.stdin is not None
            self.proc.stdin.write(script)
            self.proc.stdin.close()
        except OSError as exc:
            raise CniError(IO_FAILURE, f"{self.what}: {exc}") from None

    def wait(self) -> None:
        """Raise CniError if it failed (no host end is left behind then)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        err = proc.stderr.read() if proc.stderr else ""
        if proc.wait(timeout=30) != 0:
            if "File exists" not in err:  # never remove a pair that was there before us
                delete(self.host_if)
            raise CniError(IO_FAILURE, f"{self.what}: {' '.join(err.split())[:300]}")
        self.created = True

    def undo(self) -> None:
        """On a failure elsewhere: let it finish, then remove the pair if this run created it."""
        try:
            self.wait()
        except CniError:
            return
        delete(self.host_if)


def configure(conf: NetConf, netns: str, ifname: str, mac: str, address: str, tx_offload: bool) -> None:
    """Inside the sandbox: MAC, up, address, routes via the gateway (optionally tx offload off)."""
    lines = [f"link set {ifname} address {mac}", f"link set {ifname} up",
             f"addr add {address}/{conf.prefix_len} dev {ifname}"]
    for r in conf.routes:
        gw = ip_text(r.gw if r.gw is not None else conf.gateway)
        lines.append(f"route add {ip_text(r.dst)}/{r.prefix} via {gw} dev {ifname}")
    argv = [NSENTER, f"--net={netns}", IP, "-batch", "-"]
    _run(argv, "\n".join(lines) + "\n", f"configuring {ifname} in {netns}")
    if not tx_offload:
        _run([NSENTER, f"--net={netns}", "ethtool", "-K", ifname, "tx", "off"],
             what=f"turning tx offload off on {ifname}")


def delete(host_if: str) -> bool:
    """Remove the pair by its host end (the kernel removes the peer); False if it was not there."""
    return Deletion(host_if).wait()


class Deletion:
    """Removal of the pair by its host end (RTM_DELLINK), running on a thread until `wait()`: the kernel's
    wait for RCU grace periods overlaps whatever the caller does meanwhile."""

    TIMEOUT = 30.0

    def __init__(self, host_if: str) -> None:
        self.host_if = host_if
        self._outcome: bool | OSError = OSError("the removal did not run")  # until _run says otherwise
        self._thread = threading.Thread(target=self._run, name=f"del-{host_if}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._outcome = netlink.delete_link(self.host_if)
        except OSError as exc:
            self._outcome = exc
        except Exception as exc:  # noqa: BLE001 - never report a failed removal as "was not there"
            self._outcome = OSError(f"internal error: {exc!r}")

    def wait(self) -> bool:
        """True once removed, False if it was not there; CniError if the kernel refused otherwise."""
        self._thread.join(self.TIMEOUT)
        if self._thread.is_alive():
            raise CniError(IO_FAILURE, f"deleting {self.host_if}: no answer from the kernel in {self.TIMEOUT:g}s")
        if isinstance(self._outcome, OSError):
            raise CniError(IO_FAILURE, f"deleting {self.host_if}: {self._outcome.strerror or self._outcome}"[:300])
        return self._outcome


def exists(name: str) -> bool:
    """Whether `name` exists in this namespace (netlink, not /sys: sysfs may show another namespace)."""
    import subprocess

    return subprocess.run([IP, "link", "show", name], capture_output=True).returncode == 0


def container_addresses(netns: str, ifname: str) -> tuple[str, list[str], int]:
    """(mac, ["a.b.c.d/len", ...], mtu) of `ifname` inside the sandbox; CniError if it is missing."""
    import json

    check_netns(netns)
    out = _run([NSENTER, f"--net={netns}", IP, "-j", "addr", "show", "dev", ifname],
               what=f"reading {ifname} in {netns}")
    try:
        info = json.loads(out)[0]
    except (ValueError, IndexError):
        raise CniError(IO_FAILURE, f"unreadable `ip -j addr` output for {ifname}") from None
    addrs = [f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", []) if a.get("family") == "inet"]
    return str(info.get("address", "")), addrs, int(info.get("mtu", 0))
