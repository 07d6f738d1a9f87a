"""br-int's OpenFlow port numbers by interface name, from the switch's port-status messages.

ovs-vswitchd announces a new port on OpenFlow (OFPT_PORT_STATUS, ADD) as soon as the port exists in the
datapath, and writes its number to the OVSDB Interface row's `ofport` only at the end of the same
reconfiguration, which walks every port of the switch: on a 1,000-port host ~100 ms after the announcement,
~250 ms after the `ovs-vsctl add-port`. Until OVSDB has the number, the interface's view takes it from here
(ovsdb_idl.TrackingIdl), so the port's flows go in while ovs-vswitchd is still busy; once OVSDB has it, OVSDB
is the authority.

The two streams are not ordered with each other, so a hint must never outlive the interface it was for: an
interface row deleted in OVSDB drops its name's hint (`forget`), and only a new ADD brings one back (a late
MODIFY of the old port does not). Names that may be truncated on OpenFlow and reserved port numbers never
get here (codec.parse_port_status). A new OpenFlow session forgets everything (what it missed is unknown).
"""

from __future__ import annotations

from .openflow.codec import OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY


class OfportHints:
    """The port numbers OpenFlow announced, by name. Not thread-safe: one thread (the OVSDB thread) owns it."""

    def __init__(self) -> None:
        self._by_name: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> int | None:
        return self._by_name.get(name)

    def update(self, reason: int, port_no: int, name: str) -> bool:
        """Apply one port-status message; True if the name's hint changed."""
        have = self._by_name.get(name)
        if reason == OFPPR_ADD or (reason == OFPPR_MODIFY and have is not None):
            self._by_name[name] = port_no
            return have != port_no
        if reason == OFPPR_DELETE and have == port_no:
            del self._by_name[name]
            return True
        return False

    def forget(self, name: str) -> bool:
        """The interface row of that name is gone from OVSDB: its hint goes too (True if there was one)."""
        return self._by_name.pop(name, None) is not None

    def reset(self) -> list[str]:
        """A new OpenFlow session: forget every hint; the names that had one."""
        names = list(self._by_name)
        self._by_name.clear()
        return names
