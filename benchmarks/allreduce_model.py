"""A written model of data-parallel training at scale, for what 2-core machines cannot measure:
AlexNet (batch 256 per rank) and ResNet-50 (batch 64 per rank) on 8, 64 and 256 ranks linked at
25 and 100 Gb/s. Per configuration: the bytes each rank all-reduces per iteration, the ring
allreduce time, and how much of it layer_wise_reduce hides behind the backward pass.

    python benchmarks/allreduce_model.py [--bucket-mb 0.25] [--latency-us 10]

The nets are built at batch 1 (parameters and multiply-adds per layer; multiply-adds scale with
the batch) and the buckets are the GradientReducer's own plan. Assumptions, all stated:
- a ring allreduce of s bytes over N ranks moves 2(N-1)/N * s bytes through each rank's link, in
  2(N-1) steps of `latency` each (NCCL's ring; its tree algorithm would cut the steps to ~2 log2 N);
- the link runs at its line rate, one bucket at a time, in the order the buckets become ready;
- the iteration's compute is benchmarks/results/2026-12-07-gpu-model-predictions.md's PREDICTED
  H100 time (AlexNet 256: 33.7 ms, ResNet-50 64: 86.1 ms; no GPU ran them), two thirds of it
  backward, spread over the layers by their multiply-adds (memory-bound layers are not modelled);
- without layer_wise_reduce every bucket starts when backward ends.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

NETS = {"AlexNet": (256, 33.7e-3), "ResNet-50": (64, 86.1e-3)}  # per-rank batch, predicted H100 iteration (s)
RANKS = (8, 64, 256)
LINKS_GBPS = (25, 100)


def build(name):
    import nvcaffe_py as caffe
    from nvcaffe_py import formats
    if name == "AlexNet":
        param = formats.read_net_param(os.path.join(ROOT, "models/alexnet/train_val_input.prototxt"))
        for layer in param.layer:
            if layer.type == "Input":
                for shape in layer.input_param.shape:
                    shape.dim[0] = 1
    else:
        import resnet50
        param = resnet50.train_net(1)
    return caffe.Net(param, caffe.TRAIN)


def backward_schedule(net, batch, backward_s, bucket_bytes):
    """[(seconds into backward when the bucket is ready, its bytes)] in backward order."""
    from nvcaffe_py.scaleout.gradient_reducer import bucket_plan
    macs = [layer.multiply_adds(bottom, top) * batch for layer, bottom, top in
            zip(net.layers, net.bottom_vecs, net.top_vecs)]
    total = sum(macs)
    plan = bucket_plan(net, bucket_bytes)
    schedule, elapsed = [], 0.0
    for index in reversed(range(len(net.layers))):
        elapsed += backward_s * macs[index] / total
        for bucket in plan.get(index, ()):
            schedule.append((elapsed, sum(blob.count() * blob.dtype.itemsize for blob in bucket)))
    return schedule


def ring_seconds(size, ranks, gbps, latency_s):
    return 2 * (ranks - 1) / ranks * size / (gbps * 1e9 / 8) + 2 * (ranks - 1) * latency_s


def finish(schedule, ranks, gbps, latency_s, start_at=None):
    """When the last bucket's allreduce ends, the link taking one bucket at a time."""
    link_free = 0.0
    for ready, size in schedule:
        begin = max(link_free, ready if start_at is None else start_at)
        link_free = begin + ring_seconds(size, ranks, gbps, latency_s)
    return link_free


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket-mb", type=float, default=0.25)
    parser.add_argument("--latency-us", type=float, default=10.0)
    args = parser.parse_args()
    latency = args.latency_us * 1e-6
    print("| net (batch/rank) | ranks | link | MB all-reduced/iter | buckets | ring allreduce | exposed, after backward | "
          "exposed, layer-wise | iteration, layer-wise | scaling efficiency |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (batch, iteration_s) in NETS.items():
        net = build(name)
        backward_s = iteration_s * 2 / 3
        schedule = backward_schedule(net, batch, backward_s, args.bucket_mb * 2 ** 20)
        size = sum(bytes_ for _, bytes_ in schedule)
        for ranks in RANKS:
            for gbps in LINKS_GBPS:
                ring = sum(ring_seconds(b, ranks, gbps, latency) for _, b in schedule)
                after = finish(schedule, ranks, gbps, latency, start_at=backward_s) - backward_s
                layer_wise = max(0.0, finish(schedule, ranks, gbps, latency) - backward_s)
                total = iteration_s + layer_wise
                print(f"| {name} ({batch}) | {ranks} | {gbps} Gb/s | {size / 1e6:.1f} | {len(schedule)} | "
                      f"{ring * 1e3:.1f} ms | {after * 1e3:.1f} ms | {layer_wise * 1e3:.1f} ms | {total * 1e3:.1f} ms | "
                      f"{iteration_s / total:.0%} |")


if __name__ == "__main__":
    main()
