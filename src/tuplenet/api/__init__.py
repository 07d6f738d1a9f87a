"""HTTP management API (0.3's tpmpa, redesigned): every tpctl operation as JSON over HTTP.

Served by the same control layer as tpctl (tuplenet.control), so validation, CAS and messages are shared.
`create_app(store, auth)` builds the ASGI app; `tuplenet-api` (tuplenet.api.main) serves it with uvicorn.
"""

from __future__ import annotations

from .app import create_app
from .auth import Auth

__all__ = ["Auth", "create_app"]
