"""The GPU half of Accuracy (accuracy.cu): per-position hits summed on the device. Per-class
accuracy (a second top) runs the CPU code."""
from nvcaffe_py.backends.cuda import kernels, memory
from nvcaffe_py.backends.cuda import math_functions as mf

_kernels = kernels.Source(__file__, "accuracy.cu")


def forward(layer, bottom, top):
    if len(top) > 1:
        layer.forward_cpu(bottom, top)
        return
    positions = layer.outer_num * layer.inner_num
    x = bottom[0].gpu_data_readonly()
    correct = memory.empty(positions, x.dtype)
    valid = memory.empty(positions, x.dtype)
    ignore = (0, 0) if layer.ignore is None else (1, layer.ignore)
    _kernels.get("accuracy_forward", x.dtype).launch(positions, positions, layer.num_classes, layer.inner_num, x,
                                                     bottom[1].gpu_data_readonly(), layer.top_k, *ignore, correct,
                                                     valid)
    count = mf.total(valid)
    top[0].data[...] = mf.total(correct) / count if count else 0
