"""Every .cu file in the repository compiles with nvcc for sm_90, as float and as double (the two
element types the kernels are built for), and every kernel's parameters are types the launcher
can pass. Runs without a GPU (CI); skips where nvcc is absent."""
import concurrent.futures
import os
import subprocess

import pytest

from nvcaffe_py.backends.cuda import kernels

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = sorted(
    os.path.relpath(os.path.join(root, name), REPO)
    for top in ("nvcaffe_py", "layers", "solvers")
    for root, _, files in os.walk(os.path.join(REPO, top))
    for name in files if name.endswith(".cu"))
DTYPES = ("float32", "float64")


def _nvcc():
    path = kernels.nvcc()
    return path if os.path.exists(path) else None


def _compile(source, dtype, out_dir):
    out = os.path.join(out_dir, f"{os.path.basename(source)}.{dtype}.cubin")
    command = [_nvcc(), "-cubin", "-arch=sm_90", f"-I{kernels.INCLUDE_DIR}", *kernels.compile_options(dtype),
               "-o", out, os.path.join(REPO, source)]
    result = subprocess.run(command, capture_output=True, text=True)
    return result.returncode, result.stderr


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    if _nvcc() is None:
        pytest.skip(f"nvcc not found (looked for {kernels.nvcc()}; set NVCC to its path)")
    out_dir = str(tmp_path_factory.mktemp("cubin"))
    jobs = [(s, d) for s in SOURCES for d in DTYPES]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = pool.map(lambda job: _compile(*job, out_dir), jobs)
        return dict(zip(jobs, results))


def test_the_sources_are_found():
    assert "nvcaffe_py/backends/cuda/sgemm.cu" in SOURCES
    assert "layers/conv.cu" in SOURCES and "solvers/updates.cu" in SOURCES


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiles_for_sm90(compiled, source, dtype):
    returncode, stderr = compiled[(source, dtype)]
    assert returncode == 0, f"{source} ({dtype}) does not compile:\n{stderr[-3000:]}"


@pytest.mark.parametrize("source", SOURCES)
def test_kernel_parameters_are_launchable(compiled, source):
    formats = kernels.signatures(os.path.join(REPO, source), "float32")
    assert formats, f"{source} declares no extern \"C\" __global__ kernel"
    assert all(set(f) <= set("PiIqQfd") for f in formats.values())


def test_signature_parser():
    text = ('extern "C" __attribute__((global)) void __attribute__((launch_bounds(256))) k(int n, const float* '
            '__restrict__ x, double a, unsigned long long s, unsigned int t, long long o, float* y) { }')
    assert kernels.parse_signatures(text) == {"k": "iPdQIqP"}
