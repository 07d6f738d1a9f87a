"""Give the `ovs` library its C JSON parser when the pip wheel lacks it.

The PyPI wheel of `ovs` is pure Python, so the IDL parses OVSDB's JSON in Python: about 1.5 s for the
initial sync of a host with 2,000 tunnel ports, during which the agent's main thread starves. Debian's
python3-openvswitch ships the same parser compiled (`ovs/_json.*.so`) for CPython 3.11; when it is present
and loads, it is registered as `ovs._json` before `ovs.json` is imported. Otherwise nothing changes.
Import this module before anything imports `ovs.json`.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import sys

log = logging.getLogger(__name__)

SEARCH = "/usr/lib/python3/dist-packages/ovs/_json.cpython-{v}*-linux-gnu.so"


def install() -> bool:
    if "ovs._json" in sys.modules:
        return True
    if "ovs.json" in sys.modules:
        return sys.modules["ovs.json"].PARSER == "C"
    try:
        import ovs._json  # noqa: F401 - a wheel that has it
        return True
    except ImportError:
        pass
    version = f"{sys.version_info.major}{sys.version_info.minor}"
    for path in glob.glob(SEARCH.format(v=version)):
        try:
            spec = importlib.util.spec_from_file_location("ovs._json", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except (ImportError, OSError) as exc:
            log.debug("C JSON parser at %s not usable: %s", path, exc)
            continue
        sys.modules["ovs._json"] = module
        import ovs

        ovs._json = module  # type: ignore[attr-defined]
        return True
    return False


C_PARSER = install()
