"""Export and import of the whole topology (`entity_view/`) in a line format.

Format (one record per line, UTF-8): `<key relative to the prefix><TAB><0.3 value>`, e.g.
`entity_view/LS/ls1<TAB>id=1`. Lines that are empty or start with `#` are ignored. Export writes raw values
(unknown fields survive) sorted by key. On import an LS/LR whose `id` is missing or 0 gets a fresh id, as does
one whose id is already taken in the target.

Import validates everything before writing (record syntax, parents, names, port-id uniqueness per LS/LR
across file and target, existing keys). etcd caps a transaction at 128 ops, so the write is cut into batches
grouped by parent: a switch with its ports and its port-id book travel together, so each group commits
atomically when it fits one batch, and every batch is guarded by compares. If a batch still fails (a
concurrent writer), the batches already written are rolled back, so on error nothing of the import remains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from tuplenet.model import (
    DEVICE_IDS_KEY,
    IP_BOOK_ROOT,
    ROOT,
    SCHEMA_VERSION,
    VERSION_KEY,
    ModelError,
    decode,
    entity_key,
    ip_book_key,
    parse_key,
    parse_value,
    port_id,
)
from tuplenet.model.ovsnames import patch_port_problem
from tuplenet.model.roaring import decode_bitmap, encode_bitmap
from tuplenet.store import KV, Compare, Op

from .base import PORT_KIND, ControllerBase, DeviceBook, record_id
from .errors import ControlError, InvalidArgument

BATCH_OPS = 120  # below etcd's 128, leaving room for parent/version compares
MAX_REPORTED = 20


class ImportResult:
    """Counts of an import: objects created/replaced, LS/LR ids assigned, transactions used."""

    __slots__ = ("created", "replaced", "ids_assigned", "batches")

    def __init__(self) -> None:
        self.created = self.replaced = self.ids_assigned = self.batches = 0


class _Unit:
    """Puts that should commit together, with their guards."""

    __slots__ = ("compares", "ops")

    def __init__(self, compares: list[Compare] | None = None, ops: list[Op] | None = None) -> None:
        self.compares = compares if compares is not None else []
        self.ops = ops if ops is not None else []


def format_export(records: Iterable[tuple[str, str]], header: str = "") -> str:
    lines = [f"# {header}"] if header else []
    for key, value in records:
        if "\t" in key or "\n" in key or "\n" in value:
            raise ControlError(f"{key}: cannot be exported in the line format (tab or newline in it)")
        lines.append(f"{key}\t{value}")
    return "\n".join(lines) + "\n"


def parse_export(text: str) -> list[tuple[int, str, str]]:
    """(line number, key, value) of every record; InvalidArgument listing malformed lines."""
    out, errors = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("\t")
        if not sep:
            errors.append(f"line {n}: expected '<key><TAB><value>'")
            continue
        out.append((n, key.strip(), value))
    if errors:
        raise InvalidArgument(_summary(errors))
    return out


def _summary(errors: list[str]) -> str:
    head = "; ".join(errors[:MAX_REPORTED])
    more = f"; ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
    return f"import refused, nothing written: {head}{more}"


class Importer:
    """One import run on behalf of a controller (kept out of Controller so plain commands never load it)."""

    def __init__(self, ctl: ControllerBase) -> None:
        self.ctl = ctl
        self.store = ctl.store
        self.device_book = ctl.device_book

    def run(self, records: list[tuple[int, str, str]], overwrite: bool = False) -> ImportResult:
        self.ctl.ensure_version()
        dev_kv = self.store.get(DEVICE_IDS_KEY)  # bookkeeping before the tree (see PortBook)
        book_kvs = {kv.key: kv for kv in self.store.get_prefix(IP_BOOK_ROOT)[0]}
        tree = {kv.key: kv for kv in self.store.get_prefix(ROOT)[0]}
        entities, dev_ids, result = self._validate(records, tree, dev_kv, overwrite)
        units = self._units(entities, tree, book_kvs, dev_kv, dev_ids)
        return self._write(units, tree, book_kvs, dev_kv, result)

    # ---- validation --------------------------------------------------------------------------------------

    def _validate(self, records: list[tuple[int, str, str]], tree: dict[str, KV], dev_kv: KV | None,
                  overwrite: bool) -> tuple[list[Any], set[int], ImportResult]:
        errors: list[str] = []
        entities: dict[str, Any] = {}
        need_id: set[str] = set()
        for n, key, value in records:
            parsed = parse_key(key)
            if parsed is None:
                errors.append(f"line {n}: {key}: not a topology key")
                continue
            kind, ident = parsed
            if key in entities:
                errors.append(f"line {n}: {key}: duplicate record")
                continue
            if kind in ("LS", "LR") and (parse_value(value).get("id", "") == "" or record_id(value) == 0):
                need_id.add(key)
                value = ",".join(s for s in value.split(",") if s.partition("=")[0].strip() != "id")
                value = f"id=1,{value}" if value.strip() else "id=1"
            try:
                entities[key] = decode(kind, ident, value)
            except ModelError as exc:
                errors.append(f"line {n}: {exc}")
                continue
            if any("," in part or not part.strip() for part in ident):
                errors.append(f"line {n}: {key}: bad name")
            ent = entities[key]
            if ent.kind == "lsp" and ent.is_patch and ent.peer and (problem := patch_port_problem(ent.name, ent.peer)):
                errors.append(f"line {n}: {key}: {problem}")
            if key in tree and not overwrite:
                errors.append(f"line {n}: {key} already exists (use --overwrite to replace it)")
        for key, ent in entities.items():
            if ent.parent_kind is not None:
                pkey = entity_key(ent.parent_kind, (ent.ident[0],))
                if pkey not in entities and pkey not in tree:
                    noun = "switch" if ent.parent_kind == "LS" else "router"
                    errors.append(f"{key}: {noun} {ent.ident[0]} not found")
        errors += self._check_port_ids(entities, tree)
        if errors:
            raise InvalidArgument(_summary(errors))
        result = ImportResult()
        dev_ids = self._assign_ids(entities, need_id, tree, dev_kv, result)
        result.replaced = sum(1 for k in entities if k in tree)
        result.created = len(entities) - result.replaced
        return list(entities.values()), dev_ids, result

    def _check_port_ids(self, entities: dict[str, Any], tree: dict[str, KV]) -> list[str]:
        used: dict[tuple[str, str], dict[int, str]] = {}
        errors = []
        for kv in tree.values():
            parsed = parse_key(kv.key)
            if parsed and parsed[0] in ("lsp", "lrp") and kv.key not in entities:
                try:
                    pid = port_id(parse_value(kv.value).get("ip", ""))
                except ModelError:
                    continue
                used.setdefault((parsed[0], parsed[1][0]), {})[pid] = kv.key
        for key, ent in entities.items():
            if ent.kind in ("lsp", "lrp"):
                book = used.setdefault((ent.kind, ent.ident[0]), {})
                pid = port_id(ent.ip)
                if pid in book:
                    errors.append(f"{key}: lower 16 bits of {ent.ip} conflict with other IP ({book[pid]})")
                book[pid] = key
        return errors

    def _assign_ids(self, entities: dict[str, Any], need_id: set[str], tree: dict[str, KV],
                    dev_kv: KV | None, result: ImportResult) -> set[int]:
        """Keep each file id that is free in the target (first in key order wins), else allocate one.

        Ids of devices being replaced are free for their replacement. Returns the new device-id set.
        """
        used = self.device_book(dev_kv).ids
        target_ids: dict[str, int] = {}
        for key, kv in tree.items():
            parsed = parse_key(key)
            if parsed and parsed[0] in ("LS", "LR") and (dev_id := record_id(kv.value)) is not None:
                target_ids[key] = dev_id
        used -= {i for k, i in target_ids.items() if k in entities}
        used |= {i for k, i in target_ids.items() if k not in entities}
        claimed: set[int] = set()
        later: list[str] = []
        for key in sorted(k for k, e in entities.items() if e.kind in ("LS", "LR")):
            dev_id = entities[key].id
            if key in need_id or dev_id in used or dev_id in claimed:
                later.append(key)
            else:
                claimed.add(dev_id)
        book = DeviceBook(dev_kv, used | claimed)
        for key in later:
            new_id = book.allocate()
            book.ids.add(new_id)
            entities[key] = replace(entities[key], id=new_id)
            result.ids_assigned += 1
        return book.ids

    # ---- writing -----------------------------------------------------------------------------------------

    def _units(self, entities: list[Any], tree: dict[str, KV], book_kvs: dict[str, KV],
               dev_kv: KV | None, dev_ids: set[int]) -> list[_Unit]:
        def guard(key: str) -> Compare:
            kv = tree.get(key) or book_kvs.get(key)
            return Compare.mod_revision(key, "=", kv.mod_revision) if kv else Compare.missing(key)

        groups: dict[tuple[str, str], list[Any]] = {}
        for ent in entities:
            gkey = ("chassis", ent.name) if ent.kind == "chassis" else (ent.parent_kind or ent.kind, ent.ident[0])
            groups.setdefault(gkey, []).append(ent)
        units: list[_Unit] = []
        if any(e.kind in ("LS", "LR") for e in entities):  # reserve the ids first: ls add trusts this book
            units.append(_Unit([DeviceBook(dev_kv, set()).guard()], [Op.put(DEVICE_IDS_KEY, encode_bitmap(dev_ids))]))
        for (gkind, gname), members in sorted(groups.items()):
            members.sort(key=lambda e: (e.parent_kind is not None, e.key))
            unit = _Unit()
            if gkind in ("LS", "LR") and members[0].kind != gkind:
                unit.compares.append(Compare.exists(entity_key(gkind, (gname,))))
            for ent in members:
                if len(unit.ops) >= BATCH_OPS - 1:
                    units.append(unit)
                    unit = _Unit()
                unit.compares.append(guard(ent.key))
                unit.ops.append(Op.put(ent.key, ent.to_value()))
            if gkind in ("LS", "LR") and any(e.kind == PORT_KIND[gkind] for e in members):
                bkey = ip_book_key(gkind, gname)
                ids = {port_id(e.ip) for e in members if e.kind == PORT_KIND[gkind]}
                prefix = f"{ROOT}{gkind}/{gname}/{PORT_KIND[gkind]}/"
                for kv in tree.values():
                    if kv.key.startswith(prefix) and kv.key not in {e.key for e in members}:
                        try:
                            ids.add(port_id(parse_value(kv.value).get("ip", "")))
                        except ModelError:
                            pass
                old = book_kvs.get(bkey)
                if old is None or _bits(old.value) != ids:
                    unit.compares.append(guard(bkey))
                    unit.ops.append(Op.put(bkey, encode_bitmap(ids)))
            units.append(unit)
        return units

    def _write(self, units: list[_Unit], tree: dict[str, KV], book_kvs: dict[str, KV], dev_kv: KV | None,
               result: ImportResult) -> ImportResult:
        batches: list[_Unit] = []
        for unit in units:
            if batches and len(batches[-1].ops) + len(unit.ops) <= BATCH_OPS \
                    and len(batches[-1].compares) + len(unit.compares) <= BATCH_OPS:
                batches[-1].compares += unit.compares
                batches[-1].ops += unit.ops
            else:
                batches.append(_Unit(list(unit.compares), list(unit.ops)))
        done: list[tuple[_Unit, int]] = []
        version = Compare.value(VERSION_KEY, "=", str(SCHEMA_VERSION))
        for batch in batches:
            res = self.store.txn([*batch.compares, version], batch.ops)
            if not res.succeeded:
                undone = self._rollback(done, {**tree, **book_kvs, DEVICE_IDS_KEY: dev_kv})
                raise ControlError(f"import aborted: data changed concurrently during batch {len(done) + 1} "
                                   f"of {len(batches)}; " + ("rolled back, nothing written" if undone else
                                                             "rollback incomplete, check the tree"))
            done.append((batch, res.revision))
        result.batches = len(done)
        return result

    def _rollback(self, done: list[tuple[_Unit, int]], before: dict[str, KV | None]) -> bool:
        """Undo committed batches, newest first, only where a key still holds what we wrote."""
        clean = True
        for batch, rev in reversed(done):
            pairs = []
            for op in batch.ops:
                old = before.get(op.key)
                undo = Op.put(op.key, old.value) if old else Op.delete(op.key)
                pairs.append((Compare.mod_revision(op.key, "=", rev), undo))
            for i in range(0, len(pairs), BATCH_OPS):
                chunk = pairs[i:i + BATCH_OPS]
                if not self.store.txn([c for c, _ in chunk], [o for _, o in chunk]).succeeded:
                    for c, o in chunk:  # someone touched a key since: undo the others one by one
                        clean &= self.store.txn([c], [o]).succeeded
        return clean


def _bits(value: str) -> set[int] | None:
    try:
        return decode_bitmap(value)
    except ModelError:
        return None
