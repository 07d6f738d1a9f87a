"""Review finding, fixed by taking the growth back: get_prefix's pages grew 8x from the previous page's
*mean* record size, so small records followed by large ones (lsps sort before address_set/ and
port_group/) got a page of 5,000 large records: ~180 MiB of values in one answer for 40 KB records, and a
MalformedAnswer past transport.MAX_ANSWER (256 MiB) a little above that. A page is still sized from the
records before it, so the first page of big records after small ones holds up to PAGE_SIZE of them
(~38 MiB here), as before this session; the bound below keeps it there."""

from __future__ import annotations

import base64
import bisect
from typing import Any

import tuplenet.store.store as store_mod
from tuplenet.store import Store

SMALL, BIG = 300, 40_000


def test_no_page_far_beyond_the_byte_target_when_records_grow(monkeypatch) -> None:
    keys = sorted([f"/tp/entity_view/LS/ls{i // 100:04d}/lsp/p{i:05d}".encode() for i in range(20_000)]
                  + [f"/tp/entity_view/address_set/as{i:05d}".encode() for i in range(5_000)])
    size = {k: BIG if b"address_set" in k else SMALL for k in keys}
    monkeypatch.setattr(store_mod, "kv_size", lambda kv: len(kv["key"]) * 3 / 4 + size[base64.b64decode(kv["key"])])
    answers: list[int] = []

    def call(path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        i = bisect.bisect_left(keys, base64.b64decode(body["key"]))
        page = keys[i:i + int(body["limit"])]
        answers.append(sum(size[k] for k in page))
        return {"header": {"revision": "9"}, "more": i + len(page) < len(keys),
                "kvs": [{"key": base64.b64encode(k).decode(), "value": "", "mod_revision": "2",
                         "create_revision": "2", "version": "1"} for k in page]}

    s = Store("http://127.0.0.1:1", "/tp")
    s._t.call = call  # type: ignore[method-assign]
    kvs, _ = s.get_prefix("entity_view/")
    assert len(kvs) == len(keys)
    assert max(answers) <= store_mod.PAGE_SIZE * BIG, f"an answer of {max(answers) >> 20} MiB of values"
    assert max(answers) <= 10 * store_mod.PAGE_TARGET_BYTES
