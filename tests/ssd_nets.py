"""Deploy definitions of the architectures of two SSD detectors people run, written here (random
weights): MobileNet-SSD (chuanqi305's VOC deploy net: depthwise-separable MobileNet v1, six
heads, 21 classes) and OpenCV's res10_300x300 face detector (a ResNet-10 trunk, a Normalize on
the first head, 2 classes). `prepare(net)` gives the BatchNorm layers sane statistics."""
import numpy as np

MSRA = 'weight_filler { type: "msra" }'


class Prototxt:
    def __init__(self, name, input_shape):
        dims = " ".join(f"dim: {d}" for d in input_shape)
        self.lines = [f'name: "{name}"', f'input: "data" input_shape {{ {dims} }}']

    def layer(self, name, type_, bottom, top=None, body=""):
        bottoms = " ".join(f'bottom: "{b}"' for b in ([bottom] if isinstance(bottom, str) else bottom))
        self.lines.append(f'layer {{ name: "{name}" type: "{type_}" {bottoms} top: "{top or name}" {body} }}')
        return top or name

    def conv(self, name, bottom, num_output, kernel, stride=1, group=1, bias=True, type_="Convolution",
             filler=MSRA):
        pad = kernel // 2
        grouping = f" group: {group}" if group > 1 else ""
        bias_term = "" if bias else " bias_term: false"
        return self.layer(name, type_, bottom, body=f"convolution_param {{ num_output: {num_output} kernel_size: "
                          f"{kernel} pad: {pad} stride: {stride}{grouping}{bias_term} {filler} }}")

    def bn_scale_relu(self, name, bottom, relu="ReLU"):
        self.layer(f"{name}/bn", "BatchNorm", bottom, bottom)
        self.layer(f"{name}/scale", "Scale", bottom, bottom,
                   'scale_param { bias_term: true filler { type: "uniform" min: 0.8 max: 1.2 } '
                   'bias_filler { type: "uniform" min: -0.1 max: 0.1 } }')
        if relu:
            self.layer(f"{name}/relu", relu, bottom, bottom)
        return bottom

    def head(self, source, min_size, max_size, ratios, classes, conf_std, image="data"):
        """loc, conf and prior boxes of one feature map, SSD's way."""
        priors = (2 if max_size else 1) + 2 * len(ratios)
        outs = {}
        for kind, width, std in (("loc", 4, 0.01), ("conf", classes, conf_std)):
            top = self.conv(f"{source}_mbox_{kind}", source, priors * width, 3,
                            filler=f'weight_filler {{ type: "gaussian" std: {std} }}')
            perm = self.layer(f"{top}_perm", "Permute", top, body="permute_param { order: 0 order: 2 order: 3 order: 1 }")
            outs[kind] = self.layer(f"{top}_flat", "Flatten", perm, body="flatten_param { axis: 1 }")
        sizes = f"min_size: {min_size}" + (f" max_size: {max_size}" if max_size else "")
        ratio_text = " ".join(f"aspect_ratio: {r}" for r in ratios)
        outs["prior"] = self.layer(f"{source}_mbox_priorbox", "PriorBox", [source, image],
                                   body=f"prior_box_param {{ {sizes} {ratio_text} flip: true clip: false "
                                        "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 offset: 0.5 }")
        return outs

    def detection(self, heads, classes, keep_top_k, threshold, nms_top_k):
        concat = {kind: self.layer(f"mbox_{kind}", "Concat", [h[kind] for h in heads],
                                   body=f"concat_param {{ axis: {2 if kind == 'prior' else 1} }}")
                  for kind in ("loc", "conf", "prior")}
        self.layer("mbox_conf_reshape", "Reshape", concat["conf"],
                   body=f"reshape_param {{ shape {{ dim: 0 dim: -1 dim: {classes} }} }}")
        self.layer("mbox_conf_softmax", "Softmax", "mbox_conf_reshape", body="softmax_param { axis: 2 }")
        self.layer("mbox_conf_flatten", "Flatten", "mbox_conf_softmax", body="flatten_param { axis: 1 }")
        self.layer("detection_out", "DetectionOutput", [concat["loc"], "mbox_conf_flatten", concat["prior"]],
                   body=f"detection_output_param {{ num_classes: {classes} share_location: true "
                        f"background_label_id: 0 nms_param {{ nms_threshold: 0.45 top_k: {nms_top_k} }} "
                        f"code_type: CENTER_SIZE keep_top_k: {keep_top_k} confidence_threshold: {threshold} }}")

    def text(self):
        return "\n".join(self.lines) + "\n"


def mobilenet_ssd(size=300):
    p = Prototxt("MobileNet-SSD", (1, 3, size, size))
    x = p.bn_scale_relu("conv0", p.conv("conv0", "data", 32, 3, stride=2, bias=False))
    channels = 32
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for k, (out, stride) in enumerate(blocks, start=1):
        # the fork type on every other block: both spellings of a depthwise convolution
        kind = "ConvolutionDepthwise" if k % 2 else "Convolution"
        x = p.bn_scale_relu(f"conv{k}/dw", p.conv(f"conv{k}/dw", x, channels, 3, stride, group=channels, bias=False,
                                                  type_=kind))
        x = p.bn_scale_relu(f"conv{k}", p.conv(f"conv{k}", x, out, 1, bias=False))
        channels = out
    features = {"conv11": "conv11", "conv13": "conv13"}
    for k, (squeeze, out) in zip(range(14, 18), [(256, 512), (128, 256), (128, 256), (64, 128)]):
        y = p.layer(f"conv{k}_1/relu", "ReLU", p.conv(f"conv{k}_1", x, squeeze, 1), f"conv{k}_1")
        x = p.layer(f"conv{k}_2/relu", "ReLU", p.conv(f"conv{k}_2", y, out, 3, stride=2), f"conv{k}_2")
        features[f"conv{k}_2"] = x
    sizes = [(60, None, [2]), (105, 150, [2, 3]), (150, 195, [2, 3]), (195, 240, [2, 3]), (240, 285, [2, 3]),
             (285, 300, [2, 3])]
    heads = [p.head(name, *size, classes=21, conf_std=0.02) for name, size in zip(features, sizes)]
    p.detection(heads, 21, keep_top_k=100, threshold=0.25, nms_top_k=100)
    return p.text()


def res10_face(size=300):
    p = Prototxt("res10_300x300_ssd", (1, 3, size, size))
    p.layer("data_bn", "BatchNorm", "data", "data_bn")
    p.layer("data_scale", "Scale", "data_bn", "data_bn", "scale_param { bias_term: true }")
    x = p.bn_scale_relu("conv1", p.conv("conv1_h", "data_bn", 32, 7, stride=2))
    x = p.layer("conv1_pool", "Pooling", x, body="pooling_param { pool: MAX kernel_size: 3 stride: 2 }")
    features = {}
    for name, channels, stride in (("layer_64_1", 32, 1), ("layer_128_1", 128, 2), ("layer_256_1", 256, 2),
                                   ("layer_512_1", 256, 1)):
        branch = p.bn_scale_relu(f"{name}_conv1", p.conv(f"{name}_conv1", x, channels, 3, stride=stride))
        branch = p.conv(f"{name}_conv2", branch, channels, 3)
        shortcut = x if stride == 1 and name == "layer_64_1" else p.conv(f"{name}_conv_expand", x, channels, 1,
                                                                          stride=stride)
        x = p.layer(f"{name}_sum", "Eltwise", [branch, shortcut])
        x = p.bn_scale_relu(f"{name}_post", x)
        features[name] = x
    norm = p.layer("conv4_3_norm", "Normalize", features["layer_256_1"],
                   body='norm_param { across_spatial: false channel_shared: false scale_filler { type: "constant" value: 20 } }')
    heads_from = {"conv4_3_norm": norm, "fc7": features["layer_512_1"]}
    x = features["layer_512_1"]
    for k, (squeeze, out) in zip(range(6, 10), [(128, 256), (64, 128), (64, 128), (64, 128)]):
        y = p.layer(f"conv{k}_1_relu", "ReLU", p.conv(f"conv{k}_1_h", x, squeeze, 1), f"conv{k}_1_h")
        x = p.layer(f"conv{k}_2_relu", "ReLU", p.conv(f"conv{k}_2_h", y, out, 3, stride=2), f"conv{k}_2_h")
        heads_from[f"conv{k}_2_h"] = x
    sizes = [(30, 60, [2]), (60, 111, [2, 3]), (111, 162, [2, 3]), (162, 213, [2, 3]), (213, 264, [2]),
             (264, 315, [2])]
    heads = [p.head(source, *size, classes=2, conf_std=0.002) for source, size in zip(heads_from.values(), sizes)]
    p.detection(heads, 2, keep_top_k=200, threshold=0.5, nms_top_k=400)
    return p.text()


def prepare(net, seed=0):
    """BatchNorm statistics as after training (means near 0, variances near 1, scale factor 1)."""
    rng = np.random.default_rng(seed)
    for name, layer in zip(net.layer_names, net.layers):
        if layer.type == "BatchNorm":
            channels = layer.blobs[0].shape[0]
            layer.blobs[0].data[...] = rng.normal(0, 0.1, channels)
            layer.blobs[1].data[...] = rng.uniform(0.5, 1.5, channels)
            layer.blobs[2].data[...] = 1
