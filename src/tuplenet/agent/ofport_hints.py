"""br-int's OpenFlow port numbers by interface name, from the switch's port-status messages.

ovs-vswitchd announces a new port on OpenFlow (OFPT_PORT_STATUS, ADD) as soon as the port exists in the
datapath, and writes its number to the OVSDB Interface row's `ofport` only at the end of the same
reconfiguration, which walks every port of the switch: on a 1,000-port host ~100 ms after the announcement,
~250 ms after the `ovs-vsctl add-port`. Until OVSDB has the number, the interface's view takes it from here
(ovsdb_idl.TrackingIdl), so the port's flows are sent at once; ovs-vswitchd applies them when its
reconfiguration ends, which spares the OVSDB round trip after it. Once OVSDB has the number, it is the
authority.

The two streams are not ordered with each other, so a hint must never outlive the interface it was for: an
interface row deleted in OVSDB drops its name's hint and blocks the name (`forget`) until ovs-vswitchd shows
it has caught up with the deletion; a hint goes once OVSDB has the number. Names that may be truncated on
OpenFlow and reserved port numbers never get here (codec.parse_port_status). The start and end of an
OpenFlow session and a new OVSDB session forget everything (what was missed is unknown).
"""

from __future__ import annotations

from .openflow.codec import OFPPR_ADD, OFPPR_DELETE


class OfportHints:
    """The port numbers OpenFlow announced, by name. Not thread-safe: one thread (the OVSDB thread) owns it."""

    BLOCKED_MAX = 4096  # names kept blocked at most (the oldest go first): a bound, never reached in practice

    def __init__(self) -> None:
        self._by_name: dict[str, int] = {}
        self._blocked: dict[str, None] = {}  # names whose interface row went: ADDs ignored until caught up

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> int | None:
        return self._by_name.get(name)

    def update(self, reason: int, port_no: int, name: str) -> bool:
        """Apply one port-status message; True if the name's hint changed. A MODIFY changes nothing: OVS
        renumbers a port by DELETE and ADD."""
        have = self._by_name.get(name)
        if reason == OFPPR_ADD and name not in self._blocked:
            self._by_name[name] = port_no
            return have != port_no
        if reason == OFPPR_DELETE:
            self._blocked.pop(name, None)  # ovs-vswitchd has caught up with the deletion
            if have == port_no:
                del self._by_name[name]
                return True
        return False

    def confirmed(self, name: str) -> None:
        """OVSDB has a number for an interface of that name: the hint has served, and ovs-vswitchd is past
        any deletion of that name."""
        self._by_name.pop(name, None)
        self._blocked.pop(name, None)

    def forget(self, name: str) -> bool:
        """The interface row of that name is gone from OVSDB: its hint goes, and announcements of that name
        are ignored until ovs-vswitchd shows it has caught up (a DELETE of the name, an OVSDB number for it,
        a new session): a late ADD of the old port must not number a new row. True if there was a hint."""
        self._blocked.pop(name, None)  # re-inserted as the newest
        self._blocked[name] = None
        while len(self._blocked) > self.BLOCKED_MAX:
            del self._blocked[next(iter(self._blocked))]
        return self._by_name.pop(name, None) is not None

    def reset(self) -> list[str]:
        """Forget everything (a session began or ended); the names that had a hint."""
        names = list(self._by_name)
        self._by_name.clear()
        self._blocked.clear()
        return names
