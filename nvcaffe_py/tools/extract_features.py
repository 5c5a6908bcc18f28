"""extract_features: run a trained net over its data layer and store blobs of it, one Datum per
item, in LMDBs, as Caffe's tool (same arguments, same records):

    nvcaffe extract_features WEIGHTS.caffemodel NET.prototxt BLOB[,BLOB...] DB[,DB...] NUM_MINI_BATCHES lmdb \
                             [CPU|GPU] [DEVICE_ID]

The net is built in the TEST phase; each mini-batch is one forward pass. Item n of a blob becomes
a Datum with the blob's channels, height and width (1 where the blob has fewer axes) and its
values as float_data, under the key of its running index, zero-padded to 10 digits. Each database
appears under its name once complete.
"""
import contextlib

from .. import backends, mode
from ..datasets import writer_class
from ..errors import CaffeError
from ..net import TEST, Net
from ..proto import caffe_pb2
from . import run_tool, say
from .gflags import GflagsParser


def build_parser():
    p = GflagsParser("extract_features", "Extract a trained net's blobs for the items of its data layer into "
                                         "LMDBs of Datums.")
    p.add_argument("weights", metavar="WEIGHTS.caffemodel", help="the trained weights")
    p.add_argument("model", metavar="NET.prototxt", help="the net, with a data layer (built in the TEST phase)")
    p.add_argument("blobs", metavar="BLOB[,BLOB...]", help="the blobs to extract, separated by ','")
    p.add_argument("databases", metavar="DB[,DB...]", help="one output database per blob, separated by ','")
    p.add_argument("num_mini_batches", type=int, metavar="NUM_MINI_BATCHES", help="how many forward passes")
    p.add_argument("db_type", metavar="DB_TYPE", help="the database type (lmdb or leveldb)")
    p.add_argument("device", nargs="?", default="CPU", metavar="CPU|GPU", help="where to run (default CPU)")
    p.add_argument("device_id", nargs="?", type=int, default=0, metavar="DEVICE_ID", help="the GPU (default 0)")
    return p


def feature_datum(values) -> caffe_pb2.Datum:
    """One item's blob values (C[xH[xW]]) as Caffe's tool stores them."""
    shape = tuple(values.shape) + (1,) * (3 - values.ndim)
    datum = caffe_pb2.Datum(channels=shape[0], height=shape[1], width=shape[2])
    datum.float_data.extend(values.ravel().tolist())
    return datum


def extract(args) -> int:
    writer = writer_class(args.db_type)
    blob_names, db_names = args.blobs.split(","), args.databases.split(",")
    if len(blob_names) != len(db_names):
        raise CaffeError(f"{len(blob_names)} blob names but {len(db_names)} database names; give one database per blob")
    if args.device == "GPU":
        mode.set_device(args.device_id)
        backends.set_mode_gpu()
        say(f"Using GPU {args.device_id}")
    elif args.device == "CPU":
        say("Using CPU")
    else:
        raise CaffeError(f"the device must be CPU or GPU (got '{args.device}')")
    net = Net(args.model, TEST)
    net.copy_from(args.weights)
    unknown = [name for name in blob_names if name not in net.blobs]
    if unknown:
        raise CaffeError(f"Unknown feature blob name {unknown[0]} in the network {args.model}")
    too_deep = [name for name in blob_names if net.blobs[name].num_axes > 4]
    if too_deep:
        raise CaffeError(f"blob '{too_deep[0]}' has {net.blobs[too_deep[0]].num_axes} axes; a Datum holds an item "
                         f"of at most 3 (channels, height, width)")
    with contextlib.ExitStack() as stack:
        writers = []
        for name in db_names:
            say(f"Opening dataset {name}")
            writers.append(stack.enter_context(writer(name)))
        say("Extracting Features")
        for _ in range(args.num_mini_batches):
            net.forward_from_to()
            for blob_name, writer in zip(blob_names, writers):
                for item in net.blobs[blob_name].data_readonly():
                    writer.put(f"{writer.count:010d}", feature_datum(item).SerializeToString())
                    if writer.count % 1000 == 0:
                        say(f"Extracted features of {writer.count} query images for feature blob {blob_name}")
    for blob_name, writer in zip(blob_names, writers):
        say(f"Extracted features of {writer.count} query images for feature blob {blob_name}")
    say("Successfully extracted the features!")
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), extract, argv)
