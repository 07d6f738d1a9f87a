"""The agent (0.3 options), plus `tuplenet check` and `tuplenet status` (the `tuplenet` command adds
`tuplenet sandbox ...`, see cli/tuplenet_cmd.py)."""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import os
import signal
import sys

from .config import ConfigError, load


def setup_logging(logdir: str) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if not logdir:
        h: logging.Handler = logging.StreamHandler()
        h.setFormatter(fmt)
        root.addHandler(h)
        return
    os.makedirs(logdir, exist_ok=True)
    main = logging.handlers.RotatingFileHandler(os.path.join(logdir, "tuplenet.log"), maxBytes=100 << 20,
                                                backupCount=5)
    warn = logging.handlers.RotatingFileHandler(os.path.join(logdir, "tuplenet_warn.log"), maxBytes=100 << 20,
                                                backupCount=5)
    warn.setLevel(logging.WARNING)
    for h in (main, warn):
        h.setFormatter(fmt)
        root.addHandler(h)


def _pidfile(rundir: str) -> str:
    os.makedirs(rundir, exist_ok=True)
    path = os.path.join(rundir, "tuplenet.pid")
    try:
        with open(path) as f:
            old = int(f.read().strip() or 0)
    except (OSError, ValueError):
        old = 0
    if old and old != os.getpid():
        try:
            os.kill(old, 0)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise ConfigError(f"another agent (pid {old}) owns {path}") from None
        else:
            raise ConfigError(f"another agent is running with pid {old} ({path}); stop it first")
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    return path


def run_agent(argv: list[str]) -> int:
    try:
        import ovs.db.idl  # noqa: F401 - the OVSDB library: fail with one line, not a traceback
    except ImportError:
        print("tuplenet: the `ovs` Python library is missing: apt-get install python3-openvswitch, then "
              "scripts/link-system-ovs.sh <venv> when the agent runs from a virtualenv", file=sys.stderr)
        return 2
    from .daemon import Agent, StartupError

    try:
        cfg = load(argv)
    except ConfigError as exc:
        print(f"tuplenet: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.logdir)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` dumps every thread's stack
    log = logging.getLogger("tuplenet")
    try:
        pidfile = _pidfile(cfg.rundir)
    except (ConfigError, OSError) as exc:
        print(f"tuplenet: {exc}", file=sys.stderr)
        return 2
    if cfg.ondemand:
        log.info("ONDEMAND=1: flows for local ports and what they talk to (idle ones go after %d s); "
                 "misses are redirected to a host of a pinned router", cfg.ondemand_idle)
    agent = Agent(cfg)
    try:
        agent.start()
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        print(f"tuplenet: {exc}", file=sys.stderr)
        agent.shutdown()
        os.unlink(pidfile)
        return 1
    try:
        agent.run()
    finally:
        try:
            os.unlink(pidfile)
        except OSError:
            pass
    return 0


def show_status(argv: list[str]) -> int:
    """Print the running agent's counters (`<TUPLENET_RUNDIR>/status.json`, rewritten after every change)."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="tuplenet status")
    ap.add_argument("--rundir", default=os.environ.get("TUPLENET_RUNDIR", "/var/run/tuplenet/"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    path = os.path.join(a.rundir, "status.json")
    try:
        with open(path) as f:
            st = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"tuplenet status: no agent status at {path}: {exc}", file=sys.stderr)
        return 1
    alive = True
    try:
        os.kill(int(st.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        alive = False
    except PermissionError:
        pass
    st["running"] = alive
    if a.json:
        print(json.dumps(st, indent=1))
        return 0
    e, of = st.get("engine", {}), st.get("openflow", {})
    print(f"chassis {st.get('chassis')}: agent pid {st.get('pid')} {'running' if alive else 'NOT running'}, "
          f"ready in {st.get('ready_ms')} ms")
    print(f"  facts {st.get('facts')}, flows {st.get('flows')} desired / {st.get('installed')} installed, "
          f"tunnels {st.get('tunnels')}, etcd revision {st.get('etcd_revision')}, RSS {st.get('rss_mb')} MB")
    print(f"  engine: {e.get('full_runs')} full, {e.get('incremental_runs')} incremental runs, "
          f"{e.get('conflicts')} conflicts, {e.get('resyncs')} resyncs; bad records {st.get('bad_records')}")
    print(f"  openflow: {of.get('bundles')} bundles, +{of.get('flows_added')} / -{of.get('flows_deleted')} flows, "
          f"{of.get('failures')} failures, last bundle {round(of.get('last_bundle_ms', 0), 1)} ms")
    _print_packet_ins(st.get("packet_ins") or {}, st.get("openflow_session") or {})
    _print_bindings(st.get("bindings") or {})
    if g := st.get("gateway_arp"):
        rej = ", ".join(f"{n} {k}" for k, n in sorted(g.get("rejected", {}).items())) or "none"
        print(f"  gateway ARP: {g.get('entries')} learned next hops (aging {g.get('aging_s')} s), {g.get('requests')} "
              f"requests, {g.get('learned')} learned, {g.get('refreshed')} renewed, {g.get('expired')} expired, "
              f"{g.get('announced')} gratuitous; rejected: {rej}")
    ecmp = st.get("ecmp") or {}
    if ecmp.get("groups"):
        print(f"  ecmp: {ecmp['groups']} equal-cost group(s), {ecmp.get('dead_drops', 0)} packets dropped with no "
              "edge alive")
    if dsr := st.get("untunnel"):  # ENABLE_UNTUNNEL (untunnel_host.py)
        state = "ready" if dsr.get("ok") else "NOT ready: " + "; ".join(dsr.get("problems") or [])
        print(f"  untunnel: {dsr.get('port')} ofport {dsr.get('ofport')} mac {dsr.get('mac')}, {state}")
    for chassis, b in sorted((st.get("bfd") or {}).items()):
        print(f"  bfd to {chassis}: {b.get('state', '?')}, forwarding {b.get('forwarding', '?')}, "
              f"remote {b.get('remote_state', '?')}, {b.get('flap_count', 0)} flaps")
    return 0 if alive else 1


def _print_packet_ins(p: dict, ses: dict) -> None:
    """Packet-ins and where floods were dropped; the OpenFlow session's health."""
    if p:
        queue = p.get("dropped_queue", 0) + p.get("dropped_openflow_queue", 0)
        print(f"  packet-ins: {p.get('received')} received, {p.get('replies')} answered; dropped "
              f"{p.get('dropped_meter', 0)} by meters, {queue} queue full, {p.get('dropped_source_rate')} over a "
              f"source's rate, {p.get('dropped_total_rate')} over the total rate; {p.get('errors')} errors")
    if ses:
        print(f"  openflow session: {ses.get('connects')} connects, {ses.get('resets')} resets, "
              f"{ses.get('bad_messages')} undecodable messages, {ses.get('async_errors')} unsolicited errors")


def _print_bindings(b: dict) -> None:
    """Binding state: the ports bound here and every iface-id this chassis does not bind, with why."""
    if not b:
        return
    conflicts, ambiguous = b.get("conflicts", {}), b.get("ambiguous", {})
    print(f"  bindings: {b.get('bound')} bound, {b.get('ready')} ready, {len(conflicts)} held elsewhere, "
          f"{len(ambiguous)} ambiguous, {b.get('claims')} claims written, {b.get('waiting')} waiting (backoff)")
    for iface, c in sorted(conflicts.items()):
        req = f", requested by {c['requested_chassis']}" if c.get("requested_chassis") else ""
        print(f"    iface-id {iface}: {c['lsp']} is bound to chassis {c['chassis'] or '(none)'}{req}")
    for iface, lsps in sorted(ambiguous.items()):
        print(f"    iface-id {iface}: ambiguous, names {', '.join(lsps)}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":
        from .check import main as check_main

        return check_main(argv[1:])
    if argv and argv[0] == "status":
        return show_status(argv[1:])
    return run_agent(argv)


if __name__ == "__main__":
    sys.exit(main())
