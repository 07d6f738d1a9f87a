"""etcdctl-compatible security options: parsing, precedence over ETCDCTL_* variables, clear refusals."""

from __future__ import annotations

import argparse

import pytest

from tuplenet.store import StoreError
from tuplenet.store.security import add_arguments, from_args


def test_security_options_parse_like_etcdctl() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    sec = from_args(p.parse_args(["--user", "bob:pa:ss"]), {})
    assert (sec.user, sec.password) == ("bob", "pa:ss")
    sec = from_args(p.parse_args(["--user", "bob:x", "--password", "y"]), {"ETCDCTL_PASSWORD": "z"})
    assert sec.password == "y"
    env = {"ETCDCTL_USER": "eve", "ETCDCTL_PASSWORD": "pw", "ETCDCTL_CACERT": "/ca", "ETCDCTL_CERT": "/c",
           "ETCDCTL_KEY": "/k"}
    sec = from_args(p.parse_args([]), env)
    assert (sec.user, sec.password, sec.cacert, sec.cert, sec.key, sec.tls) == ("eve", "pw", "/ca", "/c", "/k", True)
    assert "pw" not in repr(sec)
    assert from_args(p.parse_args(["--cacert", "/mine"]), env).cacert == "/mine"  # options win over env
    for argv, env, msg in ((["--cert", "/c"], {}, "--cert and --key"), (["--user", "bob"], {}, "no password"),
                           (["--user", ":pw"], {}, "empty user name")):
        with pytest.raises(StoreError, match=msg):
            from_args(p.parse_args(argv), env)
