"""The pipeline package imports a stage family's module on first use: its lazy DERIVED kinds must be the
modules' own, and computing a model without ACLs, load balancers, NAT or mirrors must not load their code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tuplenet.agent import pipeline
from tuplenet.agent.pipeline import acl, ecmp, ovswishes, untunnel


def test_lazy_derived_kinds_are_the_modules_own() -> None:
    own = (ovswishes.TUNNELS, ecmp.ECMP_GROUPS, acl.ACLS, untunnel.DSR_NETS)
    assert [(d.kind, d.sources) for d in pipeline.DERIVED] == [(d.kind, d.sources) for d in own]
    for lazy, real in zip(pipeline.DERIVED, own, strict=True):
        assert lazy.derive.__name__.endswith(real.derive.__name__)
        assert lazy.compute.__name__.endswith(real.compute.__name__)


def test_lazy_derive_gives_what_the_module_gives() -> None:
    from tuplenet.model import LSR, Chassis

    lsr = LSR("LR-A", "r1", "10.10.4.0", 24, "10.10.2.2", "LR-A_to_LS-B")
    ch = Chassis("hv1", "192.168.100.2", 1)
    assert list(pipeline.DERIVED[1].derive(("lsr", "LR-A", "r1"), lsr)) == \
        list(ecmp.ECMP_GROUPS.derive(("lsr", "LR-A", "r1"), lsr))
    assert list(pipeline.DERIVED[0].derive(("chassis", "hv1"), ch)) == \
        list(ovswishes.TUNNELS.derive(("chassis", "hv1"), ch))


_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from topo_helpers import tutorial_facts
from tuplenet.trace.fabric import Fabric, Model
Fabric(Model(tutorial_facts())).pipeline("hv1")
print(json.dumps(sorted(m for m in sys.modules if m.startswith("tuplenet"))))
"""


def test_a_model_without_acl_lb_nat_or_mirror_loads_none_of_their_modules() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE, os.path.dirname(__file__)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    modules = set(json.loads(out.stdout))
    assert "tuplenet.agent.pipeline.switching" in modules  # it did compute flows
    unused = ["acl", "lb", "lbhealth", "nat", "nat_xlate", "mirror"]
    assert sorted(m for m in modules if m.rsplit(".", 1)[-1] in unused and ".pipeline." in m) == []
    assert "tuplenet.agent.healthprobe" not in modules and "tuplenet.agent.pinctrl" not in modules
