"""The NCCL path on a GPU: NVCAFFE_FORCE_NCCL=1 `nvcaffe train -gpu 0` starts one rank through the
launcher, which makes real NCCL calls on a one-GPU communicator (broadcast, the checks' allgather,
every bucket's ncclAvg); it must train as plain `-gpu 0` does. Runs in tools/gpu_check.sh."""
import os

import pytest

from nvcaffe_py.backends import cuda_unavailable_reason
from nvcaffe_py.scaleout import nccl_library
from ranks_helpers import environment, final_weights, lenet_workdir, relative_difference, run_ranks, write_solver


@pytest.mark.cuda
def test_one_rank_through_nccl_trains_as_a_plain_gpu_run(tmp_path):
    reason = cuda_unavailable_reason()
    if reason is not None:
        if os.environ.get("NVCAFFE_REQUIRE_GPU") == "1":
            pytest.fail(f"NVCAFFE_REQUIRE_GPU=1 but no GPU is usable: {reason}")
        pytest.skip(f"no usable GPU: {reason}")
    if not nccl_library.available():
        pytest.skip("NCCL does not load here (pip install -e '.[nccl]')")
    lenet_workdir(tmp_path)
    forced = run_ranks(None, write_solver(tmp_path, "nccl", 10), "-gpu", "0", cwd=tmp_path,
                       env=environment(NVCAFFE_FORCE_NCCL="1"))
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "gradients averaged by NCCL" in forced.stderr
    plain = run_ranks(None, write_solver(tmp_path, "plain", 10), "-gpu", "0", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert relative_difference(final_weights(tmp_path / "nccl_iter_10.caffemodel"),
                               final_weights(tmp_path / "plain_iter_10.caffemodel")) <= 1e-5


def test_the_binding_loads_nccl_and_makes_unique_ids():
    if not nccl_library.available():
        pytest.skip("NCCL does not load here (pip install -e '.[nccl]'); the error test covers this case")
    assert nccl_library.version().count(".") == 2
    first, second = nccl_library.new_unique_id(), nccl_library.new_unique_id()
    assert len(first) == len(second) == nccl_library.UNIQUE_ID_BYTES and first != second
