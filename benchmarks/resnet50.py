"""ResNet-50 as a Caffe net for the GPU benchmarks: the layers of He et al.'s Caffe release
(Convolution without bias, BatchNorm + Scale, ReLU, Eltwise sum, projection shortcuts) with the
stride of each downsampling block on its 3x3 convolution, as torchvision's resnet50 (v1.5), so
that benchmarks/gpu_nets.py compares the same arithmetic with PyTorch. pool1 has no pad: with
Caffe's rounding up it gives 56x56, as torchvision's padded, rounded-down pooling does.

    net_param = resnet50.train_net(batch)   # a NetParameter with Input blobs "data" and "label"
"""
from nvcaffe_py.net_spec import NetSpec, layers as L, params as P

SHAPE, CLASSES = (3, 224, 224), 1000
STAGES = [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]  # (width, blocks, first stride)


def _conv_bn(n, name, bottom, outputs, kernel, stride=1, relu=True):
    pad = kernel // 2
    n[name] = L.Convolution(bottom, num_output=outputs, kernel_size=kernel, stride=stride, pad=pad, bias_term=False,
                            weight_filler=dict(type="msra"))
    n[f"bn_{name}"] = L.BatchNorm(n[name], in_place=True)
    n[f"scale_{name}"] = L.Scale(n[name], bias_term=True, in_place=True)
    if relu:
        n[f"{name}_relu"] = L.ReLU(n[name], in_place=True)
    return n[name]


def _bottleneck(n, name, bottom, width, stride, project):
    branch = _conv_bn(n, f"res{name}_branch2a", bottom, width, 1)
    branch = _conv_bn(n, f"res{name}_branch2b", branch, width, 3, stride)
    branch = _conv_bn(n, f"res{name}_branch2c", branch, 4 * width, 1, relu=False)
    shortcut = _conv_bn(n, f"res{name}_branch1", bottom, 4 * width, 1, stride, relu=False) if project else bottom
    n[f"res{name}"] = L.Eltwise(shortcut, branch)
    n[f"res{name}_relu"] = L.ReLU(n[f"res{name}"], in_place=True)
    return n[f"res{name}"]


def train_net(batch):
    n = NetSpec()
    n.data, n.label = L.Input(ntop=2, input_param=dict(shape=[dict(dim=[batch, *SHAPE]), dict(dim=[batch])]))
    x = _conv_bn(n, "conv1", n.data, 64, 7, 2)
    n.pool1 = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    x = n.pool1
    for stage, (width, blocks, stride) in enumerate(STAGES, start=2):
        for block in range(blocks):
            x = _bottleneck(n, f"{stage}{chr(ord('a') + block)}", x, width, stride if block == 0 else 1, block == 0)
    n.pool5 = L.Pooling(x, pool=P.Pooling.AVE, kernel_size=7, stride=1)
    n.fc1000 = L.InnerProduct(n.pool5, num_output=CLASSES, weight_filler=dict(type="msra"))
    n.loss = L.SoftmaxWithLoss(n.fc1000, n.label)
    param = n.to_proto()
    param.name = "ResNet-50"
    return param
