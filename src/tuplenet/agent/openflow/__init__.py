"""OpenFlow 1.4 for the agent: a pure codec (codec, oxm, actions, errors) and the connection (conn)."""

from .codec import FlowStats, PacketIn, TlvMapping
from .conn import TUN_METADATA0, OpenFlowConnection
from .errors import ErrorMsg, OpenFlowDisconnected, OpenFlowError, OpenFlowTimeout

__all__ = ["TUN_METADATA0", "ErrorMsg", "FlowStats", "OpenFlowConnection", "OpenFlowDisconnected",
           "OpenFlowError", "OpenFlowTimeout", "PacketIn", "TlvMapping"]
