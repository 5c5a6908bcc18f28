"""SSD's label maps (a `LabelMap` prototxt: `item { name label display_name }`), as the fork's
convert_annoset and AnnotatedData read them: names to labels, each name and label once."""
from . import formats
from .errors import CaffeError
from .proto import caffe_pb2


def read_label_map(path) -> "caffe_pb2.LabelMap":
    """The label map at `path`; a name or label given twice, or an item without a name, is an error."""
    label_map = formats.read_text(path, caffe_pb2.LabelMap())
    if not label_map.item:
        raise CaffeError(f"{path}: the label map has no item")
    names, labels = {}, {}
    for k, item in enumerate(label_map.item, start=1):
        if not item.name or not item.HasField("label"):
            raise CaffeError(f"{path}: item #{k} needs both a name and a label")
        if item.name in names:
            raise CaffeError(f"{path}: name '{item.name}' is given twice (items #{names[item.name]} and #{k})")
        if item.label in labels:
            raise CaffeError(f"{path}: label {item.label} is given twice (items #{labels[item.label]} and #{k})")
        names[item.name], labels[item.label] = k, k
    return label_map


def name_to_label(label_map) -> dict:
    return {item.name: item.label for item in label_map.item}
