"""The per-host daemon. Its OVSDB side uses the `ovs` library of Debian's python3-openvswitch (with the
compiled JSON parser; `scripts/link-system-ovs.sh` makes it importable from a virtualenv)."""
