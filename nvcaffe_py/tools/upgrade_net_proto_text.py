"""upgrade_net_proto_text: a net prototxt in one of Caffe's old formats (V0 or V1 layers, net
inputs, data transformation fields, ...) rewritten in the current one, as Caffe's tool.

    nvcaffe upgrade_net_proto_text OLD.prototxt NEW.prototxt
"""
from .upgrade_proto import upgrade_main


def main(argv=None) -> int:
    return upgrade_main("upgrade_net_proto_text", "net", binary=False, argv=argv)
