"""A small CNI runtime (what libcni does), for tests, benchmarks and trying a network by hand.

It executes plugins exactly as the spec's runtime does: the plugin found by `type` in the plugin
directories, CNI_* variables in the environment, the network configuration on stdin with `name`,
`cniVersion`, `prevResult` and the `runtimeConfig` the plugin declared as capabilities injected; ADD runs
the list in order, DEL in reverse, both carrying the previous result.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections.abc import Sequence
from typing import Any


class PluginError(Exception):
    """A plugin failed: its exit status, the CNI error JSON it printed (if any) and its stderr."""

    def __init__(self, plugin: str, command: str, status: int, error: dict[str, Any] | None, stderr: str) -> None:
        msg = (error or {}).get("msg") or stderr.strip() or f"exit status {status}"
        super().__init__(f"{plugin} {command}: {msg}")
        self.plugin, self.command, self.status, self.error, self.stderr = plugin, command, status, error, stderr


class Invocation:
    """One plugin run: exit status, parsed stdout (None if empty or not JSON), raw out/err, wall time."""

    __slots__ = ("status", "json", "stdout", "stderr", "seconds", "cpu_seconds")

    def __init__(self, status: int, stdout: str, stderr: str, seconds: float, cpu_seconds: float = 0.0) -> None:
        self.status, self.stdout, self.stderr, self.seconds = status, stdout, stderr, seconds
        self.cpu_seconds = cpu_seconds  # user+sys of the plugin and what it ran (exact when runs are sequential)
        try:
            self.json: Any = json.loads(stdout) if stdout.strip() else None
        except ValueError:
            self.json = None


class Runtime:
    """Plugins from `plugin_dirs`; `prefix` runs them elsewhere (e.g. ["nsenter", "--net=/run/netns/hv1"])."""

    def __init__(self, plugin_dirs: Sequence[str], prefix: Sequence[str] = (), env: dict[str, str] | None = None):
        self.plugin_dirs = list(plugin_dirs)
        self.prefix = list(prefix)
        self.env = dict(env or {})

    def find(self, plugin: str) -> str:
        for d in self.plugin_dirs:
            path = os.path.join(d, plugin)
            if os.access(path, os.X_OK):
                return path
        raise FileNotFoundError(f"CNI plugin {plugin!r} not found in {self.plugin_dirs}")

    def invoke(self, plugin: str, command: str, stdin: bytes | str | dict[str, Any], container_id: str = "",
               netns: str = "", ifname: str = "", args: str = "", env: dict[str, str] | None = None,
               timeout: float = 60) -> Invocation:
        """Run one plugin once; nothing is interpreted (tests look at status and output themselves)."""
        data = json.dumps(stdin) if isinstance(stdin, dict) else stdin
        penv = {**os.environ, **self.env, "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
                "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args,
                "CNI_PATH": os.pathsep.join(self.plugin_dirs), **(env or {})}
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([*self.prefix, self.find(plugin)], input=data.encode() if isinstance(data, str)
                              else data, capture_output=True, env=penv, timeout=timeout)
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return Invocation(proc.returncode, proc.stdout.decode(errors="replace"),
                          proc.stderr.decode(errors="replace"), wall, cpu)

    def start(self, plugin: str, command: str, stdin: dict[str, Any], container_id: str, netns: str,
              ifname: str) -> subprocess.Popen[bytes]:
        """Start one plugin run without waiting (a test can kill it half way, as a runtime timeout does)."""
        penv = {**os.environ, **self.env, "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
                "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": "", "CNI_PATH": os.pathsep.join(self.plugin_dirs)}
        proc = subprocess.Popen([*self.prefix, self.find(plugin)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=penv)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(stdin).encode())
        proc.stdin.close()
        return proc

    @staticmethod
    def plugin_conf(netlist: dict[str, Any], plugin: dict[str, Any], prev: dict[str, Any] | None,
                    runtime_config: dict[str, Any] | None) -> dict[str, Any]:
        conf = {**plugin, "name": netlist["name"], "cniVersion": netlist["cniVersion"]}
        if prev is not None:
            conf["prevResult"] = prev
        caps = [k for k, on in (plugin.get("capabilities") or {}).items() if on]
        rc = {k: v for k, v in (runtime_config or {}).items() if k in caps}
        if rc:
            conf["runtimeConfig"] = rc
        return conf

    def add(self, netlist: dict[str, Any], container_id: str, netns: str, ifname: str = "eth0",
            runtime_config: dict[str, Any] | None = None, args: str = "") -> dict[str, Any]:
        prev: dict[str, Any] | None = None
        for plugin in netlist["plugins"]:
            conf = self.plugin_conf(netlist, plugin, prev, runtime_config)
            r = self.invoke(plugin["type"], "ADD", conf, container_id, netns, ifname, args)
            if r.status != 0:
                raise PluginError(plugin["type"], "ADD", r.status, r.json, r.stderr)
            prev = r.json
        return prev or {}

    def delete(self, netlist: dict[str, Any], container_id: str, netns: str, ifname: str = "eth0",
               prev: dict[str, Any] | None = None, runtime_config: dict[str, Any] | None = None) -> None:
        for plugin in reversed(netlist["plugins"]):
            conf = self.plugin_conf(netlist, plugin, prev, runtime_config)
            r = self.invoke(plugin["type"], "DEL", conf, container_id, netns, ifname)
            if r.status != 0:
                raise PluginError(plugin["type"], "DEL", r.status, r.json, r.stderr)

    def check(self, netlist: dict[str, Any], container_id: str, netns: str, ifname: str,
              prev: dict[str, Any], runtime_config: dict[str, Any] | None = None) -> None:
        for plugin in netlist["plugins"]:
            conf = self.plugin_conf(netlist, plugin, prev, runtime_config)
            r = self.invoke(plugin["type"], "CHECK", conf, container_id, netns, ifname)
            if r.status != 0:
                raise PluginError(plugin["type"], "CHECK", r.status, r.json, r.stderr)


def write_launcher(directory: str, python: str, name: str = "tpcni") -> str:
    """An executable `tpcni` in `directory` running this checkout's plugin with `python` (for CNI_PATH)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(f"#!{python}\nimport sys\nfrom tuplenet.cni.main import main\nsys.exit(main())\n")
    os.chmod(path, 0o755)
    return path
