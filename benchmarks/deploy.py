"""TEST-phase inference: our deploy-time forward vs OpenCV dnn 4.x's Caffe importer, same prototxt,
same random weights, batch 1 and 16, time per forward and peak memory.

    python benchmarks/deploy.py [--nets lenet,cifar10_full,...] [--batches 1,16] [--rounds 5]
                                [--zoo CAFFE_ROOT] [--json out.json] [--no-optimize]

Each (net, batch) runs in two worker processes, ours and OpenCV's, so that each peak RSS is its
own (the process's peak RSS: interpreter, libraries, weights and activations). Rounds alternate
between the two workers, so that a load change on a shared machine hits both; a round times
enough forwards to take about a second, and the figures are the medians over rounds. OpenCV
(opencv-python-headless < 5, the `test` extra) is a benchmark peer only, never a dependency.
`--no-optimize` times our layer-by-layer forward instead (Net(optimize=False)).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = {  # name: (prototxt, under the zoo folder or the repository)
    "lenet": ("zoo", "examples/mnist/lenet.prototxt"),
    "cifar10_full": ("zoo", "examples/cifar10/cifar10_full.prototxt"),
    "googlenet": ("zoo", "models/bvlc_googlenet/deploy.prototxt"),
    "squeezenet_v1.0": ("repo", "models/squeezenet_v1.0/deploy.prototxt"),
    "resnet56": ("repo", "models/resnet56_cifar/deploy.prototxt"),
    "mobilenet_v2": ("repo", "models/mobilenet_v2/deploy.prototxt"),
    "mobilenet_ssd": ("repo", "models/mobilenet_ssd/deploy.prototxt"),
    "res10_ssd_face": ("repo", "models/res10_ssd_face/deploy.prototxt"),
    "rfb320_face": ("repo", "models/rfb320_face/deploy.prototxt"),
    "shufflenet_v2": ("repo", "models/shufflenet_v2/deploy.prototxt"),
}
ROUND_SECONDS = 1.0


def write_net(name, batch, zoo, folder):
    """(prototxt, caffemodel) in `folder`: the net at `batch` items and random weights (BatchNorm
    statistics as after training)."""
    import nvcaffe_py as caffe
    from nvcaffe_py import formats

    where, path = NETS[name]
    if where == "zoo" and not zoo:
        sys.exit(f"deploy.py: {name} is BVLC Caffe's {path}: give --zoo (a Caffe checkout) or set CAFFE_ROOT")
    param = formats.read_net_param(os.path.join(zoo if where == "zoo" else ROOT, path))
    for layer in param.layer:
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                shape.dim[0] = batch
    caffe.set_random_seed(1)
    net = caffe.Net(param, caffe.TEST, optimize=False)
    rng = np.random.default_rng(0)
    for layer in net.layers:
        for blob in layer.blobs:
            fan_in = blob.count() // blob.shape[0] if blob.num_axes > 1 else 1
            blob.data[...] = rng.standard_normal(blob.shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))
        if layer.type == "BatchNorm":
            layer.blobs[0].data[...] = rng.normal(0, 0.1, layer.blobs[0].shape)
            layer.blobs[1].data[...] = rng.uniform(0.5, 1.5, layer.blobs[1].shape)
            layer.blobs[2].data[...] = 1
    prototxt, weights = os.path.join(folder, f"{name}_{batch}.prototxt"), os.path.join(folder, f"{name}_{batch}.caffemodel")
    with open(prototxt, "w") as f:
        f.write(str(param))
    net.save(weights)
    return prototxt, weights, net.inputs[0], list(net.blobs[net.inputs[0]].shape)


def worker(engine, prototxt, weights, input_name, shape, optimize):
    """Load the net, then answer 'run' with the seconds of each of enough forwards for a round,
    and 'peak' with the process's peak RSS in MB."""
    x = np.random.default_rng(2).uniform(-1, 1, shape).astype(np.float32)
    if engine == "ours":
        import nvcaffe_py as caffe

        net = caffe.Net(prototxt, weights, caffe.TEST, optimize=optimize)

        def forward():
            net.forward(**{input_name: x})
    else:
        import cv2

        net = cv2.dnn.readNetFromCaffe(prototxt, weights)
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

        def forward():
            net.setInput(x, input_name)
            net.forward()
    forward()  # warm-up: plans, buffers, caches
    for line in sys.stdin:
        if line.strip() == "run":
            times, started = [], time.perf_counter()
            while not times or time.perf_counter() - started < ROUND_SECONDS:
                start = time.perf_counter()
                forward()
                times.append(time.perf_counter() - start)
            print(json.dumps(times), flush=True)
        else:
            print(json.dumps(peak_rss_mb()), flush=True)
            return


def peak_rss_mb():
    """This process's peak resident memory: VmHWM, which starts afresh at exec (ru_maxrss keeps the
    forking parent's peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def compare(name, batch, rounds, zoo, optimize, folder):
    prototxt, weights, input_name, shape = write_net(name, batch, zoo, folder)
    workers = {}
    for engine in ("ours", "opencv"):
        cmd = [sys.executable, __file__, "--worker", engine, prototxt, weights, input_name, json.dumps(shape),
               str(optimize)]
        workers[engine] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    medians = {engine: [] for engine in workers}
    for _ in range(rounds):
        for engine, proc in workers.items():
            proc.stdin.write("run\n")
            proc.stdin.flush()
            medians[engine].append(float(np.median(json.loads(proc.stdout.readline()))))
    row = {"net": name, "batch": batch}
    for engine, proc in workers.items():
        proc.stdin.write("peak\n")
        proc.stdin.flush()
        row[f"{engine}_peak_mb"] = json.loads(proc.stdout.readline())
        proc.wait()
        row[f"{engine}_ms"] = float(np.median(medians[engine])) * 1e3
    ratios = [a / b for a, b in zip(medians["ours"], medians["opencv"])]
    row["time_ratio"] = float(np.median(ratios))
    row["peak_ratio"] = row["ours_peak_mb"] / row["opencv_peak_mb"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--zoo", default=os.environ.get("CAFFE_ROOT"),
                        help="a BVLC Caffe checkout, for the nets taken from its examples/ and models/ "
                             "(default: $CAFFE_ROOT)")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--no-optimize", action="store_true", help="time Net(optimize=False)")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")  # the nets' setup logs, here and in the workers
    if args.worker:
        engine, prototxt, weights, input_name, shape, optimize = args.worker
        worker(engine, prototxt, weights, input_name, json.loads(shape), optimize == "True")
        return
    rows = []
    print("| net | batch | ours ms | OpenCV ms | ours / OpenCV | ours peak MB | OpenCV peak MB | ours / OpenCV |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.nets.split(","):
            for batch in map(int, args.batches.split(",")):
                row = compare(name, batch, args.rounds, args.zoo, not args.no_optimize, folder)
                rows.append(row)
                print(f"| {name} | {batch} | {row['ours_ms']:.2f} | {row['opencv_ms']:.2f} | {row['time_ratio']:.2f}x "
                      f"| {row['ours_peak_mb']:.0f} | {row['opencv_peak_mb']:.0f} | {row['peak_ratio']:.2f}x |",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
