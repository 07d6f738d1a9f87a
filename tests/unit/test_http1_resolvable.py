"""The etcd client gives getaddrinfo ASCII bytes instead of a str only when the idna codec would have produced
the same bytes: names, addresses and errors stay as they were, without importing the codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz_settings import fuzz
from tuplenet.store.http1 import _resolvable


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "etcd-0.etcd.svc.", "a" * 63])
def test_plain_hosts_skip_the_idna_codec(host: str) -> None:
    assert _resolvable(host) == host.encode("idna")


@pytest.mark.parametrize("host", ["", "a..b", "a" * 64, "ünï.de", "."])
def test_other_hosts_keep_the_idna_path(host: str) -> None:
    assert _resolvable(host) == host


@pytest.mark.fuzz
@fuzz
@given(st.one_of(st.text(max_size=80), st.text(".-:ab0é", max_size=80), st.from_regex(r"[a-z.]{0,70}", fullmatch=True)))
def test_fuzz_bytes_only_when_idna_gives_the_same(host: str) -> None:
    got = _resolvable(host)
    if isinstance(got, bytes):
        assert got == host.encode("idna")
    else:
        assert got == host
