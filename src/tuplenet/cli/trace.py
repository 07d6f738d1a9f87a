"""`tpctl trace`: where does this packet go? Live by default: the agent holding the source port injects a
marked packet and every host it reaches reports its part through etcd (trace/live.py); `--detect` does so
for random pairs and prints only the wrong ones (trace/livedetect.py). `--simulate` computes every
chassis's flows from the etcd model with the agent's own engine and walks them instead; both print the
same report. Heavy imports happen only when a trace runs, so `tpctl --help` stays instant."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

EXIT_WRONG = 3  # --detect found wrong paths


def add_parser(groups: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = groups.add_parser("trace", parents=[common], help="trace a packet through the logical and physical path",
                          description="Trace a packet from a logical port, host by host, with the stage, "
                                      "logical object and rule of every step.")
    add_arguments(p)
    return p


# add_arguments() and tpctl's argparse-free path (cli/quickargs.py) both read this table.
OPTIONS = (
    (("--simulate",), {"action": "store_true",
                       "help": "compute the flows of every chassis from etcd and walk them (no packet is sent)"}),
    (("-s", "--src-port"), {"metavar": "LS/PORT", "help": "where the packet enters (required)"}),
    (("--dst-ip",), {"help": "destination IP (the MAC is filled in: the port's, or the router's)"}),
    (("--dst-mac",), {"help": "destination MAC"}),
    (("--src-ip",), {"help": "source IP (default: the port's)"}),
    (("--src-mac",), {"help": "source MAC (default: the port's)"}),
    (("--proto",), {"default": "icmp", "help": "icmp (echo request), tcp, udp or arp (request)"}),
    (("--ttl",), {"type": int, "default": 64, "help": "IP TTL (default 64)"}),
    (("--sport",), {"type": int, "default": 12345, "help": "TCP/UDP source port"}),
    (("--dport",), {"type": int, "default": 80, "help": "TCP/UDP destination port"}),
    (("--icmp-type",), {"type": int, "default": 8, "help": "ICMP type (default 8, echo request)"}),
    (("--frame", "--header"), {"dest": "frame", "metavar": "HEX",
                               "help": "the whole Ethernet frame in hex instead of addresses"}),
    (("--brief",), {"action": "store_true", "help": "hide pass-through steps of constant flows"}),
    (("--api",), {"metavar": "URL", "help": "--simulate: ask a running tuplenet-api (http[s]://HOST:PORT[/api/v2]; "
                                            "default "
                                            "$TUPLENET_API), which keeps the topology's flows computed; the "
                                            "token comes from $TUPLENET_API_TOKEN"}),
    (("--wait",), {"type": float, "default": 3.0, "metavar": "SECONDS",
                   "help": "live: how long to wait for the hosts' reports (default 3)"}),
    (("--detect",), {"nargs": "?", "const": "", "metavar": "LS,LS,...",
                     "help": "live: trace random pairs of ports (within the given switches, default: switches "
                             "joined by routers) and print only the pairs whose packet does not arrive"}),
    (("--pairs",), {"type": int, "default": 10, "help": "--detect: pairs per round (1..100, default 10)"}),
    (("--rounds",), {"type": int, "default": 1, "help": "--detect: rounds (default 1)"}),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    for flags, kw in OPTIONS:
        p.add_argument(*flags, **kw)


def request_of(opts: argparse.Namespace) -> Any:
    from tuplenet.trace.request import Request, TraceError, checked

    if not opts.src_port:
        raise TraceError("give the source port: --src-port LS/PORT")
    return checked(Request(opts.src_port, opts.dst_ip, opts.dst_mac, opts.src_ip, opts.src_mac,
                           opts.proto.lower(), opts.ttl, opts.sport, opts.dport, opts.icmp_type, opts.frame))


def load_model(endpoints: str, prefix: str, timeout: float, security: Any = None) -> Any:
    """The topology as the agents see it (a half-written import is held back, as they do)."""
    from tuplenet.agent.etcdsync import TopologySync
    from tuplenet.store import Store
    from tuplenet.trace.fabric import Model

    store = Store(endpoints, prefix=prefix, timeout=timeout, security=security)
    try:
        changes, _ = TopologySync(store, lambda *a: None).topology_listing()
    finally:
        store.close()
    return Model.from_changes(changes)


def simulate(model: Any, req: Any) -> dict[str, Any]:
    """The JSON document of a simulated trace of a checked request."""
    from tuplenet.trace.fabric import Fabric

    return walk(Fabric(model), req)


def walk(fabric: Any, req: Any) -> dict[str, Any]:
    """The JSON document of a checked request traced through `fabric` (fresh, or kept warm by the API)."""
    from tuplenet.trace.report import document
    from tuplenet.trace.request import build

    ls, port, pkt = build(fabric.model.facts, req)
    return document(fabric, fabric.trace(ls, port, pkt))


def run(opts: argparse.Namespace, as_json: bool) -> int:
    import os

    api = opts.api or os.environ.get("TUPLENET_API")
    if opts.simulate and api and opts.detect is None:  # the thin client: nothing of the pipeline loads
        text = served(api, opts, as_json, os.environ)
        if as_json:
            import json

            text = json.dumps(json.loads(text), indent=2) + "\n"
        sys.stdout.write(text)
        return 0
    from tuplenet.store.security import from_args

    security = from_args(opts, os.environ)
    switches = live_options(opts)
    if opts.detect is not None:
        return detect(opts, as_json, security, switches)
    req = request_of(opts)
    if opts.simulate:
        doc = simulate(load_model(opts.endpoints, opts.prefix, opts.timeout, security), req)
    else:
        doc = live(opts, req, security)
    if as_json:
        import json

        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        from tuplenet.trace.report import to_text

        sys.stdout.write(to_text(doc, brief=opts.brief))
    return 0


class ApiError(ValueError):
    """--api: a bad URL, an unreachable server or its error answer; one line for the user."""


def api_target(api: str) -> tuple[str, int, str, bool]:
    """--api URL (http[s]://HOST[:PORT][/PATH]) -> (host, port, path of the API's routes, TLS?); ApiError with
    one line otherwise. Parsed here rather than by urllib, whose import this thin client does without."""
    bad = ApiError(f"--api {api!r}: give http://HOST:PORT or https://HOST:PORT")
    scheme, sep, rest = api.partition("://")
    if not sep or scheme not in ("http", "https") or any(c in rest for c in "?#@ ") or not rest.isprintable():
        raise bad
    hostport, slash, path = rest.partition("/")
    if hostport.startswith("["):  # [IPv6]:port
        host, close, after = hostport[1:].partition("]")
        if not close or (after and not after.startswith(":")):
            raise bad
        port_text = after[1:]
    else:
        host, _, port_text = hostport.partition(":")
    if not host or "[" in host or "]" in host or (":" in host and not hostport.startswith("[")):
        raise bad
    if port_text and not (len(port_text) < 6 and port_text.isascii() and port_text.isdigit()
                          and 0 < int(port_text) < 65536):
        raise ApiError(f"--api {api!r}: the port must be 1..65535")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    path = ("/" + path).rstrip("/") if slash else ""
    return host, port, path or "/api/v2", scheme == "https"


_QUERY_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _quote(text: str) -> str:
    return "".join(chr(b) if b in _QUERY_SAFE else f"%{b:02X}" for b in text.encode("utf-8", "surrogatepass"))


def served(api: str, opts: argparse.Namespace, as_json: bool, env: Any) -> str:
    """The trace as a running tuplenet-api answers `GET /trace` (same document, same text): only this thin
    client starts, the server keeps the model and the computed flows between topology changes."""
    from tuplenet.store.http1 import HTTPError, LeanConnection

    host, port, path, tls = api_target(api)
    fields = {"src_port": opts.src_port, "dst_ip": opts.dst_ip, "dst_mac": opts.dst_mac, "src_ip": opts.src_ip,
              "src_mac": opts.src_mac, "proto": opts.proto, "ttl": opts.ttl, "sport": opts.sport,
              "dport": opts.dport, "icmp_type": opts.icmp_type, "frame": opts.frame,
              "format": "json" if as_json else "text", "brief": "true" if opts.brief else None}
    query = "&".join(f"{k}={_quote(str(v))}" for k, v in fields.items() if v is not None)
    context = None
    if tls:
        import ssl

        context = ssl.create_default_context(cafile=env.get("TUPLENET_API_CACERT") or None)
    headers = {"Accept": "application/json" if as_json else "text/plain"}
    token = env.get("TUPLENET_API_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = LeanConnection(host, port, timeout=opts.timeout, context=context)
    try:
        conn.request("GET", f"{path}/trace?{query}", b"", headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, HTTPError) as exc:
        raise ApiError(f"tuplenet-api at {api}: {exc}") from None
    finally:
        conn.close()
    text = body.decode("utf-8", "replace")
    if resp.status != 200:
        try:
            import json

            why = json.loads(text).get("error") or text
        except (ValueError, AttributeError):
            why = text
        raise ApiError(f"tuplenet-api at {api} answered {resp.status}: {' '.join(str(why).split())[:300]}")
    return text if text.endswith("\n") else text + "\n"


def _store(opts: argparse.Namespace, security: Any) -> Any:
    from tuplenet.store import Store

    return Store(opts.endpoints, prefix=opts.prefix, timeout=opts.timeout, security=security)


def _facts(store: Any) -> dict[tuple, Any]:
    """The topology records a live trace needs, decoded without the agent's machinery (a tpctl start must
    stay fast: the budget is tpctl start to printed path); a record that does not decode is skipped, as
    the agents skip it."""
    from tuplenet.model import ModelError, decode_kv
    from tuplenet.model.entities import ROOT

    facts: dict[tuple, Any] = {}
    for kv in store.get_prefix(ROOT)[0]:
        try:
            e = decode_kv(kv.key, kv.value)
        except ModelError:
            continue
        if e is not None:
            facts[(e.kind, *e.ident)] = e
    return facts


def live(opts: argparse.Namespace, req: Any, security: Any) -> dict[str, Any]:
    """A live trace's document: a real marked packet, reported by every host it reaches."""
    from tuplenet.trace import live as L

    store = _store(opts, security)
    try:
        return L.trace(store, _facts(store), req, opts.wait)
    finally:
        store.close()


def live_options(opts: argparse.Namespace) -> list[str] | None:
    """Check the live options (TraceError names the first bad one); the --detect switches (None: all)."""
    from tuplenet.trace.request import TraceError

    if not 0 < opts.wait <= 60:
        raise TraceError("--wait must be more than 0 and at most 60 seconds")
    if opts.detect is None:
        return None
    from tuplenet.model import ModelError, validate_name
    from tuplenet.trace.livedetect import MAX_PAIRS

    if opts.simulate:
        raise TraceError("--detect traces live packets; drop --simulate")
    if not 1 <= opts.pairs <= MAX_PAIRS:
        raise TraceError(f"--pairs must be 1..{MAX_PAIRS}, not {opts.pairs}")
    if not 1 <= opts.rounds <= 1000:
        raise TraceError(f"--rounds must be 1..1000, not {opts.rounds}")
    if not opts.detect:
        return None
    try:
        return [validate_name(s) for s in opts.detect.split(",")]
    except ModelError as exc:
        raise TraceError(f"--detect: {exc}") from None


def detect(opts: argparse.Namespace, as_json: bool, security: Any, switches: list[str] | None) -> int:
    """--detect: print the wrong pairs only (nothing and exit 0 when every packet arrived)."""
    from tuplenet.trace import livedetect as D

    store = _store(opts, security)
    try:
        facts = _facts(store)
        wrong: list[dict[str, Any]] = []
        for _ in range(opts.rounds):
            wrong += D.detect(store, facts, switches, opts.pairs, opts.wait)
            if wrong:
                break  # 0.3 stopped at the first round with a wrong path
    finally:
        store.close()
    if as_json:
        if wrong:
            import json

            sys.stdout.write(json.dumps(wrong, indent=2) + "\n")
    else:
        for w in wrong:
            sys.stdout.write(f"wrong path {w['source']} -> {w['target']} ({w['target_ip']}): {w['reason']}\n")
    return EXIT_WRONG if wrong else 0
