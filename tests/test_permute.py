"""Permute and ShuffleChannel: the forks' definitions (weiliu89/caffe ssd, farmingyard/ShuffleNet)
loop by loop, their errors, and OpenCV dnn's results on the same net."""
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.formats import net_param_from_text

from opencv_dnn import opencv_forward


def shuffle_by_loops(x, group):
    """ShuffleChannelLayer::Resize_cpu: the input's channel (i * columns + j) goes to output
    channel (j * group + i), for group rows of `columns` channels."""
    columns = x.shape[1] // group
    y = np.empty_like(x)
    for i in range(group):
        for j in range(columns):
            y[:, j * group + i] = x[:, i * columns + j]
    return y


def net_from(text):
    return caffe.Net(net_param_from_text(text), caffe.TEST)


NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 6 dim: 4 dim: 5 } } }
layer { name: "shuffle" type: "ShuffleChannel" bottom: "data" top: "shuffle" shuffle_channel_param { group: 3 } }
layer { name: "permute" type: "Permute" bottom: "shuffle" top: "permute" permute_param { order: 0 order: 2 order: 3 order: 1 } }
"""


def test_shuffle_channel_and_permute_follow_the_forks():
    net = net_from(NET)
    x = np.random.default_rng(0).standard_normal((2, 6, 4, 5)).astype(np.float32)
    out = net.forward(data=x)
    np.testing.assert_array_equal(net.blobs["shuffle"].data, shuffle_by_loops(x, 3))
    np.testing.assert_array_equal(out["permute"], shuffle_by_loops(x, 3).transpose(0, 2, 3, 1))


def test_permute_appends_the_axes_not_named():
    net = net_from(NET.replace("order: 0 order: 2 order: 3 order: 1", "order: 2"))
    assert net.blobs["permute"].shape == (4, 2, 6, 5)


@pytest.mark.parametrize("order, message", [("order: 4", "names axis 4"), ("order: 1 order: 1", "names an axis twice")])
def test_permute_rejects_bad_orders(order, message):
    with pytest.raises(CaffeError, match=message):
        net_from(NET.replace("order: 0 order: 2 order: 3 order: 1", order))


def test_shuffle_channel_rejects_a_group_that_does_not_divide_the_channels():
    with pytest.raises(CaffeError, match="6 channels cannot be split into 4 groups"):
        net_from(NET.replace("group: 3", "group: 4"))


def test_agrees_with_opencv(tmp_path):
    net = net_from(NET)
    x = np.random.default_rng(1).standard_normal((2, 6, 4, 5)).astype(np.float32)
    ours = net.forward(data=x)["permute"]
    theirs = opencv_forward(tmp_path, NET, net, {"data": x}, ["permute"])["permute"]
    np.testing.assert_array_equal(ours, theirs)
