"""What the deploy-time forward's tests share (tests/test_inference_plan.py, tests/test_onednn.py):
a net of every fold's corner cases, random weights, and the comparison of a deploy-time net with
the layer-by-layer one on the same weights (1e-5 relative)."""
import numpy as np

import nvcaffe_py as caffe

TOLERANCE = 1e-5

# Every fold: BatchNorm out of place (its input is computed no more) then Scale in place; a
# depthwise convolution without bias and NVCaffe's scale_bias BatchNorm, then Bias and a scalar
# Scale; a convolution read twice (no fold); BatchNorm + Scale after an Eltwise (one Scale);
# InnerProduct, plain and transposed, with BatchNorm, Scale and Bias; a ReLU and a Dropout out of
# place (run in place).
CORNERS = """
name: "corners"
input: "data" input_shape { dim: 2 dim: 3 dim: 9 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "msra" }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" }
layer { name: "scale1" type: "Scale" bottom: "bn1" top: "bn1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "bn1" top: "relu1" }
layer { name: "dw" type: "ConvolutionDepthwise" bottom: "relu1" top: "dw"
        convolution_param { num_output: 4 group: 4 kernel_size: 3 pad: 1 bias_term: false
                            weight_filler { type: "msra" } } }
layer { name: "dw_bn" type: "BatchNorm" bottom: "dw" top: "dw"
        batch_norm_param { scale_filler { type: "uniform" min: 0.5 max: 2 } bias_filler { type: "gaussian" } } }
layer { name: "dw_bias" type: "Bias" bottom: "dw" top: "dw" bias_param { filler { type: "gaussian" } } }
layer { name: "dw_gain" type: "Scale" bottom: "dw" top: "dw"
        scale_param { num_axes: 0 filler { type: "constant" value: 1.7 } } }
layer { name: "side" type: "Convolution" bottom: "relu1" top: "side"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "side_bn" type: "BatchNorm" bottom: "side" top: "side_bn" }
layer { name: "side_pool" type: "Pooling" bottom: "side" top: "side_pool" pooling_param { pool: MAX kernel_size: 2 } }
layer { name: "sum" type: "Eltwise" bottom: "dw" bottom: "side_bn" top: "sum" }
layer { name: "sum_bn" type: "BatchNorm" bottom: "sum" top: "sum" }
layer { name: "sum_scale" type: "Scale" bottom: "sum" top: "sum" scale_param { bias_term: true } }
layer { name: "drop" type: "Dropout" bottom: "sum" top: "drop" }
layer { name: "ip1" type: "InnerProduct" bottom: "drop" top: "ip1"
        inner_product_param { num_output: 6 weight_filler { type: "msra" } } }
layer { name: "ip1_bn" type: "BatchNorm" bottom: "ip1" top: "ip1" }
layer { name: "ip1_scale" type: "Scale" bottom: "ip1" top: "ip1" scale_param { bias_term: true } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 transpose: true bias_term: false weight_filler { type: "msra" } } }
layer { name: "ip2_bias" type: "Bias" bottom: "ip2" top: "ip2" bias_param { filler { type: "gaussian" } } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
"""


def randomize(net, seed=0):
    """Weights of every layer drawn afresh (many deploy prototxts have no fillers: all zeros),
    BatchNorm statistics as after training, Scale operands near 1."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        blobs = list(layer.blobs)
        if layer.type == "BatchNorm":
            channels = blobs[0].shape[0]
            blobs[0].data[...] = rng.normal(0, 0.2, channels)
            blobs[1].data[...] = rng.uniform(0.5, 1.5, channels)
            blobs[2].data[...] = rng.uniform(0.5, 2)
            blobs = blobs[3:]
        elif layer.type == "Scale" and blobs:
            blobs[0].data[...] = rng.uniform(0.5, 1.5, blobs[0].shape)
            blobs = blobs[1:]
        for blob in blobs:
            fan_in = blob.count() // blob.shape[0] if blob.num_axes > 1 else 10
            blob.data[...] = rng.standard_normal(blob.shape, dtype=np.float32) * np.float32(1.5 / np.sqrt(fan_in))


def build_pair(param, batch=None, prepare=randomize):
    """(layer by layer, deploy-time) nets sharing one set of weights (`prepare` sets them), their
    inputs filled."""
    if batch:
        for layer in param.layer:
            if layer.type == "Input":
                for shape in layer.input_param.shape:
                    shape.dim[0] = batch
    reference = caffe.Net(param, caffe.TEST, optimize=False)
    prepare(reference)
    optimised = caffe.Net(param, caffe.TEST)
    optimised.share_with(reference)
    rng = np.random.default_rng(1)
    for name in reference.inputs:
        value = rng.uniform(-1, 1, reference.blobs[name].shape)
        reference.blobs[name].data[...] = value
        optimised.blobs[name].data[...] = value
    return reference, optimised


def assert_close(got, want, what, tolerance=TOLERANCE):
    scale = max(float(np.abs(want).max()), 1e-30)
    error = float(np.abs(np.asarray(got, np.float64) - want).max()) / scale
    assert error <= tolerance, f"{what}: relative error {error:.2e}"


def assert_same_forward(reference, optimised, what):
    """Outputs with the plan at full strength, then every blob, read (and recomputed) afterwards."""
    want = {name: array.copy() for name, array in reference.forward().items()}
    for name, array in optimised.forward().items():
        assert_close(array, want[name], f"{what}: output {name}")
    for name, blob in optimised.blobs.items():
        assert_close(blob.data, reference.blobs[name].data, f"{what}: blob {name}")
