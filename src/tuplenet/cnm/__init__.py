"""tpcnm: Docker's libnetwork remote network driver for TupleNet.

A docker network is a logical switch (optionally linked to a router), an endpoint is a switch port bound to
this host, and the container's interface is one end of a veth pair whose other end sits on br-int with
`iface-id` naming the port. Layers: `protocol` (request bodies -> calls, errors -> {"Err": ...}, pure),
`driver` (the operations, over the control layer and a `host`), `host` (veth and OVS on this machine),
`ipam` (addresses shared by every host, reserved in etcd), `records` (the driver's own state in etcd),
`server`/`main` (the unix-socket HTTP server, `tpcnm`); `lab` runs dockerd on the sandbox for tests/bench.
"""
