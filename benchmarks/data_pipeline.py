"""The input pipeline's speed against LeNet's training speed, on the CPU.

    python benchmarks/data_pipeline.py [--images 6400] [--steps 40]

Builds three LMDBs in a temporary folder from make_digits' renderer: raw 1x28x28 digits (LeNet's
input), the same digits PNG-encoded, and 3x32x32 JPEG-encoded colour versions (CIFAR-like, read
with crop_size 28 and mirror). For each it prints images/s of
  * the loader alone: one thread reading, decoding and transforming batches back to back;
  * the Data layer's forward: what a net receives through the prefetch thread.
Then it trains models/lenet (SGD, batch 64) on the raw LMDB and prints the training step's
images/s and the share of its wall time spent waiting for input (the prefetcher's wait time):
near zero means the input pipeline is not the bottleneck.
"""
import argparse
import os
import sys
import tempfile
import time

import cv2
import numpy as np

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.data_transformer import DataTransformer
from nvcaffe_py.datum import array_to_datum, encode_image
from nvcaffe_py.db import LMDBWriter
from nvcaffe_py.layers.base_data import BatchLoader
from nvcaffe_py.layers.data import DatabaseSource
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.tools.make_digits import render_digits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 64


def build_lmdbs(folder, count):
    digits, labels = render_digits(count, np.random.default_rng(0))
    colour = [cv2.resize(cv2.applyColorMap(d, cv2.COLORMAP_JET), (32, 32)) for d in digits]

    def encoded(image, ext, label):
        return caffe_pb2.Datum(data=encode_image(image, ext), encoded=True, label=int(label))

    sets = {
        "raw 1x28x28": (lambda i: array_to_datum(digits[i][np.newaxis], labels[i]), "scale: 0.00390625"),
        "png 1x28x28": (lambda i: encoded(digits[i], "png", labels[i]), "scale: 0.00390625"),
        "jpg 3x32x32": (lambda i: encoded(colour[i], "jpg", labels[i]),
                        "scale: 0.00390625 crop_size: 28 mirror: true mean_value: 120"),
    }
    paths = {}
    for name, (make, transform) in sets.items():
        path = os.path.join(folder, name.replace(" ", "_"))
        with LMDBWriter(path) as db:
            for i in range(count):
                db.put(f"{i:08d}", make(i).SerializeToString())
        paths[name] = (path, transform)
    return paths


def data_net(path, transform):
    text = (f'layer {{ name: "data" type: "Data" top: "data" top: "label" transform_param {{ {transform} }} '
            f'data_param {{ source: "{path}" backend: LMDB batch_size: {BATCH} }} }}')
    return caffe.Net(formats.net_param_from_text(text), caffe.TRAIN)


def loader_rate(path, transform, batches):
    param = formats.parse_text(transform, caffe_pb2.TransformationParameter())
    loader = BatchLoader(DatabaseSource(path), DataTransformer(param, caffe.TRAIN), BATCH, np.float32, "bench",
                         np.empty)
    loader()
    start = time.perf_counter()
    for _ in range(batches):
        loader()
    return batches * BATCH / (time.perf_counter() - start)


def layer_rate(path, transform, batches):
    net = data_net(path, transform)
    start = time.perf_counter()  # the thread starts at the first forward: start-up included
    for _ in range(batches):
        net.forward()
    return batches * BATCH / (time.perf_counter() - start)


def lenet_training(path, steps):
    """(images/s of SGD steps, share of wall time waiting for input)."""
    net_param = formats.read_net_param(os.path.join(REPO, "models", "lenet", "lenet_train_test.prototxt"))
    for layer in net_param.layer:
        if layer.type == "Data":
            layer.data_param.source = path
    solver_param = formats.read_solver_param(os.path.join(REPO, "models", "lenet", "lenet_solver.prototxt"))
    solver_param.ClearField("net")
    solver_param.net_param.CopyFrom(net_param)
    solver_param.test_interval, solver_param.display = 0, 0
    solver_param.ClearField("test_iter")
    solver = caffe.SGDSolver(solver_param)
    solver.step(3)
    prefetcher = solver.net.layers[0].prefetcher
    waited = prefetcher.wait_seconds
    start = time.perf_counter()
    solver.step(steps)
    wall = time.perf_counter() - start
    return steps * BATCH / wall, (prefetcher.wait_seconds - waited) / wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6400, help="images per LMDB")
    parser.add_argument("--steps", type=int, default=40, help="LeNet training steps to time")
    args = parser.parse_args(argv)
    batches = args.images // BATCH
    with tempfile.TemporaryDirectory() as folder:
        paths = build_lmdbs(folder, args.images)
        print(f"{'LMDB':<14}{'loader alone':>16}{'Data layer':>16}   (images/s, batch {BATCH}, transformer on)")
        for name, (path, transform) in paths.items():
            print(f"{name:<14}{loader_rate(path, transform, batches):>16.0f}"
                  f"{layer_rate(path, transform, batches):>16.0f}")
        try:
            rate, waiting = lenet_training(paths["raw 1x28x28"][0], args.steps)
        except caffe.CaffeError as exc:
            print(f"LeNet training: not measured ({exc})")
            return 1
        print(f"LeNet SGD training step: {rate:.0f} images/s; waiting for input {100 * waiting:.1f}% of the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
