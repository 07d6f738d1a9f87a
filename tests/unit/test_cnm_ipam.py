"""tpcnm's IPAM driver on the in-memory store: addresses shared by every host's docker, never twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from test_cnm_driver import call, err, make_driver, ok

GW = {"RequestAddressType": "com.docker.network.gateway"}


def pool(d, cidr: str = "10.66.0.0/24") -> str:
    return ok(d, "IpamDriver.RequestPool", {"AddressSpace": "tuplenet", "Pool": cidr, "SubPool": "",
                                            "Options": {}, "V6": False})["PoolID"]


def addr(d, pid: str, address: str = "", options: dict | None = None) -> dict:
    return call(d, "IpamDriver.RequestAddress", {"PoolID": pid, "Address": address, "Options": options or {}})[1]


def test_capabilities_and_pool_requests():
    d, _ = make_driver()
    assert ok(d, "IpamDriver.GetCapabilities") == {"RequiresMACAddress": False, "RequiresRequestReplay": False}
    assert ok(d, "IpamDriver.GetDefaultAddressSpaces") == {"LocalDefaultAddressSpace": "tuplenet",
                                                            "GlobalDefaultAddressSpace": "tuplenet"}
    assert pool(d) == "10.66.0.0/24"
    assert "--subnet" in err(d, "IpamDriver.RequestPool", {"Pool": ""})
    assert "IPv6" in err(d, "IpamDriver.RequestPool", {"Pool": "10.66.0.0/24", "V6": True})
    assert "--ip-range" in err(d, "IpamDriver.RequestPool", {"Pool": "10.66.0.0/24", "SubPool": "10.66.0.0/25"})
    assert "bad PoolID" in err(d, "IpamDriver.RequestPool", {"Pool": "10.66.0.1/24"})
    assert "no room" in err(d, "IpamDriver.RequestPool", {"Pool": "10.66.0.0/31"})


def test_two_hosts_share_the_gateway_and_never_share_an_address():
    d1, _ = make_driver()
    d2, _ = make_driver()
    d2.ipam.store = d1.store  # two hosts' drivers, one etcd
    p1, p2 = pool(d1), pool(d2)
    assert addr(d1, p1, options=GW) == {"Address": "10.66.0.1/24", "Data": {}}
    assert addr(d2, p2, options=GW) == {"Address": "10.66.0.1/24", "Data": {}}  # the same gateway, both hosts
    got = [addr(d, p)["Address"] for d, p in ((d1, p1), (d2, p2), (d1, p1))]
    assert got == ["10.66.0.2/24", "10.66.0.3/24", "10.66.0.4/24"]
    assert addr(d2, p2, "10.66.0.20") == {"Address": "10.66.0.20/24", "Data": {}}  # docker run --ip
    assert "already in use" in addr(d1, p1, "10.66.0.20")["Err"]
    assert "already in use" in addr(d1, p1, "10.66.0.1")["Err"]  # the gateway is no container's address
    assert "not a host address" in addr(d1, p1, "10.66.0.255")["Err"]
    ok(d1, "IpamDriver.ReleaseAddress", {"PoolID": p1, "Address": "10.66.0.3"})
    assert addr(d1, p1)["Address"] == "10.66.0.3/24"
    ok(d1, "IpamDriver.ReleaseAddress", {"PoolID": p1, "Address": "10.66.0.1"})  # host 1 removes its network
    assert addr(d2, p2, options=GW)["Address"] == "10.66.0.1/24"  # host 2 still has it
    assert "already in use" in addr(d1, p1, "10.66.0.1")["Err"]
    ok(d1, "IpamDriver.ReleasePool", {"PoolID": p1})


def test_full_pool_and_concurrent_requests():
    d, _ = make_driver()
    p = pool(d, "10.9.0.0/29")  # .1 gateway, .2-.6 for containers
    addr(d, p, options=GW)
    with ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(lambda _: addr(d, p), range(8)))
    got = sorted(a["Address"] for a in answers if "Address" in a)
    assert got == [f"10.9.0.{i}/29" for i in range(2, 7)]
    assert [a["Err"] for a in answers if "Err" in a] == ["no free address left in 10.9.0.0/29"] * 3
