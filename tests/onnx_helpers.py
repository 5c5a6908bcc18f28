"""What the ONNX export tests share: nets built around one layer configuration, random weights, and
the comparison of our forward pass with onnxruntime's run of the exported model."""
import numpy as np

import nvcaffe_py as caffe
from nvcaffe_py import formats, onnx_export
from nvcaffe_py.proto import caffe_pb2

# The bar: onnxruntime's outputs equal ours to 1e-4, relative to each output's largest magnitude.
RELATIVE_TOLERANCE = 1e-4


def relative_difference(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    return float(np.abs(got - want).max(initial=0.0)) / scale


def net_around(layer_text, inputs, tops=1, in_place=False):
    """A TEST-phase net: an Input layer per input (arrays), then the layer `layer_text` (prototxt
    without bottoms and tops) reading them; returns (net, feeds)."""
    param = caffe_pb2.NetParameter(name="around")
    feeds = {}
    for i, array in enumerate(inputs):
        name = f"in{i}"
        layer = param.layer.add(name=name, type="Input", top=[name])
        layer.input_param.shape.add().dim.extend(array.shape)
        feeds[name] = np.asarray(array, np.float32)
    layer = formats.parse_text(layer_text, param.layer.add())
    layer.name = layer.name or "tested"
    layer.bottom.extend(feeds)
    layer.top.extend(["in0"] if in_place else [f"out{j}" for j in range(tops)])
    return caffe.Net(param, phase=caffe.TEST), feeds


def compare_with_onnxruntime(net, feeds, opset=onnx_export.DEFAULT_OPSET) -> dict:
    """Run our forward and onnxruntime on the exported model with the same inputs (`feeds`, the
    other inputs as the net holds them). Returns {blob: relative difference} for the net's outputs
    and for every other blob whose last value the model names after it (the inner layers' tops)."""
    import onnxruntime

    for name, array in feeds.items():
        net.blobs[name].data[...] = array
    inputs = {name: net.blobs[name].data_readonly().astype(np.float32) for name in net.inputs}
    net.forward()
    model = onnx_export.export(net, opset=opset)
    # The outputs first (in the net's order; an output written in place over an input has a
    # name of its own), then the inner blobs as extra outputs.
    compared = list(net.outputs)
    inner = [info for info in model.graph.value_info if info.name in net.blobs and info.name not in compared]
    model.graph.output.extend(inner)
    compared += [info.name for info in inner]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    theirs = session.run(None, inputs)
    assert len(theirs) == len(compared), f"{len(theirs)} ONNX outputs for {len(compared)} compared blobs"
    return {name: relative_difference(value, net.blobs[name].data_readonly()) for name, value in zip(compared, theirs)}


def randomize_weights(net, seed=0):
    """Every parameter blob drawn at random (deploy nets come without fillers: their weights would
    be zeros), scaled by fan-in so that activations stay of order one through deep nets."""
    generator = np.random.default_rng(seed)
    for blobs in net.params.values():
        for blob in blobs:
            fan_in = blob.count() // blob.shape[0] if blob.num_axes > 1 else 1
            values = generator.standard_normal(blob.shape, dtype=np.float32)
            values *= np.float32(np.sqrt(1.0 / fan_in))
            blob.data[...] = values
