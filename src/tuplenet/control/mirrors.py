"""Port mirrors (`entity_view/mirror/<name>`): add, delete, list, get.

A mirror names an existing switch port; the add is one transaction guarded by that port's existence and the
mirror key's absence. Deleting the port later leaves the mirror record in place (the agents simply have
nothing to mirror), so re-creating the port brings the mirror back.
"""

from __future__ import annotations

from tuplenet.model import ModelError, decode, entity_key, validate_name
from tuplenet.model.mirror import Mirror, parse_direction, parse_port_ref, parse_target
from tuplenet.store import Compare, Op

from .base import Core, Plan, checked
from .errors import AlreadyExists, ControlError, NotFound


def _not_found(name: str) -> NotFound:
    return NotFound(f"unable to get mirror {name}: unable to read key /{entity_key('mirror', (name,))}: "
                    "key not found")


class Mirrors:
    """Mirror records: validation, then one guarded transaction."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def add_mirror(self, name: str, port: str, target: str, direction: str = "both") -> Mirror:
        """Mirror `port` (SWITCH/PORT) in `direction` (in|out|both) to `target` (local:<ovs port>,
        erspan:<ip>[:<session>] or geneve:<ip>[:<vni>])."""
        name = checked(validate_name, name)
        ls, lsp = checked(parse_port_ref, port)
        mirror = Mirror(name, ls, lsp, checked(parse_direction, direction), checked(parse_target, target))
        key, lsp_key = mirror.key, entity_key("lsp", (ls, lsp))

        def plan() -> Plan:
            (have, port_kv), _ = self.core.read(Op.get(key), Op.get(lsp_key))
            if have is not None:
                raise AlreadyExists(f"mirror {name} exists")
            if port_kv is None:
                raise NotFound(f"unable to mirror {ls}/{lsp}: switch port {lsp} of switch {ls} does not exist")
            return Plan([Compare.missing(key), Compare.mod_revision(lsp_key, "=", port_kv.mod_revision)],
                        [Op.put(key, mirror.to_value())], mirror)

        return self.core.commit(plan)

    def delete_mirror(self, name: str) -> Mirror | str:
        key = entity_key("mirror", (name,))

        def plan() -> Plan:
            kv = self.core.store.get(key)
            if kv is None:
                raise _not_found(name)
            try:
                result: Mirror | str = decode("mirror", (name,), kv.value)  # type: ignore[assignment]
            except ModelError:
                result = name  # a bad record can still be deleted
            return Plan([Compare.mod_revision(key, "=", kv.mod_revision)], [Op.delete(key)], result)

        return self.core.commit(plan)

    def list_mirrors(self) -> list[Mirror]:
        return self.core.list_top("mirror")

    def get_mirror(self, name: str) -> Mirror:
        kv = self.core.store.get(entity_key("mirror", (name,)))
        if kv is None:
            raise _not_found(name)
        try:
            return decode("mirror", (name,), kv.value)  # type: ignore[return-value]
        except ModelError as exc:
            raise ControlError(f"bad record in etcd: {exc}") from None
