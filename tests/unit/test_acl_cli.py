"""tpctl acl | pg | as through control/acls.py on the in-memory store: guarded writes, one-line errors,
nothing written on bad input, hits summed from the agents' reports; and a fuzz of the argument vectors."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tpctl_fuzz import BUG, _run, sandbox  # noqa: F401 - sandbox is a fixture

from fuzz_settings import fuzz
from tuplenet.cli import commands, tpctl
from tuplenet.control import Controller
from tuplenet.control.acls import Acls
from tuplenet.control.errors import AlreadyExists, ControlError, InvalidArgument, NotFound
from tuplenet.control.memstore import MemStore
from tuplenet.model import ModelError, decode_kv


@pytest.fixture
def ctl(monkeypatch: pytest.MonkeyPatch) -> Controller:
    c = Controller(MemStore())
    c.add_switch("ls1")
    c.add_switch_port("ls1", "vm1", "10.0.0.2")
    c.add_switch_port("ls1", "vm2", "10.0.0.3")
    monkeypatch.setattr(commands.Ctx, "ctl", property(lambda self: c))
    monkeypatch.setattr(commands.Ctx, "close", lambda self: None)
    return c


def _tp(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = tpctl.main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_address_sets_and_port_groups(ctl: Controller, capsys: pytest.CaptureFixture[str]) -> None:
    assert _tp(capsys, "as", "add", "web", "10.0.0.2", "10.1.0.0/16") == (
        0, "address set web created (2 addresses)\n", "")
    assert _tp(capsys, "as", "addr-add", "web", "10.0.0.9")[1] == "address set web: 3 addresses\n"
    assert _tp(capsys, "as", "addr-del", "web", "10.0.0.2")[1] == "address set web: 2 addresses\n"
    assert ctl.store.get("entity_view/address_set/web").value == "addresses=10.0.0.9 10.1.0.0/16"
    rc, _, err = _tp(capsys, "as", "addr-del", "web", "10.0.0.2")
    assert rc == 1 and err.count("\n") == 1 and "has no 10.0.0.2" in err
    assert _tp(capsys, "pg", "add", "g", "ls1/vm1")[0] == 0
    rc, _, err = _tp(capsys, "pg", "port-add", "g", "ls1/nope")
    assert rc == 1 and "switch port nope of switch ls1 does not exist" in err
    assert _tp(capsys, "pg", "port-add", "g", "ls1/vm2")[1] == "port group g: 2 ports\n"
    rc, out, _ = _tp(capsys, "-j", "pg", "show")
    assert json.loads(out) == [{"name": "g", "ports": ["ls1/vm1", "ls1/vm2"]}]
    rc, _, err = _tp(capsys, "pg", "add", "h", "ls1/ghost")
    assert rc == 1 and "switch port" in err and ctl.store.get("entity_view/port_group/h") is None


def test_rules_add_show_delete_with_hits(ctl: Controller, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _tp(capsys, "acl", "add", "ls", "ls1", "web", "in", "100", "allow-related", "src=$clients",
                       "proto=tcp", "dport=80-90")
    assert (rc, out, err) == (0, "acl web created on ls ls1\n", "")
    key = "entity_view/LS/ls1/acl/web"
    assert ctl.store.get(key).value == "direction=in,priority=100,action=allow-related,src=$clients,proto=tcp,dport=80-90"
    assert _tp(capsys, "acl", "add", "ls", "ls1", "web", "in", "1", "drop")[0] == 1  # exists
    ctl.store.put("communicate/acl_hits/hv1", json.dumps({key: 5}))
    ctl.store.put("communicate/acl_hits/hv2", json.dumps({key: 7, "x": "bad"}))
    ctl.store.put("communicate/acl_hits/hv3", "not json")
    rc, out, _ = _tp(capsys, "-j", "acl", "show", "ls", "ls1")
    assert json.loads(out) == [{"switch": "ls1", "name": "web", "direction": "in", "priority": 100,
                                "action": "allow-related", "src": "$clients", "proto": "tcp", "dport": "80-90",
                                "hits": 12}]
    rc, out, _ = _tp(capsys, "acl", "show", "ls", "ls1", "web")
    assert "match    : src=$clients proto=tcp dport=80-90" in out and "hits     : 12" in out
    assert _tp(capsys, "acl", "del", "ls", "ls1", "web") == (0, "acl web deleted\n", "")
    assert ctl.store.get(key) is None


def test_port_group_rules_go_with_the_group(ctl: Controller) -> None:
    svc = Acls(ctl.core)
    svc.add_port_group("g", ["ls1/vm1"])
    svc.add_acl("pg", "g", "r", {"direction": "out", "priority": "5", "action": "reject", "src": "@g"})
    assert [r.name for r in svc.list_acls("pg", "g")] == ["r"]
    svc.delete_port_group("g")
    assert ctl.store.get("entity_view/port_group/g/acl/r") is None


def test_bad_rules_write_nothing(ctl: Controller, capsys: pytest.CaptureFixture[str]) -> None:
    svc = Acls(ctl.core)
    with pytest.raises(NotFound, match="unable to get switch nope"):
        svc.add_acl("ls", "nope", "r", {"direction": "in", "priority": "1", "action": "drop"})
    with pytest.raises(InvalidArgument, match="ls.*pg"):
        svc.add_acl("lr", "ls1", "r", {"direction": "in", "priority": "1", "action": "drop"})
    with pytest.raises(InvalidArgument, match="unknown rule field"):
        svc.add_acl("ls", "ls1", "r", {"direction": "in", "priority": "1", "action": "drop", "tos": "1"})
    with pytest.raises(InvalidArgument, match="need proto"):
        svc.add_acl("ls", "ls1", "r", {"direction": "in", "priority": "1", "action": "drop", "dport": "1"})
    with pytest.raises(AlreadyExists):
        svc.add_address_set("s")
        svc.add_address_set("s")
    rc, _, err = _tp(capsys, "acl", "add", "ls", "ls1", "r", "in", "1", "drop", "action=allow")
    assert rc == 1 and err.count("\n") == 1 and "argument of its own" in err
    assert ctl.store.get_prefix("entity_view/LS/ls1/acl/")[0] == []


TOKENS = ["ls", "pg", "lr", "ls1", "g", "nope", "r1", "in", "out", "up", "0", "100", "40000", "allow", "drop",
          "reject", "allow-related", "src=$s", "src=@g", "dst=10.0.0.0/8", "dst=10.0.0.1/8", "proto=tcp",
          "proto=udp", "proto=x", "dport=80", "dport=80-70", "sport=1-2", "=1", "a", "10.0.0.2", "10.1.0.0/16",
          "1.2.3", "ls1/vm1", "ls1/zz", "ls1", "é", "", "\x00", "s"]
ACTIONS = [("as", "add"), ("as", "addr-add"), ("as", "addr-del"), ("as", "del"), ("as", "show"), ("pg", "add"),
           ("pg", "port-add"), ("pg", "port-del"), ("pg", "del"), ("pg", "show"), ("acl", "add"), ("acl", "del"),
           ("acl", "show"), ("acl", "nope")]


def _seed() -> MemStore:
    c = Controller(MemStore())
    c.add_switch("ls1")
    c.add_switch_port("ls1", "vm1", "10.0.0.2")
    svc = Acls(c.core)
    svc.add_address_set("s", ["10.0.0.2"])
    svc.add_port_group("g", ["ls1/vm1"])
    svc.add_acl("ls", "ls1", "r1", {"direction": "in", "priority": "1", "action": "drop"})
    return c.store


SEED = _seed()


@pytest.mark.fuzz
@fuzz
@given(seed=st.integers(0, 2**63))
def test_acl_arguments_give_clean_errors(sandbox, seed):  # noqa: F811
    """Argument vectors of every acl/pg/as command (one cheap draw per case: a seed). Most go straight to
    the command handler (the generic argument counting and parsing is tpctl's, fuzzed in test_tpctl_fuzz);
    one in 16 goes through tpctl's entry point. Exit 0 or one clean line, and every record left decodes."""
    rnd = random.Random(seed)
    store = MemStore()
    store.data, store.rev = dict(SEED.data), SEED.rev
    ctl = Controller(store)
    sandbox["ctl"] = ctl
    head = rnd.choice(ACTIONS)
    args = [rnd.choice(TOKENS) for _ in range(rnd.randint(0, 9))]
    spec = commands.COMMANDS.get(head)
    if spec is None or rnd.random() < 1 / 16 or not spec[1] <= len(args) <= spec[2]:
        argv = [*head, *args]
        rc, out, err = _run(argv, "")
        assert rc in (0, 1), (argv, rc, err)
        if rc == 1:
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].strip(), (argv, err)
            assert "Traceback" not in err and not BUG.match(lines[0]), (argv, err)
    else:
        ctx = commands.Ctx("x", "/", 1.0, rnd.random() < 0.5)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                spec[5](ctx, args)
        except (ControlError, ModelError) as exc:
            assert str(exc).strip() and "\n" not in str(exc), (head, args, exc)
    for key, kv in store.data.items():
        if key.startswith("entity_view/"):
            try:
                decode_kv(key, kv.value)
            except ModelError as exc:
                raise AssertionError(f"{head} {args}: {exc}") from None
