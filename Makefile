# The two commands: `make demo` and `make test`. Both install what they need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
APT_PACKAGES = openvswitch-switch etcd-server etcd-client containernetworking-plugins graphviz \
               iperf3 tcpdump ethtool iproute2 iputils-ping procps python3-openvswitch \
               podman runc busybox-static iptables util-linux docker.io

.PHONY: all deps apt venv bytecode lint test test-unit test-integration test-e2e demo bench fuzz clean

all: test

apt:
	@scripts/ensure-apt.sh $(APT_PACKAGES)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[dev]'
	scripts/link-system-ovs.sh $(VENV)  # the ovs library comes from Debian's python3-openvswitch only
	touch $@

venv: apt $(VENV)/.installed

# Bytecode as a packaged install has it (pip compiles wheels): short-lived commands (tpctl, tpcni) and the
# agent's start would otherwise compile every module on each start when PYTHONDONTWRITEBYTECODE is set.
bytecode: venv
	@$(PY) -m compileall -q src/tuplenet >/dev/null

deps: apt venv bytecode

lint: venv
	$(VENV)/bin/ruff check src tests bench

# Fuzz targets (10,000 derandomised cases each) are pure CPU: they run on both cores after the rest, which
# runs alone so the timing-sensitive host tests never compete with them.
test: deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not fuzz" $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m fuzz -n 2 $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: none selected

test-unit: venv
	$(VENV)/bin/pytest -q tests/unit

demo: deps
	$(PY) -m tuplenet.sandbox.demo $(DEMO_ARGS)

fuzz: deps
	TUPLENET_FUZZ_EXAMPLES=200000 TUPLENET_FUZZ_RANDOM=1 $(VENV)/bin/pytest -q -p no:cacheprovider -m fuzz tests

bench: deps
	$(PY) bench/run_all.py $(BENCH)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
