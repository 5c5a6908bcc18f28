"""compute_image_mean: the mean image of an LMDB (or LevelDB) of Datums, as a .binaryproto
(Caffe's tool). The database is read as what it is on disk; -backend is checked, as Caffe's.

    nvcaffe compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]

Encoded datums are decoded with their own channels. The mean is written as a legacy 4-d
BlobProto (num 1, channels, height, width), as Caffe's tool writes it, and each channel's mean
value is printed (useful for `mean_value`). Sums are kept in float64.
"""
import numpy as np

from .. import datasets, db, formats
from ..datum import datum_to_array, parse_datum
from ..errors import CaffeError
from ..proto import caffe_pb2
from . import Progress, run_tool, say
from .gflags import GflagsParser


def build_parser():
    p = GflagsParser("compute_image_mean", "Compute the mean image of an LMDB of Datums.")
    p.add_flag("backend", default="lmdb", help="the backend of the input (lmdb or leveldb)")
    p.add_argument("input_db", metavar="INPUT_DB")
    p.add_argument("output_file", metavar="OUTPUT_FILE", nargs="?")
    return p


def mean_of_database(path) -> np.ndarray:
    """The CxHxW float64 mean of every record."""
    sum_ = first_key = None
    where = f"{datasets.kind(path)} '{path}'"
    count, records = datasets.records(path)
    progress = Progress("files", count, every=10000)
    for key, value in records:
        key = db.key_text(key)
        try:
            image = datum_to_array(parse_datum(value))
        except CaffeError as exc:
            raise CaffeError(f"{where}: record '{key}': {exc}") from None
        if sum_ is None:
            sum_, first_key = np.zeros(image.shape, np.float64), key
        elif image.shape != sum_.shape:
            raise CaffeError(f"{where}: record '{key}' is {image.shape} but record '{first_key}' is "
                             f"{sum_.shape}; a mean needs images of one size")
        sum_ += image
        progress.step()
    progress.done()
    if not progress.count:
        raise CaffeError(f"{where} holds no records")
    return sum_ / progress.count


def compute(args) -> int:
    datasets.writer_class(args.backend)  # a known backend name
    mean = mean_of_database(args.input_db)
    if args.output_file:
        proto = caffe_pb2.BlobProto()
        proto.num, (proto.channels, proto.height, proto.width) = 1, mean.shape
        proto.data.extend(mean.astype(np.float32).ravel())
        say(f"Write to {args.output_file}")
        formats.write_binary(args.output_file, proto)
    say(f"Number of channels: {mean.shape[0]}")
    for c, value in enumerate(mean.reshape(mean.shape[0], -1).mean(axis=1)):
        say(f"mean_value channel [{c}]: {value:.6g}")
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), compute, argv)
