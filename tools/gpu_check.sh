#!/usr/bin/env bash
# The GPU checks of the CUDA backend, in one call on the lent GPU machine
# (see ../shared/device/README.md). Prepare once, in the project's root, on this side:
#     echo /.whl/ >> .git/info/exclude
#     mkdir -p .whl && cp ../shared/device/wheels-cp312/*.whl ../shared/device/probe.sh .whl/
#     pip download -q --no-deps -d .whl threadpoolctl   # pure Python; the device has no network
# then run it with the device tool: command "bash tools/gpu_check.sh", carry [".whl"],
# timeout_s 600 (the stages below add up to 540 s). It installs the carried wheels into
# /tmp/site, generates the protobuf module, prints the machine (probe.sh), runs `pytest -m cuda`
# (layer, GEMM, RNG and solver parity, and the LeNet GPU-vs-CPU run), then benchmarks/sgemm.py
# and benchmarks/gpu_nets.py. Figures go to $OUT as JSON (sgemm.json, gpu_nets.json), with
# pytest.xml and the whole log (log); without $OUT they go to runs/gpu_check. Each stage has its
# own time limit so that a slow one leaves the others their turn; the exit status is that of the
# first stage that failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

stage() {  # stage NAME SECONDS COMMAND...: run with a time limit, report, remember the first failure
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s) ==="
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - start))s ==="
    if [ "$rc" -ne 0 ] && [ "${FAILED:-0}" -eq 0 ]; then FAILED=$rc; fi
    return 0
}

main() {
    FAILED=0
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "wheel install failed (are the wheels in .whl/ and carried?)"; return 1; }
    export PYTHONPATH=/tmp/site:$PWD
    python3 -m grpc_tools.protoc -Iproto --python_out=nvcaffe_py/proto proto/caffe.proto \
        || { echo "protoc failed"; return 1; }
    stage probe 60 bash .whl/probe.sh
    stage pytest-cuda 240 python3 -m pytest -q -m cuda -p no:cacheprovider --junitxml "$OUT/pytest.xml" tests
    stage sgemm 60 python3 benchmarks/sgemm.py --json "$OUT/sgemm.json"
    stage gpu-nets 180 python3 benchmarks/gpu_nets.py --json "$OUT/gpu_nets.json"
    return "$FAILED"
}

main 2>&1 | tee "$OUT/log"
