"""One place for fuzz-test sizes: CI runs a derandomised 10,000 cases per target; `make fuzz` runs more."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("TUPLENET_FUZZ_EXAMPLES", "10000"))
FUZZ_DERANDOMIZE = os.environ.get("TUPLENET_FUZZ_RANDOM", "") == ""

fuzz = settings(max_examples=FUZZ_EXAMPLES, derandomize=FUZZ_DERANDOMIZE, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
"""Decorator for a fuzz target: `@fuzz` then `@given(...)`."""
