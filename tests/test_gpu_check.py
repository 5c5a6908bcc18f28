"""tools/gpu_check.sh is ready for a lent GPU without one: the script parses, its stages fit the
time it is given, its CUDA tests fail (not skip) where they cannot reach a GPU, and its report
turns a run's files into one Markdown file that says what is missing."""
import json
import os
import re
import subprocess
import sys

import pytest

from nvcaffe_py.backends import cuda_unavailable_reason

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tools", "gpu_check.sh")
sys.path.insert(0, os.path.join(REPO, "benchmarks"))


def test_the_script_parses():
    subprocess.run(["bash", "-n", SCRIPT], check=True)


def test_stages_fit_400_seconds_with_their_grace():
    text = open(SCRIPT).read()
    limits = [int(seconds) for seconds in re.findall(r"^\s*stage \S+ (\d+) ", text, re.M)]
    grace = int(re.search(r"^GRACE=(\d+)", text, re.M)[1])
    assert len(limits) == 6
    assert sum(limits) + grace * len(limits) <= 400


@pytest.mark.skipif(cuda_unavailable_reason() is None, reason="a GPU is usable here: the gpu case runs")
def test_cuda_tests_fail_without_a_gpu_when_one_is_required():
    """(Without the variable the same case skips: every CI run shows that.)"""
    test = "tests/test_sgemm.py::test_split_k_repeats_bit_for_bit[gpu]"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    required = subprocess.run(command, cwd=REPO, env=dict(os.environ, NVCAFFE_REQUIRE_GPU="1"), capture_output=True,
                              text=True)
    assert required.returncode != 0 and "NVCAFFE_REQUIRE_GPU=1 but no GPU is usable" in required.stdout


def _write_run(folder):
    device = {"name": "NVIDIA H100 80GB HBM3"}
    (folder / "stages.tsv").write_text("install\t35\t0\t20\npytest\t160\t124\t165\nsgemm\t40\t0\t30\n")
    (folder / "sgemm.json").write_text(json.dumps({"device": device, "cublas": "cuBLAS via CuPy", "repeat": 20,
                                                   "results": [
        {"shape": "square 4096", "trans": "NN", "M": 4096, "N": 4096, "K": 4096, "tile": "128x128", "splits": 1,
         "ours_gflops": 45000.0, "cublas_gflops": 50000.0, "ratio": 0.9, "unsplit_gflops": None,
         "max_rel_error_vs_cublas": 1e-6},
        {"shape": "alexnet conv1 dW", "trans": "NT", "M": 96, "N": 363, "K": 157300, "tile": "128x64", "splits": 64,
         "ours_gflops": 30000.0, "cublas_gflops": 50000.0, "ratio": 0.6, "unsplit_gflops": 3000.0,
         "max_rel_error_vs_cublas": 2e-6}]}))
    (folder / "gpu_nets.json").write_text(json.dumps({
        "device": device, "cpu_cores": 16, "iterations": 10,
        "results": [{"net": "alexnet", "batch": 64, "ours_gpu_ms": 20.0, "torch_ms": 10.0, "torch_tf32_ms": 8.0,
                     "ours_vs_torch": 2.0, "ours_vs_torch_tf32": 2.5}],
        "cpu_results": [{"net": "alexnet", "batch": 64, "ours_cpu_ms": 1500.0}],
        "layers": {"alexnet:64": [["conv1", "Convolution", True, 1.5, 3.0], ["data", "Input", False, 0.0, 0.0]]}}))


def test_report_holds_every_figure_and_the_targets(tmp_path):
    import gpu_report

    _write_run(tmp_path)
    text = gpu_report.report(str(tmp_path))
    assert "| pytest | 160 | 124 (timed out) | 165 |" in text
    assert "No pytest result (pytest.xml)" in text
    assert "| alexnet conv1 dW | NT | 96x363x157300 | 128x64/64 | 30000 | 50000 | 60.0% | x10.00 |" in text
    assert "at 4096^3: 90.0% (met)" in text and "on the conv shapes: lowest 60.0% (NOT met)" in text
    assert "| alexnet | 64 | 20.0 | 10.0 | 2.00x | 8.0 | 2.50x |" in text
    assert "within 1.5x of PyTorch + cuDNN (TF32 off): worst 2.00x (NOT met)" in text
    assert ">= 50x our CPU backend (per image): 75x (met)" in text
    assert "| conv1 | Convolution | 1.50 | 3.00 |" in text and "| data | Input * |" in text


def test_report_says_what_a_failed_run_left_out(tmp_path):
    import gpu_report

    (tmp_path / "pytest.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1" time="12.5">'
        '<testcase classname="tests.test_sgemm" name="test_a[gpu]"><failure message="x"/></testcase>'
        '</testsuite></testsuites>')
    text = gpu_report.report(str(tmp_path))
    assert "No stage record" in text and "No SGEMM figures" in text and "No training figures" in text
    assert "1 passed, 1 failed, 0 errors, 1 skipped, in 12 s" in text  # rounded to whole seconds
    assert "- failed: `tests.test_sgemm::test_a[gpu]`" in text
