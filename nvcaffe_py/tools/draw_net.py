"""draw_net: a picture of a net definition, as Caffe's python/draw_net.py draws it (caffe.draw on
pydot and Graphviz: `pip install 'nvcaffe_py[draw]'`, `apt install graphviz`).

    nvcaffe draw_net NET.prototxt OUT.png [--rankdir LR|TB|BT|RL] [--phase TRAIN|TEST|ALL] [--display_lrm]

The output format is the file's extension (png, svg, pdf, ...; `.raw` gives the dot source).
Nets in Caffe's old formats are upgraded first.
"""
from .. import draw, formats
from ..errors import CaffeError
from ..proto import caffe_pb2
from . import run_tool, say
from .gflags import GflagsParser

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST, "ALL": None}


def build_parser():
    p = GflagsParser("draw_net", "Draw a graph of the net architecture.")
    p.add_argument("input_net_proto_file", metavar="NET.prototxt", help="the net definition")
    p.add_argument("output_image_file", metavar="OUTPUT_IMAGE", help="the picture, in the format of its extension")
    p.add_flag("rankdir", default="LR", help="the direction of the layout: LR (default), TB, BT or RL")
    p.add_flag("phase", default="ALL", help="the phase to draw: TRAIN, TEST or ALL (default: every layer)")
    p.add_bool_flag("display_lrm", help="show the learning rate multipliers of the learning layers")
    return p


def draw_command(args) -> int:
    if args.phase not in PHASES:
        raise CaffeError(f"--phase must be TRAIN, TEST or ALL (got '{args.phase}')")
    net = formats.read_net_param(args.input_net_proto_file)
    say(f"Drawing net to {args.output_image_file}")
    draw.draw_net_to_file(net, args.output_image_file, args.rankdir, PHASES[args.phase], args.display_lrm)
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), draw_command, argv)
