"""ONNX export: a Net, set up and holding its weights, as an ONNX model that onnx.checker accepts,
written atomically.

    from nvcaffe_py import onnx_export
    onnx_export.export(net, "model.onnx")            # or `nvcaffe export_onnx --model ... --output ...`

Each layer's translation comes from the registry in nvcaffe_py/onnx_translation.py (the built-in
ones sit beside their layers, layers/<family>_onnx.py); a layer whose type has none, or whose
configuration ONNX cannot express, stops the export with one line naming it. Shapes are the
net's own, so static: the model takes the batch size the net was built with. Values are named
after Caffe's blobs, so the model's inputs and outputs are the net's (`data` in, `prob` out);
a blob written in place several times keeps its name for its last value.
"""
from importlib.metadata import version

from . import formats
from .errors import CaffeError
from .onnx_graph import LayerGraph, OnnxGraph
from .onnx_translation import translation_for

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax over one axis (Caffe's); Split's sizes and Squeeze's axes as inputs
MAX_MODEL_BYTES = 2 ** 31 - 1  # protobuf's limit on one serialized message


def import_onnx():
    """The onnx module, or a CaffeError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise CaffeError("ONNX export needs the onnx package: pip install 'nvcaffe_py[onnx]'") from None
    return onnx


def to_model(net, opset: int = DEFAULT_OPSET):
    """The net as an onnx.ModelProto (not yet checked)."""
    onnx = import_onnx()
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise CaffeError(f"opset {opset} is not supported: give one from {MIN_OPSET} to {latest}")
    graph = OnnxGraph(opset, reserved=net.blobs)
    values = {}  # Caffe blob name -> the ONNX value holding it now
    made_for = {}  # ONNX value -> the blob whose top it was made as
    shapes = {}  # Caffe blob name -> its shape in the model (the net's, or a translation's declared one)
    for i, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
        tops = net.top_names[name]
        g = LayerGraph(graph, layer, [values[b] for b in net.bottom_names[name]],
                       [b.shape for b in net.bottom_vecs[i]], [t.shape for t in net.top_vecs[i]], tops)
        first_node = len(graph.nodes)
        produced = list(translation_for(layer)(layer, g))
        if len(produced) != len(tops):
            raise CaffeError(f"the ONNX translation of layer '{name}' ({layer.type}) gave {len(produced)} "
                             f"values for its {len(tops)} tops")
        for top, value, shape in zip(tops, produced, g.top_shapes):
            if graph.produced_since(first_node, value) and produced.count(value) == 1:
                made_for[value] = top
                graph.shapes[value] = shape
            values[top] = value
            shapes[top] = shape
    # Each blob's last value takes the blob's name (a variant of it where a graph input has it), so
    # that a blob written in place, or passed on by Dropout, ends under its own name.
    final_names = {value: graph.claim(blob) for blob, value in values.items() if made_for.get(value) == blob}
    graph.rename(final_names)
    if not net.outputs:
        raise CaffeError(f"net '{net.name}' has no outputs to export (every blob is consumed)")
    outputs = []
    for blob in net.outputs:
        value = final_names.get(values[blob], values[blob])
        if value != blob and made_for.get(values[blob]) != blob:
            # Another blob's value (a graph input's, a Split's): an Identity gives it the blob's name.
            (value,) = graph.add_node("Identity", [value], [graph.claim(blob)], f"{blob}/Identity", {})
        outputs.append((value, shapes.get(blob, net.blobs[blob].shape)))
    return graph.to_model(outputs, net.name or "net", version("nvcaffe_py"))


def export(net, path=None, opset: int = DEFAULT_OPSET):
    """The net as an onnx.ModelProto, checked by onnx.checker (shape inference included), and
    written to `path` (atomically: a failed export leaves no partial file) when one is given."""
    onnx = import_onnx()
    model = to_model(net, opset)
    size = model.ByteSize()
    if size > MAX_MODEL_BYTES:
        raise CaffeError(f"net '{net.name}': its ONNX model would take {size / 2 ** 30:.1f} GiB, more than "
                         "the 2 GiB one ONNX file can hold")
    payload = model.SerializeToString()
    onnx.checker.check_model(payload, full_check=True)
    if path is not None:
        formats.write_atomic(path, payload)
    return model
