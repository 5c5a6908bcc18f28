#!/usr/bin/env bash
# The GPU checks of the CUDA backend, in one call on the lent GPU machine
# (see the how-to that comes with the lent machine's wheels). Prepare once, in the project's root, on this side:
#     echo /.whl/ >> .git/info/exclude
#     mkdir -p .whl && cp <the device wheels folder>/wheels-cp312/*.whl <the device wheels folder>/probe.sh .whl/
# then run it with the device tool: command "bash tools/gpu_check.sh", carry [".whl"],
# timeout_s 420. The stages' limits add up to 370 s, and each may overrun by its 5 s of grace
# before it is killed: at most 400 s, which leaves a 15-minute lease room to fix and rerun once.
#
# Stages, each with its own time limit so that a slow one leaves the others their turn:
#   install   the carried wheels into /tmp/site and this checkout with `pip install -e .`,
#             offline (the machine's python3 has setuptools, wheel and threadpoolctl, as last
#             read there; the build generates the protobuf module; a missing setuptools is
#             reported with what to carry). If it fails, nothing else runs.
#   probe     what the machine has, and PyCUDA compiling and running a kernel (.whl/probe.sh)
#   pytest    `pytest -m cuda` with NVCAFFE_REQUIRE_GPU=1: a CUDA test that cannot reach the GPU
#             fails instead of skipping (GEMM paths, layer, RNG and solver parity, LeNet GPU vs
#             CPU); a stage cut short by its limit is interrupted (SIGINT), so pytest.xml still
#             holds what ran
#   sgemm     benchmarks/sgemm.py: our SGEMM against cuBLAS by shape, split-K shapes included
#   nets      benchmarks/gpu_nets.py: AlexNet (64, 256) and ResNet-50 (64) against PyTorch +
#             cuDNN with TF32 off and on, and our CPU backend on the same nets
#   report    benchmarks/gpu_report.py: every figure above in one Markdown file
# Everything lands in $OUT (without $OUT: runs/gpu_check): log, stages.tsv, pytest.xml,
# sgemm.json, gpu_nets.json and the report, named benchmarks/results/<UTC date-time>-gpu-check.md;
# the report is also written there in this checkout. From the device tool, copy it from the
# returned files into benchmarks/results/ and commit it. The exit status is that of the first
# stage that failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check}
REPORT=benchmarks/results/$(date -u +%Y-%m-%d-%H%M)-gpu-check.md
GRACE=5  # seconds a stage may overrun its limit before it is killed
mkdir -p "$OUT" benchmarks/results
: > "$OUT/stages.tsv"
export PYTHONUNBUFFERED=1
export PYTHONPATH=/tmp/site  # the carried wheels (pycuda, lmdb, grpcio-tools, protobuf) first
export NVCAFFE_REQUIRE_GPU=1

stage() {  # stage NAME SECONDS COMMAND...: run with a time limit, record and report it
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s) ==="
    local start=$SECONDS
    timeout --signal=INT --kill-after="$GRACE" "$limit" "$@"  # INT: pytest still writes its XML
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - start))s ==="
    printf '%s\t%s\t%s\t%s\n' "$name" "$limit" "$rc" "$((SECONDS - start))" >> "$OUT/stages.tsv"
    if [ "$rc" -ne 0 ] && [ "${FAILED:-0}" -eq 0 ]; then FAILED=$rc; fi
    return "$rc"
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
    check_build_backend || return 1
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . \
        || { echo "gpu_check: 'pip install -e .' of this checkout failed (see pip's message above)"; return 1; }
    (cd /tmp && python3 -c "import nvcaffe_py, nvcaffe_py.layers, nvcaffe_py.solvers") \
        || { echo "gpu_check: the installed checkout does not import (see the traceback above)"; return 1; }
}

main() {
    FAILED=0
    export -f install check_build_backend
    stage install 35 bash -c install || return "$FAILED"
    stage probe 15 bash .whl/probe.sh
    # The GEMM's paths and the parity tests first, should the time run short.
    local first="tests/test_sgemm.py tests/test_cuda_parity.py"
    local rest
    rest=$(ls tests/test_*.py | grep -v -e test_sgemm.py -e test_cuda_parity.py)
    stage pytest 160 python3 -m pytest -q -m cuda -p no:cacheprovider --durations=15 --junitxml "$OUT/pytest.xml" \
        $first $rest
    stage sgemm 40 python3 benchmarks/sgemm.py --json "$OUT/sgemm.json"
    stage nets 110 python3 benchmarks/gpu_nets.py --json "$OUT/gpu_nets.json"
    stage report 10 python3 benchmarks/gpu_report.py "$OUT" "$REPORT" && cp "$REPORT" "$OUT/"
    return "$FAILED"
}

main 2>&1 | tee "$OUT/log"
