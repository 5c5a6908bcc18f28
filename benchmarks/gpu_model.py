"""PREDICTED, not measured: how long a training iteration of our CUDA backend would take on an H100,
layer by layer, from the launches that benchmarks/launch_tracer.py records (PyCUDA stubbed out,
no GPU needed) and a roofline model of the card.

    python benchmarks/gpu_model.py [--nets alexnet:64,alexnet:256,resnet50:64] [--data] [--json out.json]

The iteration is benchmarks/gpu_nets.py's: `solver.step(1)` (forward, backward, SGD update) on
Input blobs, then a synchronisation; with `--data`, AlexNet's own train_val instead, its Data layer
reading a synthetic LMDB of 256x256 colour images (the input path: prefetch thread, host copies
or page-locked uploads, whatever the code does). Each event of the trace gets a device time:
- a GEMM launch: nvcaffe_py/backends/cuda/gemm_plan.py's law (the one that picks tiles and K
  slices), from the traced tile, grid, K slices and what ptxas lets an SM hold: the busiest SM's
  FFMA time, bounded below by the L2 and DRAM traffic; the split-K reduction by its traffic;
- any other kernel: its DRAM traffic, each pointer argument read or written once over the
  elements the kernel covers (at most to the end of its allocation); rules below for kernels
  whose pointers cover other sizes;
- device copies and memsets: their bytes at DRAM speed; synchronous host<->device copies
  (pageable memory) at PCIe speed, the host waiting; asynchronous uploads (page-locked memory, the
  data layers' input path) at pinned PCIe speed on a copy engine beside the kernels: a stream's
  wait for an event waits for the copies issued before it.
Every kernel costs at least the launch gap. Host time is measured while tracing (this machine's
CPU, with the recorder standing in for the driver calls), and a host/device timeline gives the
iteration: a launch starts when both the host has issued it and the device is free; a
synchronisation or a host copy waits for the device.
"""
import argparse
import json
import os
import re
import sys
import tempfile
import time
from typing import NamedTuple

import numpy as np

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.backends.cuda import gemm_plan, kernels
from nvcaffe_py.proto import caffe_pb2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_nets  # noqa: E402  (this script's folder: AlexNet's train_val)
import gpu_nets  # noqa: E402  (this script's folder: the nets it benchmarks)
from launch_tracer import LaunchTracer  # noqa: E402


class Machine(NamedTuple):
    name: str
    multiprocessors: int
    gpu: gemm_plan.Throughput  # FFMA rate, L2 and DRAM bandwidth, launch gap: the GEMM plan's model
    pcie_bytes_per_s: float  # pageable host<->device copies
    pinned_bytes_per_s: float  # asynchronous uploads from page-locked memory
    sync_s: float  # a host wait for the device, beyond the work waited for


H100 = Machine("H100 SXM5 (model)", 132, gemm_plan.H100, pcie_bytes_per_s=12e9, pinned_bytes_per_s=25e9,
               sync_s=10e-6)

_TILE_SUFFIX = re.compile(r"_(\d+)x(\d+)$")


# -- device time of one event -----------------------------------------------------------------------
class Cost(NamedTuple):
    seconds: float
    bound: str  # what limits it: "ffma", "l2", "dram", "launch", "pcie", "sync", "wait"
    flops: float = 0.0


def _memory_bound(moved_bytes, machine):
    seconds, bound = max((moved_bytes / machine.gpu.dram_bytes_per_s, "dram"), (machine.gpu.launch_s, "launch"))
    return Cost(seconds, bound)


def gemm_cost(event, machine):
    """A launch of one of our GEMM kernels: gemm_plan's law for its tile (from the kernel's name,
    8x8 outputs per thread), grid, K slices and what ptxas lets an SM hold."""
    args = event.args
    threads = int(np.prod(event.block))
    suffix = _TILE_SUFFIX.search(event.name)
    rows, cols = (int(suffix[1]), int(suffix[2])) if suffix else (int(np.sqrt(64 * threads)),) * 2
    splits = args.get("splits", 1)  # kernels without K slices run all of K in every block
    products = event.grid[2] // splits
    resident = kernels.blocks_per_sm(threads, event.registers, event.shared_bytes)
    M, N, K = args["M"], args["N"], args["K"]
    seconds, bound = gemm_plan.gemm_seconds(rows, cols, threads, resident, M, N, K, products, splits,
                                            args.get("slice_k", K), args["beta"] != 0, event.itemsize,
                                            machine.multiprocessors, machine.gpu)
    return Cost(seconds, bound, 2.0 * M * N * K * products)


def splitk_reduce_cost(event, machine):
    a = event.args
    products = a["n"] // (a["M"] * a["N"])
    return Cost(gemm_plan.reduce_seconds(a["M"], a["N"], products, a["splits"], a["beta"] != 0, event.itemsize,
                                         machine.gpu), "dram")


def _elements(event):
    """How many elements a grid-stride kernel covers."""
    args = event.args
    if "positions" in args:
        return args["positions"] * args["channels"] * args["inner"]
    if "outer" in args:
        return args["outer"] * args["channels"] * args["inner"]
    return args.get("n", args.get("count", 0))


def _traffic(event, elements_by_pointer=None):
    """DRAM bytes of a kernel touching each pointer argument once: over the kernel's elements, or
    the counts given per pointer, at most to the end of its allocation."""
    elements = _elements(event)
    counts = elements_by_pointer or {}
    return sum(min(extent, counts.get(name, elements) * event.itemsize) for name, extent in event.extents.items())


def _pooling_traffic(event):
    a = event.args
    per_image_bottom, per_image_top = a["C"] * a["H"] * a["W"], a["C"] * a["PH"] * a["PW"]
    forward = "forward" in event.name
    images = a["count"] // (per_image_top if forward else per_image_bottom)
    top, bottom = images * per_image_top, images * per_image_bottom
    return _traffic(event, {"bottom": bottom, "bottom_diff": bottom, "top": top, "top_diff": top, "mask": top,
                            "top_mask": top})


def _im2col_traffic(event):
    a = event.args
    image = a["B"] * a["C"] * a["H"] * a["W"]
    columns = a["B"] * a["C"] * a["kh"] * a["kw"] * a["OH"] * a["OW"]
    return _traffic(event, {"im": image, "col": columns})


SPECIAL_TRAFFIC = {
    "im2col": _im2col_traffic,
    "col2im": _im2col_traffic,
    "max_pool_forward": _pooling_traffic,
    "max_pool_backward": _pooling_traffic,
    "ave_pool_forward": _pooling_traffic,
    "ave_pool_backward": _pooling_traffic,
}


def event_cost(event, machine):
    if event.kind == "launch":
        if event.name == "gemm_splitk_reduce":
            return splitk_reduce_cost(event, machine)
        if event.name.startswith("gemm_"):
            return gemm_cost(event, machine)
        return _memory_bound(SPECIAL_TRAFFIC.get(event.name, _traffic)(event), machine)
    if event.kind in ("htod", "dtoh"):
        return Cost(event.nbytes / machine.pcie_bytes_per_s + machine.sync_s, "pcie")
    if event.kind in ("dtod", "memset"):
        return _memory_bound(event.nbytes * (2 if event.kind == "dtod" else 1), machine)
    if event.kind == "htod_async":
        return Cost(event.nbytes / machine.pinned_bytes_per_s, "pcie")
    if event.kind == "wait":
        return Cost(0.0, "wait")
    return Cost(machine.sync_s, "sync")


# -- the iteration: trace, timeline, summary --------------------------------------------------------
def synthetic_lmdb(path, records=64, seed=0):
    """An LMDB of `records` random 3x256x256 uint8 Datums (ImageNet's stored size)."""
    import lmdb

    from nvcaffe_py.datum import array_to_datum

    rng = np.random.default_rng(seed)
    env = lmdb.open(path, map_size=1 << 30)
    with env.begin(write=True) as txn:
        for i in range(records):
            image = rng.integers(0, 256, (3, 256, 256), dtype=np.uint8)
            txn.put(f"{i:05d}".encode(), array_to_datum(image, i % 1000).SerializeToString())
    env.close()
    return path


def reading_data(net, batch, source):
    """The net's own train_val (AlexNet's) with its Data layers reading `source`, `batch` a batch."""
    if net != "alexnet":
        raise SystemExit(f"--data traces AlexNet's train_val only (not {net})")
    param = formats.read_net_param(os.path.join(cpu_nets.ROOT, cpu_nets.NETS[net][0]))
    for layer in param.layer:
        if layer.type == "Data":
            layer.data_param.source, layer.data_param.batch_size = source, batch
    return param


def _prefetched(solver, seconds=120):
    """Wait until the data layers' prefetch queues are full, so that the traced steps do not wait
    for image decoding (the host time would be the decoder's, not the step's)."""
    deadline = time.monotonic() + seconds
    for layer in solver.net.layers:
        prefetcher = getattr(layer, "prefetcher", None)
        while prefetcher is not None and not prefetcher._queue.full() and time.monotonic() < deadline:
            time.sleep(0.05)


def trace_iteration(net, batch, machine, repeats=3, data=None):
    """The events of one `solver.step(1)` + synchronisation after a warm-up step, each labelled
    with the layer pass it came from ('<layer> forward' / '<layer> backward') or 'solver'. The
    step is traced `repeats` times; each event's host time is its least (this CPU is shared).
    `data`: an LMDB for the net's own Data layers (reading_data) instead of Input blobs."""
    tracer = LaunchTracer(machine.multiprocessors, machine.name)
    with tracer.installed():
        caffe.set_mode_gpu()
        param = caffe_pb2.SolverParameter(base_lr=0.01, momentum=0.9, lr_policy="fixed", max_iter=10 ** 6, display=0,
                                          random_seed=1, snapshot_after_train=False, type="SGD",
                                          solver_mode=caffe_pb2.SolverParameter.GPU)
        param.net_param.CopyFrom(gpu_nets.NET_PARAMS[net](batch) if data is None else reading_data(net, batch, data))
        solver = caffe.get_solver(param)
        names = solver.net.layer_names

        def labeller(direction):
            return lambda i: setattr(tracer, "label", f"{names[i]} {direction}")

        handles = [solver.net.before_forward(labeller("forward")), solver.net.before_backward(labeller("backward")),
                   solver.net.after_backward(lambda i: setattr(tracer, "label", "solver"))]
        solver.step(1)  # warm-up: kernel look-ups, first allocations
        runs = []
        for _ in range(repeats):
            _prefetched(solver)
            tracer.label = "solver"
            with tracer.recording() as events:
                solver.step(1)
                caffe.backends.synchronize()
            runs.append(events)
        for handle in handles:
            handle.remove()
        caffe.set_mode_cpu()
    if any([(e.kind, e.name, e.label) for e in run] != [(e.kind, e.name, e.label) for e in runs[0]] for run in runs):
        raise RuntimeError(f"{net}: the traced iterations issue different events")
    return [event._replace(host_seconds=min(run[i].host_seconds for run in runs)) for i, event in enumerate(runs[0])]


def timeline(events, machine):
    """(iteration seconds, host seconds, device-busy seconds, costs): the host issues events in
    order; the device runs launches and device copies in order as soon as both allow; the copy
    engine runs asynchronous uploads in order, and a stream wait holds the kernels after it until
    the uploads issued so far are done."""
    host = device = copies = busy = 0.0
    costs = []
    for event in events:
        cost = event_cost(event, machine)
        costs.append(cost)
        host += event.host_seconds
        if event.kind in ("launch", "dtod", "memset"):
            device = max(device, host) + cost.seconds
            busy += cost.seconds
        elif event.kind == "htod_async":
            copies = max(copies, host) + cost.seconds
        elif event.kind == "wait":
            device = max(device, copies)
        else:  # a synchronisation or a synchronous copy: the host waits for the device
            host = max(host, device, copies) + cost.seconds
            device = host
    return max(host, device), sum(e.host_seconds for e in events), busy, costs


def summarize(net, batch, machine, data=None):
    events = trace_iteration(net, batch, machine, data=data)
    total, host, busy, costs = timeline(events, machine)
    layers = {}
    for event, cost in zip(events, costs):
        row = layers.setdefault(event.label, {"device_ms": 0.0, "host_ms": 0.0, "launches": 0, "gflop": 0.0,
                                              "bounds": {}})
        row["device_ms"] += 1e3 * cost.seconds
        row["host_ms"] += 1e3 * event.host_seconds
        row["launches"] += event.kind == "launch"
        row["gflop"] += cost.flops / 1e9
        row["bounds"][cost.bound] = row["bounds"].get(cost.bound, 0.0) + 1e3 * cost.seconds
    gemms = [{"label": e.label, "kernel": e.name, "M": e.args["M"], "N": e.args["N"], "K": e.args["K"],
              "splits": e.args.get("splits", 1), "blocks": int(np.prod(e.grid)), "ms": 1e3 * c.seconds, "bound": c.bound,
              "tflops": c.flops / c.seconds / 1e12}
             for e, c in zip(events, costs) if e.name.startswith("gemm_") and "K" in e.args]
    kernels_ms = {}
    for event, cost in zip(events, costs):
        kernels_ms[event.name or event.kind] = kernels_ms.get(event.name or event.kind, 0.0) + 1e3 * cost.seconds
    kinds = [e.kind for e in events]
    gemm_launches = [e for e in events if e.name.startswith("gemm_") and "flags" in e.args]
    scalar = sum(1 for e in gemm_launches if e.args["flags"] & 3 != 3)  # A or B without 4-wide loads
    return {"net": net + (" (Data layer)" if data else ""), "batch": batch, "machine": machine._asdict(),
            "predicted_iteration_ms": 1e3 * total,
            "predicted_device_busy_ms": 1e3 * busy, "host_ms_measured_while_tracing": 1e3 * host,
            "launches": kinds.count("launch"), "syncs": kinds.count("sync"),
            "host_device_copies": kinds.count("htod") + kinds.count("dtoh"), "async_uploads": kinds.count("htod_async"),
            "gemm_launches": len(gemm_launches), "gemm_launches_with_scalar_loads": scalar,
            "gemm_gflop": sum(c.flops for c in costs) / 1e9, "layers": layers, "kernels_ms": kernels_ms,
            "gemms": gemms}


def print_summary(result, top=8):
    print(f"{result['net']} batch {result['batch']}: PREDICTED {result['predicted_iteration_ms']:.1f} ms per iteration "
          f"on {result['machine']['name']} (device busy {result['predicted_device_busy_ms']:.1f} ms, host "
          f"{result['host_ms_measured_while_tracing']:.1f} ms as traced here; {result['launches']} launches, "
          f"{result['syncs']} syncs, {result['host_device_copies']} host<->device copies; "
          f"{result['gemm_launches_with_scalar_loads']} of {result['gemm_launches']} GEMM launches load A or B "
          "without vectors)")
    slowest = sorted(result["layers"].items(), key=lambda item: -item[1]["device_ms"])[:top]
    for label, row in slowest:
        bound = max(row["bounds"], key=row["bounds"].get)
        print(f"  {label:28s} {row['device_ms']:8.2f} ms device ({bound}-bound), {row['launches']:4d} launches, "
              f"{row['host_ms']:6.2f} ms host")
    print("  " + ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(result["kernels_ms"].items(),
                                                                    key=lambda item: -item[1])[:top])
          + " (ms of device time, by kernel)")
    print("  slowest GEMM launches:")
    for g in sorted(result["gemms"], key=lambda g: -g["ms"])[:top]:
        print(f"    {g['label']:22s} {g['kernel']:16s} {g['M']:5d}x{g['N']:6d}x{g['K']:6d} /{g['splits']:<2d} "
              f"{g['blocks']:6d} blocks "
              f"{g['ms']:7.3f} ms {g['tflops']:5.1f} TFLOP/s ({g['bound']})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="alexnet:64,alexnet:256,resnet50:64", help="net:batch,...")
    parser.add_argument("--data", action="store_true", help="AlexNet from its Data layer (a synthetic LMDB)")
    parser.add_argument("--json", help="write the predictions to this file")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        data = synthetic_lmdb(os.path.join(folder, "lmdb")) if args.data else None
        for item in args.nets.split(","):
            net, batch = item.split(":")
            results.append(summarize(net, int(batch), H100, data))
            print_summary(results[-1])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"what": "PREDICTIONS of a roofline model, not measurements", "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
