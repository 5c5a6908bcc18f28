"""Rewrites of a NetParameter used by benchmarks, `time` and tests: data-reading layers become
Input layers of given shapes, so a train/val net runs without its dataset."""
from .proto import caffe_pb2

DATA_LAYER_TYPES = ("Data", "ImageData", "HDF5Data", "MemoryData", "WindowData")


def data_layers_to_inputs(net_param, item_shape, batch_size=None):
    """A copy of `net_param` whose data layers are Input layers.

    item_shape(layer) -> the per-item shape of the layer's first top (labels get shape (N,)).
    batch_size: the N to use; None keeps each layer's own batch size. Input and DummyData
    layers get the same batch size when one is given.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    for layer in out.layer:
        if layer.type in DATA_LAYER_TYPES:
            n = batch_size or _own_batch_size(layer)
            replacement = caffe_pb2.LayerParameter(name=layer.name, type="Input", top=list(layer.top))
            replacement.include.extend(layer.include)
            replacement.exclude.extend(layer.exclude)
            replacement.input_param.shape.add().dim.extend((n,) + tuple(item_shape(layer)))
            for _ in layer.top[1:]:
                replacement.input_param.shape.add().dim.append(n)
            layer.CopyFrom(replacement)
        elif batch_size and layer.type == "Input":
            for shape in layer.input_param.shape:
                shape.dim[0] = batch_size
        elif batch_size and layer.type == "DummyData":
            for shape in layer.dummy_data_param.shape:
                shape.dim[0] = batch_size
            legacy_nums = layer.dummy_data_param.num
            legacy_nums[:] = [batch_size] * len(legacy_nums)
    return out


def _own_batch_size(layer):
    for field in ("data_param", "image_data_param", "hdf5_data_param", "memory_data_param", "window_data_param"):
        p = getattr(layer, field)
        if p.batch_size:
            return p.batch_size
    return 1
