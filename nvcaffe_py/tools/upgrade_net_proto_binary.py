"""upgrade_net_proto_binary: a binary NetParameter (a .caffemodel) in one of Caffe's old formats
rewritten in the current one, as Caffe's tool.

    nvcaffe upgrade_net_proto_binary OLD.caffemodel NEW.caffemodel
"""
from .upgrade_proto import upgrade_main


def main(argv=None) -> int:
    return upgrade_main("upgrade_net_proto_binary", "net", binary=True, argv=argv)
