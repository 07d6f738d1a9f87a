#!/usr/bin/env bash
# Regenerate the committed Python modules of src/tuplenet/store/etcdpb/rpc.proto (etcd's v3 API subset).
# Needs grpcio-tools (pip install grpcio-tools==1.85.1); the runtime needs only grpcio and protobuf.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m grpc_tools.protoc -Isrc --python_out=src --pyi_out=src --grpc_python_out=src \
    src/tuplenet/store/etcdpb/rpc.proto
echo "generated src/tuplenet/store/etcdpb/rpc_pb2.py rpc_pb2.pyi rpc_pb2_grpc.py"
