"""Concurrent writers through the HTTP API (one connection each, released together): no duplicate IP,
port id or device id, no lost update, and every refused write is a clean 409."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from test_api_helpers import (  # noqa: F401  (fixtures)
    Client,
    Reply,
    api_fixture,
    api_server,
    client_fixture,
    ok,
    prefix_fixture,
)
from test_tpctl_helpers import run

from tuplenet.api.proc import ApiProcess
from tuplenet.model import DEVICE_IDS_KEY, ip_book_key, port_id
from tuplenet.model.roaring import decode_bitmap
from tuplenet.store import Store

WRITERS = 20


def race(api: Any, work: Callable[[Client, int], list[Reply]]) -> list[list[Reply]]:
    """Run work(client, i) for i in range(WRITERS) in threads that start at the same instant."""
    clients = [Client(api) for _ in range(WRITERS)]
    for c in clients:
        ok(c.get("/health"))  # connections open before the start line
    barrier = threading.Barrier(WRITERS)
    results: list[list[Reply]] = [[] for _ in range(WRITERS)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(clients[i], i)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for c in clients:
        c.close()
    assert not errors, errors
    return results


def test_ipam_writers_on_one_switch(client, api, etcd):
    ok(client.post("/switches", {"name": "ls1"}), 201)
    per_writer = 5

    def work(c: Client, i: int) -> list[Reply]:
        return [c.post("/switches/ls1/ports", {"name": f"w{i}-{k}", "subnet": "10.0.0.0/24"})
                for k in range(per_writer)]

    replies = [r for rs in race(api, work) for r in rs]
    assert [r.status for r in replies] == [201] * WRITERS * per_writer, [r.body for r in replies if r.status != 201]
    granted = {r.json["name"]: r.json["ip"] for r in replies}
    ports = ok(client.get("/switches/ls1/ports"))
    stored = {p["name"]: p["ip"] for p in ports}
    assert stored == granted  # no lost update: every 201 is in etcd, with the address it was answered
    assert len(set(stored.values())) == WRITERS * per_writer  # no duplicate IP
    assert set(stored.values()) == {f"10.0.0.{n}" for n in range(2, 2 + WRITERS * per_writer)}  # packed, gw kept
    with Store(etcd.endpoint, prefix=api.prefix) as s:
        assert decode_bitmap(s.get(ip_book_key("LS", "ls1")).value) == {port_id(ip) for ip in stored.values()}
    assert ok(client.get("/toolbox/ip-conflicts")) == {"problems": []}


def test_writers_racing_for_the_same_addresses(client, api):
    ok(client.post("/switches", {"name": "ls1"}), 201)

    def work(c: Client, i: int) -> list[Reply]:
        # Writers 2k and 2k+1 want the same address under different port names; 10.1.x.y shares port ids too.
        return [c.post("/switches/ls1/ports", {"name": f"w{i}", "ip": f"10.{i % 2}.0.{i // 2 + 2}"})]

    replies = [rs[0] for rs in race(api, work)]
    won = [i for i, r in enumerate(replies) if r.status == 201]
    lost = [r for r in replies if r.status != 201]
    assert len(won) == WRITERS // 2 and len({i // 2 for i in won}) == WRITERS // 2  # one winner per address
    assert all(r.status == 409 and r.json["kind"] == "conflict" for r in lost), [r.body for r in lost]
    ports = ok(client.get("/switches/ls1/ports"))
    assert sorted(p["name"] for p in ports) == sorted(f"w{i}" for i in won)
    assert len({port_id(p["ip"]) for p in ports}) == WRITERS // 2


def test_writers_creating_switches_and_routers(client, api, etcd):
    def work(c: Client, i: int) -> list[Reply]:
        kind = "switches" if i % 2 else "routers"
        return [c.post(f"/{kind}", {"name": f"dev{i}"}), c.post(f"/{kind}", {"name": "same"})]

    replies = [r for rs in race(api, work) for r in rs]
    created = [r.json for r in replies if r.status == 201]
    assert sorted(r.status for r in replies).count(409) == WRITERS - 2  # "same": one switch, one router win
    ids = [d["id"] for d in created]
    assert len(created) == WRITERS + 2 and sorted(ids) == list(range(1, WRITERS + 3))  # distinct, no gap
    with Store(etcd.endpoint, prefix=api.prefix) as s:
        assert decode_bitmap(s.get(DEVICE_IDS_KEY).value) == set(ids)
    assert ok(client.get("/toolbox/id-conflicts")) == {"problems": []}


def test_two_servers_and_tpctl_writing_one_switch(client, api, etcd, tmp_path):
    """Writes of one server are serialised in-process; across servers and tpctl, CAS alone keeps them right."""
    ok(client.post("/switches", {"name": "ls1"}), 201)
    second = ApiProcess(str(tmp_path / "api"), etcd.endpoint, api.prefix).start()
    tpctl_ports = [f"t{k}" for k in range(10)]
    tpctl_rc: list[int] = []

    def tpctl_writer() -> None:
        for name in tpctl_ports:
            r = run(etcd, api.prefix, "lsp", "add", "ls1", name, f"10.0.1.{tpctl_ports.index(name) + 2}", proc=True)
            tpctl_rc.append(r.rc)

    def work(c: Client, i: int) -> list[Reply]:
        if i % 2:
            c.close()
            c.conn, c.token = second.connection(), second.token
        return [c.post("/switches/ls1/ports", {"name": f"w{i}-{k}", "subnet": "10.0.0.0/24"}) for k in range(3)]

    t = threading.Thread(target=tpctl_writer)
    try:
        t.start()
        replies = [r for rs in race(api, work) for r in rs]
        t.join(timeout=120)
    finally:
        second.stop()
    assert [r.status for r in replies] == [201] * WRITERS * 3, [r.body for r in replies if r.status != 201]
    assert tpctl_rc == [0] * len(tpctl_ports)
    stored = {p["name"]: p["ip"] for p in ok(client.get("/switches/ls1/ports"))}
    assert {r.json["name"]: r.json["ip"] for r in replies}.items() <= stored.items()
    assert len(stored) == WRITERS * 3 + len(tpctl_ports) and len({port_id(ip) for ip in stored.values()}) == len(stored)
    assert ok(client.get("/toolbox/ip-conflicts")) == {"problems": []}
