"""The launch tracer and the H100 model of benchmarks/ (no GPU needed; nvcc for the traced kernels'
signatures and ptxas facts): a traced LeNet iteration lists its launches by layer with their
arguments, and the model's GEMM law and occupancy behave as the hardware does."""
import os
import sys

import numpy as np
import pytest

from nvcaffe_py.backends.cuda import gemm_plan, kernels

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

needs_nvcc = pytest.mark.skipif(not os.path.exists(kernels.nvcc()), reason=f"nvcc not found ({kernels.nvcc()})")


def test_blocks_per_sm_follows_the_sm90_limits():
    assert kernels.blocks_per_sm(256, 128, 16896) == 2  # registers: 2 x 256 x 128 = 65536
    assert kernels.blocks_per_sm(64, 128, 8704) == 8
    assert kernels.blocks_per_sm(256, 32, 0) == 8  # threads: 2048 per SM
    assert kernels.blocks_per_sm(32, 16, 0) == 32  # at most 32 blocks
    assert kernels.blocks_per_sm(64, 32, 100 * 1024) == 2  # shared memory: 228 KB, 1 KB reserved per block
    assert kernels.blocks_per_sm(128, 129, 0) == 3  # 129 registers are allocated as 136


@needs_nvcc
def test_resource_usage_reads_ptxas():
    usage = kernels.resource_usage(os.path.join(kernels.INCLUDE_DIR, "math_functions.cu"), "float32")
    registers, shared = usage["reduce_final"]
    assert 0 < registers <= 255 and shared >= 32 * 8  # block_sum's 32 doubles


def _gemm_event(name, grid, args):
    from launch_tracer import Event

    return Event("launch", name, "x", grid, (64 if name.endswith("64x64") else 256, 1, 1),
                 dict(beta=1.0, **args), {}, 4, 155, 8704, 0, 0.0)


def test_gemm_cost_reads_tile_slices_and_products_off_the_launch():
    import gpu_model

    machine = gpu_model.H100
    split = _gemm_event("gemm_nt_64x64", (6, 1, 8), dict(M=100, N=130, K=1000, splits=4, slice_k=256))
    cost = gpu_model.gemm_cost(split, machine)
    resident = kernels.blocks_per_sm(64, 155, 8704)
    assert cost.flops == 2 * 100 * 130 * 1000 * 2  # two products, four slices each
    assert (cost.seconds, cost.bound) == gemm_plan.gemm_seconds(64, 64, 64, resident, 100, 130, 1000, 2, 4, 256,
                                                                True, 4, machine.multiprocessors, machine.gpu)
    # A kernel without K slices (before split-K) runs all of K; its tile is square, 8x8 per thread.
    whole = gpu_model.gemm_cost(_gemm_event("gemm_nt", (2, 1, 1), dict(M=100, N=130, K=1000)), machine)
    assert whole.seconds == gemm_plan.gemm_seconds(128, 128, 256, resident, 100, 130, 1000, 1, 1, 1000, True, 4,
                                                   machine.multiprocessors, machine.gpu)[0]


@needs_nvcc
def test_traced_lenet_iteration_lists_its_launches_by_layer():
    import cpu_nets
    import gpu_model
    import gpu_nets

    gpu_nets.NET_PARAMS.setdefault("lenet", lambda batch: cpu_nets.load_train_net_param("lenet"))
    events = gpu_model.trace_iteration("lenet", 64, gpu_model.H100)
    conv1 = [e for e in events if e.label == "conv1 forward" and e.name.startswith("gemm_")]
    assert conv1 and (conv1[0].args["M"], conv1[0].args["K"]) == (20, 25)
    assert conv1[0].itemsize == 4 and conv1[0].registers > 0
    assert all(extent > 0 for e in conv1 for extent in e.extents.values())
    updates = [e.name for e in events if e.label == "solver" and e.kind == "launch"]
    assert updates.count("sgd_update") == 8  # conv1, conv2, ip1, ip2: weights and biases
    assert events[-1].kind == "sync" and all(e.host_seconds >= 0 for e in events)
    total, host, busy, costs = gpu_model.timeline(events, gpu_model.H100)
    assert total >= max(busy, host) > 0 and len(costs) == len(events)


@needs_nvcc
def test_traced_alexnet_iterations_wait_for_the_device_only_on_display(tmp_path):
    """AlexNet trained from its Data layer (an LMDB of 256x256 colour images): an iteration that
    does not display makes no synchronous copy and no synchronisation, only the next batch's
    asynchronous uploads and a stream wait for them; a display iteration reads the losses."""
    import collections

    import cpu_nets
    import lmdb
    from launch_tracer import LaunchTracer

    import nvcaffe_py as caffe
    from nvcaffe_py import formats
    from nvcaffe_py.datum import array_to_datum
    from nvcaffe_py.proto import caffe_pb2

    rng = np.random.default_rng(0)
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(3):
            image = rng.integers(0, 256, (3, 256, 256), dtype=np.uint8)
            txn.put(f"{i:03d}".encode(), array_to_datum(image, i).SerializeToString())
    env.close()
    net_param = formats.read_net_param(os.path.join(cpu_nets.ROOT, cpu_nets.NETS["alexnet"][0]))
    for layer in net_param.layer:
        if layer.type == "Data":
            layer.data_param.source, layer.data_param.batch_size = str(tmp_path / "db"), 2
    param = caffe_pb2.SolverParameter(base_lr=0.01, momentum=0.9, lr_policy="fixed", max_iter=100, display=2,
                                      average_loss=2, random_seed=1, snapshot_after_train=False, type="SGD")
    param.net_param.CopyFrom(net_param)
    tracer = LaunchTracer(multiprocessors=132)
    traced = []
    with tracer.installed():
        caffe.set_mode_gpu()
        try:
            solver = caffe.get_solver(param)
            solver.step(1)  # iteration 0, a display: kernel look-ups, first allocations
            for _ in range(3):  # iterations 1 (no display), 2 (display), 3 (no display)
                with tracer.recording() as events:
                    solver.step(1)
                traced.append(collections.Counter(e.kind for e in events))
            solver.net.layers[0].close()
        finally:
            caffe.set_mode_cpu()
    for kinds in (traced[0], traced[2]):
        assert kinds["htod"] == kinds["dtoh"] == kinds["sync"] == 0, dict(kinds)
        assert kinds["htod_async"] == 2 and kinds["wait"] >= 2 and kinds["launch"] > 50, dict(kinds)
    assert traced[1]["dtoh"] >= 1 and traced[1]["sync"] == 0  # the display reads the losses
