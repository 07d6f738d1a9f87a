"""etcd endpoint lists as operators write them ("h:p,h:p", URLs, bracketed IPv6), parsed once for every transport."""

from __future__ import annotations

from collections import namedtuple

from .errors import StoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


class Endpoint(namedtuple("Endpoint", "host port tls", defaults=(False,))):  # not typing.NamedTuple: start-up
    """host, port, tls (bool)."""

    __slots__ = ()
    host: str
    port: int
    tls: bool


def parse_endpoints(endpoints: str | Sequence[str], tls: bool = False) -> list[Endpoint]:
    """ "h:p,h:p" or ["h:p", "http://h:p", "https://h:p", "[::1]:p"] -> [Endpoint]; port defaults to 2379.

    An endpoint without a scheme uses TLS if `tls` (TLS options were given), as etcdctl does.
    """
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    out: list[Endpoint] = []
    for raw in (i.strip() for i in items):
        if not raw:
            continue
        item, secure = raw, tls
        if item.startswith("https://"):
            item, secure = item[len("https://"):], True
        elif item.startswith("http://"):
            item, secure = item[len("http://"):], False
        elif "://" in item:
            raise StoreError(f"bad etcd endpoint {raw!r}: the scheme must be http:// or https://")
        item = item.rstrip("/")
        host, sep, port = item.rpartition(":")
        if not sep or host.endswith(":") or (host.count(":") and not host.startswith("[")):
            host, port = item, "2379"  # no port, or a bare IPv6 address
        host = host.strip("[]")
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise StoreError(f"bad etcd endpoint {raw!r}: expected host:port")
        out.append(Endpoint(host, int(port), secure))
    if not out:
        raise StoreError("no etcd endpoints given")
    return out


__all__ = ["Endpoint", "parse_endpoints"]
