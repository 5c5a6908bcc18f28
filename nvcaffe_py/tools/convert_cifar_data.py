"""convert_cifar_data: CIFAR-10's binary batches -> two LMDBs of 3x32x32 Datums (Caffe's example tool).

    nvcaffe convert_cifar_data [FLAGS] INPUT_FOLDER OUTPUT_FOLDER

INPUT_FOLDER holds data_batch_1.bin ... data_batch_5.bin and test_batch.bin (the "binary version"
of CIFAR-10); each record is a label byte and 3072 pixel bytes (the R, G, B planes), stored as
the datum's data unchanged. Writes OUTPUT_FOLDER/cifar10_train_lmdb (keys `%05d`, numbered across
the five batches) and OUTPUT_FOLDER/cifar10_test_lmdb, as Caffe's tool does.
"""
import os

import numpy as np

from ..datum import array_to_datum
from ..datasets import writer_class
from ..errors import CaffeError
from . import Progress, run_tool, say
from .gflags import GflagsParser

SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)


def read_batch(path):
    """(images N x 3 x 32 x 32 uint8, labels N) of one binary batch file."""
    try:
        with open(path, "rb") as f:
            payload = f.read()
    except OSError as exc:
        raise CaffeError(f"cannot read '{path}': {exc.strerror or exc}") from None
    if not payload or len(payload) % RECORD_BYTES:
        raise CaffeError(f"'{path}' holds {len(payload)} bytes, not a whole number of {RECORD_BYTES}-byte "
                         f"CIFAR-10 records (record {len(payload) // RECORD_BYTES} is incomplete)")
    records = np.frombuffer(payload, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    bad = np.flatnonzero(records[:, 0] > 9)
    if bad.size:
        raise CaffeError(f"'{path}': record {bad[0]} has label {records[bad[0], 0]}; CIFAR-10 labels are 0-9")
    return records[:, 1:].reshape((-1,) + SHAPE), records[:, 0]


def write_set(folder, names, output, writer):
    progress = Progress("records", every=10000)
    with writer(output) as db:
        for name in names:
            images, labels = read_batch(os.path.join(folder, name))
            say(f"Reading {name}: {len(images)} records")
            for image, label in zip(images, labels):
                db.put(f"{db.count:05d}", array_to_datum(image, label).SerializeToString())
                progress.step()
    progress.done()
    say(f"Wrote {db.count} records to {output}")


def build_parser():
    p = GflagsParser("convert_cifar_data", "Convert the CIFAR-10 binary batches to LMDBs.")
    p.add_flag("backend", default="lmdb", help="the db backend to use (lmdb or leveldb)")
    p.add_argument("input_folder", metavar="INPUT_FOLDER")
    p.add_argument("output_folder", metavar="OUTPUT_FOLDER")
    return p


def convert(args) -> int:
    writer, backend = writer_class(args.backend), args.backend.lower()
    missing = [n for n in TRAIN_FILES + TEST_FILES if not os.path.isfile(os.path.join(args.input_folder, n))]
    if missing:
        raise CaffeError(f"'{args.input_folder}' lacks {', '.join(missing)} (the binary version of CIFAR-10)")
    write_set(args.input_folder, TRAIN_FILES, os.path.join(args.output_folder, f"cifar10_train_{backend}"), writer)
    write_set(args.input_folder, TEST_FILES, os.path.join(args.output_folder, f"cifar10_test_{backend}"), writer)
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), convert, argv)
