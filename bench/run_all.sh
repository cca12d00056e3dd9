#!/usr/bin/env bash
# Run every benchmark in one go; each prints its figures and the ratio to local disk or the
# named peer measured in the same run. Usage: bash bench/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
for b in bench_import bench_auth bench_client bench_hub bench_mount bench_seqwrite bench_fsx; do
    echo "=== $b"
    "$PY" "bench/$b.py"
done
