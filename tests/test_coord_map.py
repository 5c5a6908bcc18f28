"""caffe.coord_map: coordinate maps through spatial layers of a NetSpec, and crop() (pycaffe's
coord_map.py semantics)."""
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import layers as L, params as P
from nvcaffe_py.coord_map import coord_map_from_to, crop


def conv_pool_deconv(kernel=3, stride=1, pad=0, pool=2, up=2, up_pad=0):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=kernel, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool)
    n.deconv = L.Deconvolution(n.pool, num_output=4, kernel_size=2 * up, stride=up, pad=up_pad)
    return n


def deconv_to_data(**spec):
    n = conv_pool_deconv(**spec)
    return n.deconv, n.data


def test_conv_pool_deconv_maps():
    n = conv_pool_deconv()
    assert coord_map_from_to(n.deconv, n.data) == (1, 1, 0)  # 2x down, 2x up: the identity
    n = conv_pool_deconv(pool=4, up=4)
    assert coord_map_from_to(n.deconv, n.data) == (1, 1, -1)


def test_padding_shifts_the_map():
    base = coord_map_from_to(*deconv_to_data())
    n = conv_pool_deconv(pad=3)
    assert coord_map_from_to(n.deconv, n.data) == (base[0], base[1], base[2] - 3)
    n = conv_pool_deconv(up_pad=3)
    assert coord_map_from_to(n.deconv, n.data) == (base[0], base[1], base[2] + 3)


def test_anisotropic_and_nd_maps():
    n = conv_pool_deconv(kernel=[3, 5], stride=[1, 2], pad=[0, 10])
    axis, a, b = coord_map_from_to(n.deconv, n.data)
    assert axis == 1 and len(a) == len(b) == 2
    for i, (k, s, p) in enumerate([(3, 1, 0), (5, 2, 10)]):
        _, a_i, b_i = coord_map_from_to(*deconv_to_data(kernel=k, stride=s, pad=p))
        assert a[i] == a_i and b[i] == b_i


def test_crop_of_a_net_and_crop_through_crop():
    n = conv_pool_deconv(up_pad=0, pad=0, kernel=1)
    n.deconv2 = L.Deconvolution(n.conv, num_output=4, kernel_size=5, stride=1, pad=0)  # output 4 larger
    n.cropped = crop(n.deconv2, n.data)
    layer = n.to_proto().layer[-1]
    assert layer.type == "Crop" and layer.crop_param.axis == 2 and list(layer.crop_param.offset) == [2]
    assert coord_map_from_to(n.cropped, n.data) == (1, 1, 0)
    net_file = n.to_proto()
    shapes = caffe.Net(net_file, caffe.TEST).blobs
    assert shapes["cropped"].shape[2:] == shapes["data"].shape[2:]


def test_what_cannot_be_mapped_or_cropped():
    n = conv_pool_deconv()
    n.ip = L.InnerProduct(n.deconv, num_output=10)
    with pytest.raises(RuntimeError, match="connected by spatial layers"):
        coord_map_from_to(n.ip, n.data)
    with pytest.raises(AssertionError, match="scale mismatch"):
        crop(*deconv_to_data(pool=3, up=2))
    with pytest.raises(AssertionError, match="negative offset"):
        crop(*deconv_to_data(up_pad=10))
    assert np.all(coord_map_from_to(n.deconv, n.data)[1] == 1)
