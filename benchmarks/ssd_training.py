"""What SSD's training layers cost on the host, at SSD300's scale, on the CPU.

    python benchmarks/ssd_training.py [--batch 8] [--repeats 5]

* MultiBoxLoss's forward + backward with SSD300's 8,732 priors and 21 classes, three random
  ground-truth boxes per image, mining MAX_NEGATIVE and NONE (the fork also matches and mines on
  the host, so this is paid in GPU mode too);
* AnnotatedData's loader alone (one thread: decode, ssd_pascal.py's augmentation, resize to
  300x300), images/s, on JPEG-encoded 500x375 records of random shapes.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

import nvcaffe_py as caffe
from nvcaffe_py import formats, rng
from nvcaffe_py.datum import encode_image
from nvcaffe_py.db import LMDBWriter
from nvcaffe_py.layers.annotated_data import AnnotatedBatchLoader
from nvcaffe_py.layers.annotated_transform import AnnotatedTransformer
from nvcaffe_py.layers.data import DatabaseSource
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.tools.make_shapes import render

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))
from test_annotated_data import SSD_PASCAL_SAMPLERS, SSD_PASCAL_TRANSFORM  # noqa: E402

PRIORS, CLASSES = 8732, 21


def multibox_ms(batch, mining, repeats):
    shapes = {"loc": (batch, PRIORS * 4), "conf": (batch, PRIORS * CLASSES), "prior": (1, 2, PRIORS * 4),
              "gt": (1, 1, 3 * batch, 8)}
    inputs = "".join(f'input: "{n}" input_shape {{ {" ".join(f"dim: {d}" for d in s)} }} ' for n, s in shapes.items())
    text = (inputs + 'force_backward: true layer { name: "loss" type: "MultiBoxLoss" bottom: "loc" bottom: "conf" '
            'bottom: "prior" bottom: "gt" top: "loss" propagate_down: true propagate_down: true '
            'propagate_down: false propagate_down: false multibox_loss_param { num_classes: 21 '
            f'overlap_threshold: 0.5 code_type: CENTER_SIZE mining_type: {mining} }} }}')
    net = caffe.Net(formats.net_param_from_text(text), caffe.TRAIN)
    random = np.random.default_rng(0)
    corner = random.uniform(0, 0.9, (PRIORS, 2))
    priors = np.concatenate([corner, np.minimum(corner + random.uniform(0.05, 0.5, (PRIORS, 2)), 1)], axis=1)
    net.blobs["prior"].data[...] = np.stack([priors.ravel(), np.resize([0.1, 0.1, 0.2, 0.2], PRIORS * 4)])[None]
    net.blobs["loc"].data[...] = random.normal(size=shapes["loc"])
    net.blobs["conf"].data[...] = random.normal(size=shapes["conf"])
    rows = []
    for item in range(batch):
        for k in range(3):
            x, y = random.uniform(0, 0.6, 2)
            w, h = random.uniform(0.1, 0.4, 2)
            rows.append([item, random.integers(1, CLASSES), k, x, y, x + w, y + h, 0])
    net.blobs["gt"].data[...] = np.array(rows)[None, None]
    net.forward()
    net.backward()
    start = time.perf_counter()
    for _ in range(repeats):
        net.forward()
        net.backward()
    return (time.perf_counter() - start) / repeats * 1000


def loader_images_per_s(directory, count):
    random = np.random.default_rng(1)
    path = os.path.join(directory, "anno_lmdb")
    with LMDBWriter(path) as db:
        for k in range(count):
            image, objects = render(375, random)
            image = np.ascontiguousarray(np.concatenate([image, image[:, :125]], axis=1))  # 500 x 375
            record = caffe_pb2.AnnotatedDatum(type=caffe_pb2.AnnotatedDatum.BBOX)
            record.datum.data, record.datum.encoded = encode_image(image, "jpg"), True
            for label, (name, box) in enumerate(objects, start=1):
                a = record.annotation_group.add(group_label=label).annotation.add()
                a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax = box / [500, 375, 500, 375]
            db.put(f"{k:08d}", record.SerializeToString())
    transform = SSD_PASCAL_TRANSFORM.replace("height: 30 width: 30", "height: 300 width: 300")
    param = formats.parse_text(f"transform_param {{ {transform} }} annotated_data_param {{ {SSD_PASCAL_SAMPLERS} }}",
                               caffe_pb2.LayerParameter())
    rng.set_random_seed(1)
    loader = AnnotatedBatchLoader(DatabaseSource(path), AnnotatedTransformer(param.transform_param, caffe.TRAIN),
                                  list(param.annotated_data_param.batch_sampler), 8, True, None, np.float32, "bench")
    loader()
    start = time.perf_counter()
    batches = count // 8
    for _ in range(batches):
        loader()
    return batches * 8 / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    for mining in ("MAX_NEGATIVE", "NONE"):
        print(f"MultiBoxLoss forward+backward, batch {args.batch}, {PRIORS} priors, {CLASSES} classes, "
              f"mining {mining}: {multibox_ms(args.batch, mining, args.repeats):.1f} ms")
    with tempfile.TemporaryDirectory() as directory:
        print(f"AnnotatedData loader (ssd_pascal.py's augmentation, 500x375 JPEG -> 300x300): "
              f"{loader_images_per_s(directory, args.images):.0f} images/s on one thread")


if __name__ == "__main__":
    main()
