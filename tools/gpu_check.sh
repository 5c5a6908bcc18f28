#!/usr/bin/env bash
# The GPU checks of the CUDA backend, in one call on the lent GPU machine
# (see ../shared/device/README.md). Prepare once, in the project's root, on this side:
#     echo /.whl/ >> .git/info/exclude
#     mkdir -p .whl && cp ../shared/device/wheels-cp312/*.whl ../shared/device/probe.sh .whl/
# then run it with the device tool: command "bash tools/gpu_check.sh", carry [".whl"],
# timeout_s 600 (the stages below add up to 540 s). It installs the carried wheels into
# /tmp/site and this checkout with `pip install -e .`, offline: the machine's python3 (a venv)
# has setuptools, wheel and threadpoolctl, as last read there, and the build generates the
# protobuf module; a missing setuptools is reported with what to carry. Then it prints the
# machine (probe.sh), runs `pytest -m cuda` (layer, GEMM, RNG and solver parity, and the LeNet
# GPU-vs-CPU run), then benchmarks/sgemm.py and benchmarks/gpu_nets.py. Figures go to $OUT as
# JSON (sgemm.json, gpu_nets.json), with pytest.xml and the whole log (log); without $OUT they
# go to runs/gpu_check. Each stage has its own time limit so that a slow one leaves the others
# their turn; the exit status is that of the first stage that failed.
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

check_build_backend() {  # pip's --no-build-isolation builds with what python3 has: say what is missing
    python3 - <<'PY'
import importlib.util
import sys

try:
    import setuptools
except ImportError:
    problem = "python3 has no setuptools"
else:
    version = tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())
    if version < (64,):
        problem = f"python3's setuptools {setuptools.__version__} predates editable installs (64)"
    elif version < (70, 1) and importlib.util.find_spec("wheel") is None:
        problem = f"python3's setuptools {setuptools.__version__} needs the wheel package, which is missing"
    else:
        problem = None
if problem:
    sys.exit(f"gpu_check: cannot 'pip install -e .' here: {problem}; carry setuptools in .whl/: "
             "pip download --no-deps -d .whl 'setuptools>=70.1'")
PY
}

install() {
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: wheel install failed (are the wheels in .whl/ and carried?)"; return 1; }
    # Ahead of the machine's own packages: pycuda, lmdb, grpcio-tools and a current protobuf.
    export PYTHONPATH=/tmp/site
    check_build_backend || return 1
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . \
        || { echo "gpu_check: 'pip install -e .' of this checkout failed (see pip's message above)"; return 1; }
    (cd /tmp && python3 -c "import nvcaffe_py, nvcaffe_py.layers, nvcaffe_py.solvers") \
        || { echo "gpu_check: the installed checkout does not import (see the traceback above)"; return 1; }
}

main() {
    FAILED=0
    install || return 1
    stage probe 60 bash .whl/probe.sh
    stage pytest-cuda 240 python3 -m pytest -q -m cuda -p no:cacheprovider --junitxml "$OUT/pytest.xml" tests
    stage sgemm 60 python3 benchmarks/sgemm.py --json "$OUT/sgemm.json"
    stage gpu-nets 180 python3 benchmarks/gpu_nets.py --json "$OUT/gpu_nets.json"
    return "$FAILED"
}

main 2>&1 | tee "$OUT/log"
