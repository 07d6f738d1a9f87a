#!/bin/sh
# Make Debian's python3-openvswitch importable from a virtualenv: the one source of the `ovs` library
# (IDL, JSON-RPC) the agent uses, with its compiled JSON parser. Idempotent.
#   scripts/link-system-ovs.sh /opt/tuplenet
set -eu
venv=${1:?usage: link-system-ovs.sh VENV}
src=/usr/lib/python3/dist-packages/ovs
if [ ! -d "$src" ]; then
    echo "link-system-ovs: $src is missing; install it with: apt-get install python3-openvswitch" >&2
    exit 1
fi
venv=$(cd "$venv" && pwd)
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$venv/system-ovs"
ln -sfn "$src" "$venv/system-ovs/ovs"
echo "$venv/system-ovs" > "$site/tuplenet-system-ovs.pth"
"$venv/bin/python" -c 'import ovs.json, sys; sys.exit(0 if ovs.json.PARSER == "C" else print("link-system-ovs: note: pure-Python JSON parser (the compiled one needs CPython 3.11)"))'
