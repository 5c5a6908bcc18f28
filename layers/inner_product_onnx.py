"""ONNX translation of InnerProduct: Flatten at `axis` to Caffe's (M, K) matrix, then Gemm."""
from nvcaffe_py.onnx_translation import onnx_translation


@onnx_translation("InnerProduct")
def inner_product(layer, g):
    params = [g.constant(layer.blobs[0].data_readonly(), "weight")]
    if layer.bias_term:
        params.append(g.constant(layer.blobs[1].data_readonly(), "bias"))
    rows = g.op("Flatten", g.bottoms[0], axis=layer.axis)
    # Caffe's weights are (N, K), or (K, N) with `transpose`.
    y = g.op("Gemm", rows, *params, transB=int(not layer.transpose))
    top_shape = g.top_shapes[0]
    return [y if len(top_shape) == 2 and layer.axis == 1 else g.reshape(y, top_shape)]
