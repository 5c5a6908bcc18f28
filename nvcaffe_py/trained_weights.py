"""Trained weights into a Net, layer by layer by name: Caffe's CopyTrainedLayersFrom for a
.caffemodel (or a NetParameter) and CopyTrainedLayersFromHDF5 for a path ending in .h5.

Layers of the file that the net lacks are skipped; a layer in both must match in param count and
shapes. A file must give the net something: one that gives no learnable layer of the net any
weights (an empty file, one cut before its first layer record, another net's weights) is an
error, and one that leaves some learnable layers at their fillers says which at WARNING, since
fine-tuning does that on purpose.
"""
from . import formats, hdf5_format, log
from .errors import CaffeError
from .proto import caffe_pb2

_NAMES_SHOWN = 10


def copy_trained_layers(net, weights, hdf5=None, report_unreached=True):
    """Copy `weights` (a .caffemodel or .h5 path, or a NetParameter) into `net`; `hdf5` says the
    path's format where its extension should not. With report_unreached, a file that reaches no
    learnable layer is an error and one that misses some is a warning (a caller copying one file
    into several nets reports for one of them)."""
    if isinstance(weights, caffe_pb2.NetParameter):
        where, (file_layers, reached) = "<weights>", _from_proto(net, weights, "<weights>")
    elif hdf5 or (hdf5 is None and str(weights).endswith(".h5")):
        where, (file_layers, reached) = str(weights), _from_hdf5(net, weights)
    else:
        where = str(weights)
        file_layers, reached = _from_proto(net, formats.read_caffemodel(weights), where)
    if report_unreached:
        _report_unreached(net, where, file_layers, reached)


def _from_proto(net, source, where):
    """(the file's layer names, the net's layers it gave weights to)."""
    by_name, reached = net.layer_dict, set()
    for source_layer in source.layer:
        target = by_name.get(source_layer.name)
        if target is None:
            log.info(f"Ignoring source layer {source_layer.name}")
            continue
        if len(target.blobs) != len(source_layer.blobs):
            raise _param_count_error(where, source_layer.name, len(source_layer.blobs), len(target.blobs))
        for k, proto in enumerate(source_layer.blobs):
            blob = target.blobs[k]
            _check_param_shape(where, source_layer.name, k, blob, formats.blob_proto_shape(proto),
                               formats.proto_shape_matches(proto, blob.shape))
            values = formats.array_from_blob_proto(proto, net.dtype, where=f"{where}: layer '{source_layer.name}' "
                                                                          f"param {k}")
            blob.data[...] = values.reshape(blob.shape)
        reached.add(source_layer.name)
    return [layer.name for layer in source.layer], reached


def _from_hdf5(net, filename):
    """As _from_proto; a param the file lacks is allowed only where the layer shares it from another
    (Caffe writes no data for it). Datasets are read only for layers of the net, and only once
    their declared shape matches the blob's."""
    where = str(filename)
    owned = {(p.layer_name, p.index) for p in net.learnable_params}
    by_name, reached = net.layer_dict, set()
    with hdf5_format.weights_layers(filename) as layers:
        for name, datasets in layers.items():
            target = by_name.get(name)
            if target is None:
                log.info(f"Ignoring source layer {name}")
                continue
            count = len(target.blobs)
            lacking = [k for k in range(count) if str(k) not in datasets and (name, k) in owned]
            if len(datasets) > count or lacking:
                raise _param_count_error(where, name, len(datasets), count)
            for k, blob in enumerate(target.blobs):
                stored = datasets.get(str(k))
                if stored is not None:
                    _check_param_shape(where, name, k, blob, stored.shape, stored.shape == blob.shape)
                    blob.data[...] = stored.read()
            reached.add(name)
        return list(layers), reached


def _report_unreached(net, where, file_layers, reached):
    learnable = list(dict.fromkeys(p.layer_name for p in net.learnable_params))
    unreached = [name for name in learnable if name not in reached]
    if not unreached:
        return
    if len(unreached) < len(learnable):
        which = f"layers {_names(unreached)}, which keep their fillers" if len(unreached) > 1 else \
            f"layer {unreached[0]}, which keeps its filler"
        log.warning(f"{where}: gives no weights to {which}")
        return
    if not file_layers:
        raise CaffeError(f"{where}: holds no layers (an empty or cut weights file); the net's learnable layers "
                         f"{_names(learnable)} would keep their fillers")
    raise CaffeError(f"{where}: gives no weights to any learnable layer of the net ({_names(learnable)}); its "
                     f"{len(file_layers)} layers: {_names(file_layers)}")


def _names(names) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown + (f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else "")


def _param_count_error(where, layer_name, in_weights, in_net):
    return CaffeError(f"{where}: layer '{layer_name}' has {in_weights} param blobs in the weights but {in_net} in "
                      f"the net")


def _check_param_shape(where, layer_name, k, blob, source_shape, matches):
    if not matches:
        raise CaffeError(f"{where}: cannot copy param {k} of layer '{layer_name}': shape mismatch, weights have "
                         f"{tuple(source_shape)}, the net has {blob.shape} (rename the layer to learn it from "
                         f"scratch)")
