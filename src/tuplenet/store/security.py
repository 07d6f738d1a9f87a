"""TLS and user/password settings for etcd, and the one place every client parses them.

Options and environment variables are spelled as etcdctl spells them (`--cacert`, `--cert`, `--key`,
`--user USER[:PASSWORD]`, `--password`; `ETCDCTL_CACERT` ...), so an operator's etcdctl setup carries over.
tpctl, the agent and any later client call add_arguments() on their parser and from_args() after parsing.
`ssl` is imported only when a TLS context is built: tpctl without TLS must not pay for it.
"""

from __future__ import annotations

from ..records import dataclass
from .errors import StoreError, TLSError
from .security_options import OPTIONS

TYPE_CHECKING = False  # typing and argparse stay unloaded: tpcni and tpctl --version pass through here
if TYPE_CHECKING:
    import argparse
    import ssl
    from collections.abc import Mapping
    from typing import Any

ENV = {"cacert": "ETCDCTL_CACERT", "cert": "ETCDCTL_CERT", "key": "ETCDCTL_KEY", "user": "ETCDCTL_USER",
       "password": "ETCDCTL_PASSWORD"}


@dataclass(frozen=True)
class EtcdSecurity:
    """How to reach a secured etcd: CA bundle, client certificate + key, and an etcd user.

    Without `cacert` an https endpoint is checked against the system CAs. Any of cacert/cert makes endpoints
    given without a scheme use https (as etcdctl does). `password` is kept out of repr().
    """

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    user: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise StoreError("--cert and --key must be given together (client certificate and its key)")
        if self.user is not None and not self.user:
            raise StoreError("--user: empty user name")
        if self.user and self.password is None:
            raise StoreError(f"no password for etcd user {self.user!r}: use --user {self.user}:PASSWORD, "
                             "--password or ETCDCTL_PASSWORD")

    def __repr__(self) -> str:
        parts = [f"{k}={v!r}" for k, v in (("cacert", self.cacert), ("cert", self.cert), ("key", self.key),
                                            ("user", self.user)) if v]
        return f"EtcdSecurity({', '.join(parts)})"

    @property
    def tls(self) -> bool:
        """True if TLS material was given, so endpoints without a scheme mean https."""
        return bool(self.cacert or self.cert)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context verifying the server (hostname included) and presenting our certificate.

        TLSError with the file named if a file is missing or is not what it claims to be.
        """
        import ssl

        try:
            ctx = ssl.create_default_context(cafile=self.cacert) if self.cacert else ssl.create_default_context()
        except (OSError, ValueError) as exc:
            raise TLSError(f"cannot load CA certificate --cacert {self.cacert}: {_reason(exc)}") from None
        if self.cert:
            try:
                ctx.load_cert_chain(self.cert, self.key)
            except (OSError, ValueError) as exc:
                raise TLSError(f"cannot load client certificate --cert {self.cert} / --key {self.key}: "
                               f"{_reason(exc)}") from None
        return ctx


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
    text = str(reason or exc or type(exc).__name__)
    return text.splitlines()[0][:200] if text else type(exc).__name__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --cacert, --cert, --key, --user and --password to a client's parser (all default to unset)."""
    for flags, kw in OPTIONS:
        parser.add_argument(*flags, **kw)


def from_args(args: argparse.Namespace | Any, env: Mapping[str, str]) -> EtcdSecurity:
    """Options win over the ETCDCTL_* variables; `--user u:p` carries its password. StoreError if
    inconsistent (cert without key, user without password)."""

    def pick(name: str) -> str | None:
        value = getattr(args, name, None)
        if value is None:
            value = env.get(ENV[name]) or None
        return value

    user, password = pick("user"), None
    if user is not None and ":" in user:
        user, password = user.split(":", 1)
    explicit = getattr(args, "password", None)
    if explicit is not None:
        password = explicit
    elif password is None:
        password = env.get(ENV["password"])
    return EtcdSecurity(cacert=pick("cacert"), cert=pick("cert"), key=pick("key"), user=user,
                        password=password if user is not None else None)
