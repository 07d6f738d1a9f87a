"""OpenFlow 1.4 for the agent: a pure codec (codec, oxm, actions, errors) and the connection (conn).

The package's names load on first use (PEP 562): the pipeline imports only `meters` and `codec`, and
`tpctl trace` must not pay for the connection machinery (threads, selectors, the transport)."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .codec import FlowStats, PacketIn, TlvMapping
    from .conn import TUN_METADATA0, OpenFlowConnection
    from .errors import ErrorMsg, OpenFlowDisconnected, OpenFlowError, OpenFlowTimeout

_WHERE = {"FlowStats": "codec", "PacketIn": "codec", "TlvMapping": "codec", "TUN_METADATA0": "conn",
          "OpenFlowConnection": "conn", "ErrorMsg": "errors", "OpenFlowDisconnected": "errors",
          "OpenFlowError": "errors", "OpenFlowTimeout": "errors"}

__all__ = ["TUN_METADATA0", "ErrorMsg", "FlowStats", "OpenFlowConnection", "OpenFlowDisconnected",
           "OpenFlowError", "OpenFlowTimeout", "PacketIn", "TlvMapping"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
