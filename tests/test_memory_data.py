"""MemoryData and pycaffe's net.set_input_arrays."""
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.errors import CaffeError

NET = '''
layer { name: "mem" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 } }
layer { name: "sum" type: "Reduction" bottom: "data" top: "sum" reduction_param { operation: SUM axis: 1 } }
'''


def make_net():
    return caffe.Net(formats.net_param_from_text(NET), caffe.TEST)


def test_batches_follow_the_arrays_and_cycle():
    net = make_net()
    data = np.arange(4 * 6, dtype=np.float32).reshape(4, 1, 2, 3)
    labels = np.array([5, 6, 7, 8], np.float32)
    net.set_input_arrays(data, labels)
    for start in (0, 2, 0):
        net.forward()
        assert np.array_equal(net.blobs["data"].data, data[start:start + 2])
        assert np.array_equal(net.blobs["label"].data, labels[start:start + 2])
        assert np.allclose(net.blobs["sum"].data, data[start:start + 2].reshape(2, -1).sum(axis=1))


def test_pycaffe_label_shape_and_float64_arrays_are_accepted():
    net = make_net()
    net.set_input_arrays(np.ones((2, 1, 2, 3)), np.array([1.0, 2.0]).reshape(2, 1, 1, 1))
    net.forward()
    assert list(net.blobs["label"].data) == [1.0, 2.0]


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((2, 1, 3, 2)), np.zeros(2), r"shape \(N, 1, 2, 3\)"),
    (np.zeros((3, 1, 2, 3)), np.zeros(3), "multiple of batch_size"),
    (np.zeros((2, 1, 2, 3)), np.zeros(4), "one value per data row"),
])
def test_bad_arrays_are_refused(data, labels, message):
    with pytest.raises(CaffeError, match=message):
        make_net().set_input_arrays(data, labels)


def test_forward_before_arrays_and_nets_without_memory_data():
    with pytest.raises(CaffeError, match="call net.set_input_arrays"):
        make_net().forward()
    net = caffe.Net(formats.net_param_from_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }'), caffe.TEST)
    with pytest.raises(CaffeError, match="first layer is a MemoryData layer"):
        net.set_input_arrays(np.zeros((1, 1, 1, 1)), np.zeros(1))
