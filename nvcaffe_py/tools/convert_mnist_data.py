"""convert_mnist_data: MNIST's IDX files -> an LMDB of 1x28x28 Datums (Caffe's example tool).

    nvcaffe convert_mnist_data [FLAGS] IMAGE_FILE LABEL_FILE DB_NAME

The files may be gzipped (as distributed). Keys are the items' indices, `%08d`, as Caffe writes
them. nvcaffe's own --start and --count convert a slice (e.g. to split one file into train and
test sets); the keys keep the items' indices in the file.
"""
import gzip

import numpy as np

from ..datum import array_to_datum
from ..datasets import writer_class
from ..errors import CaffeError
from . import Progress, run_tool, say
from .gflags import GflagsParser

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def read_idx(path, magic, dims):
    """The items of an IDX file (big-endian header: magic, count, then `dims - 1` sizes) as uint8."""
    try:
        with open(path, "rb") as f:
            payload = f.read()
    except OSError as exc:
        raise CaffeError(f"cannot read '{path}': {exc.strerror or exc}") from None
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    header_size = 4 * (1 + dims)
    if len(payload) < header_size:
        raise CaffeError(f"'{path}' is too short for an IDX header")
    header = np.frombuffer(payload[:header_size], dtype=">u4")
    if header[0] != magic:
        raise CaffeError(f"'{path}' has magic number {header[0]}, not {magic}: not an MNIST "
                         f"{'image' if magic == IMAGE_MAGIC else 'label'} file")
    shape = tuple(int(d) for d in header[1:])
    items = np.frombuffer(payload, dtype=np.uint8, offset=header_size)
    if items.size != int(np.prod(shape)):
        raise CaffeError(f"'{path}': its header promises {shape[0]} items of shape {shape[1:]}, "
                         f"but it holds {items.size} bytes of items (truncated file?)")
    return items.reshape(shape)


def build_parser():
    p = GflagsParser("convert_mnist_data", "Convert MNIST images and labels (IDX files) to an LMDB.")
    p.add_flag("backend", default="lmdb", help="the db backend to use (lmdb or leveldb)")
    p.add_flag("start", type=int, default=0, help="nvcaffe: index of the first item to convert")
    p.add_flag("count", type=int, default=-1, help="nvcaffe: how many items to convert (-1: all from --start)")
    p.add_argument("image_file", metavar="IMAGE_FILE")
    p.add_argument("label_file", metavar="LABEL_FILE")
    p.add_argument("db_name", metavar="DB_NAME")
    return p


def convert(args) -> int:
    writer = writer_class(args.backend)
    images = read_idx(args.image_file, IMAGE_MAGIC, 3)
    labels = read_idx(args.label_file, LABEL_MAGIC, 1)
    if len(images) != len(labels):
        raise CaffeError(f"'{args.image_file}' holds {len(images)} images but '{args.label_file}' "
                         f"{len(labels)} labels")
    stop = len(images) if args.count < 0 else args.start + args.count
    if not 0 <= args.start < stop <= len(images):
        raise CaffeError(f"--start {args.start} --count {args.count} is outside the {len(images)} items")
    say(f"A total of {stop - args.start} items (of {len(images)}); rows x cols: "
        f"{images.shape[1]} x {images.shape[2]}")
    progress = Progress("items", stop - args.start, every=10000)
    with writer(args.db_name) as db:
        for index in range(args.start, stop):
            db.put(f"{index:08d}", array_to_datum(images[index][np.newaxis], labels[index]).SerializeToString())
            progress.step()
    progress.done()
    say(f"Wrote {db.count} records to {args.db_name}")
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), convert, argv)
