"""The per-host daemon. Loading it first gives the ovs library its C JSON parser when one is available."""

from . import ovs_json  # noqa: F401 - must run before anything imports ovs.json
