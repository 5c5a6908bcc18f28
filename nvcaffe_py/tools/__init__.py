"""Caffe's other tools (datasets, features, upgrades, logs, drawings), run as `nvcaffe <tool> ...`;
the CLI calls `nvcaffe_py.tools.<tool>.main(argv)`, which returns the exit status. Flags take
Caffe's gflags spellings (tools.gflags).

This module holds what the tools share: running one with one-line errors, and progress lines,
logged as Caffe's tools log them (nvcaffe_py.log); `-backend lmdb|leveldb` picks the database
writer (nvcaffe_py.datasets).
"""
import sys
import time

from .. import log
from ..errors import CaffeError

# name -> what it does, for the usage text (each is nvcaffe_py.tools.<name>).
TOOLS = {
    "convert_imageset": "convert a list of images to an LMDB of Datums",
    "compute_image_mean": "the mean image of an LMDB, as a .binaryproto",
    "convert_mnist_data": "MNIST's IDX files to an LMDB",
    "convert_cifar_data": "CIFAR-10's binary batches to LMDBs",
    "make_digits": "generate a synthetic digits dataset (LMDBs)",
    "convert_annoset": "images and VOC-style XML annotations to an LMDB of AnnotatedDatums (SSD)",
    "make_shapes": "generate a synthetic VOC-style detection dataset (shapes: images, XML, label map)",
    "extract_features": "a net's blobs for a dataset, to LMDBs of Datums",
    "upgrade_net_proto_text": "a net prototxt in an old format, in the current one",
    "upgrade_net_proto_binary": "a binary net (.caffemodel) in an old format, in the current one",
    "upgrade_solver_proto_text": "a solver prototxt in an old format, in the current one",
    "parse_log": "a training log as CSV tables (.train, .test), as Caffe's parse_log.py",
    "plot": "a chart of a training log as PNG, as Caffe's plot_training_log.py",
    "draw_net": "a picture of a net, as Caffe's draw_net.py",
    "serve": "the web app: datasets, training jobs with live curves, models to test and compare",
}


def run_tool(parser, body, argv) -> int:
    """Parse `argv` and run `body(args)`; a CaffeError is printed as one line, status 1."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 1
    try:
        return body(args) or 0
    except CaffeError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1




def add_synthetic_flags(parser, name, num_train, num_test):
    """--output runs/<name>, --num_train, --num_test and --seed of the synthetic dataset tools."""
    parser.add_flag("output", default=f"runs/{name}", help=f"output folder (default runs/{name})")
    parser.add_flag("num_train", type=int, default=num_train, help=f"training images (default {num_train})")
    parser.add_flag("num_test", type=int, default=num_test, help=f"test images (default {num_test})")
    parser.add_flag("seed", type=int, default=1, help="random seed (default 1)")
    return parser


def say(message: str):
    log.logger.info(message, stacklevel=2)  # the log line names the tool's file, as glog would


class Progress:
    """'Processed 3000/10000 images (2950/s)' every `every` items, and a last line at `done()`;
    on a terminal, with a total, a live status line with the rate and time left in between."""

    def __init__(self, what, total=None, every=1000):
        self.what, self.total, self.every = what, total, every
        self.count = 0
        self._start = time.perf_counter()
        self._meter = log.ProgressMeter(total, what) if total else None

    def step(self):
        self.count += 1
        if self.count % self.every == 0:
            self._line()
        if self._meter:
            self._meter.show(self.count, f"{self.count}/{self.total} {self.what}")

    def done(self):
        if self.count % self.every:
            self._line()
        log.end_progress()

    def _line(self):
        rate = self.count / max(time.perf_counter() - self._start, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        say(f"Processed {self.count}{of} {self.what} ({rate:.0f}/s)")
