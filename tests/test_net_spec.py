"""NetSpec (`caffe.NetSpec`, `caffe.layers as L`, `caffe.params as P`, `caffe.to_proto`) as
pycaffe's net_spec behaves: layer/parameter assignment, naming, in-place and multi-top layers."""
import numpy as np
import pytest

import nvcaffe_py as caffe
from caffe import layers as L, params as P  # the pycaffe spelling works through the alias
from nvcaffe_py.proto import caffe_pb2


def lenet(batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]), dict(dim=[batch_size, 1, 1, 1])],
                                  transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def anonymous_lenet(batch_size):
    """The same net through `Top.to_proto`, every name generated."""
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]), dict(dim=[batch_size, 1, 1, 1])], ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type="xavier"))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type="xavier"))
    return L.SoftmaxWithLoss(ip2, label).to_proto()


def load(net_proto, tmp_path, phase=caffe.TEST):
    """Through a prototxt file, as pycaffe users write them out."""
    path = tmp_path / "net.prototxt"
    path.write_text(str(net_proto))
    return caffe.Net(str(path), phase)


def require_types(*types):
    missing = sorted(set(types) - set(caffe.layer_types()))
    if missing:
        pytest.skip(f"layer types not implemented yet: {', '.join(missing)}")


def test_pycaffe_imports():
    import caffe as aliased

    assert aliased is caffe
    assert L is caffe.layers and P is caffe.params
    assert caffe.to_proto is caffe.net_spec.to_proto


def test_lenet_proto():
    proto = lenet(4)
    assert [l.name for l in proto.layer] == ["data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]
    assert list(proto.layer[0].top) == ["data", "label"]
    conv1 = proto.layer[1]
    assert conv1.type == "Convolution" and list(conv1.bottom) == ["data"] and list(conv1.top) == ["conv1"]
    assert list(conv1.convolution_param.kernel_size) == [5]  # repeated field given a scalar
    assert conv1.convolution_param.num_output == 20
    assert conv1.convolution_param.weight_filler.type == "xavier"
    assert proto.layer[2].pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert proto.layer[0].transform_param.scale == pytest.approx(1 / 255)
    assert [list(s.dim) for s in proto.layer[0].dummy_data_param.shape] == [[4, 1, 28, 28], [4, 1, 1, 1]]
    relu = proto.layer[6]
    assert list(relu.bottom) == list(relu.top) == ["ip1"]  # in place
    assert list(proto.layer[7].bottom) == ["ip1"]
    assert list(proto.layer[8].bottom) == ["ip2", "label"]


def test_lenet_builds_and_runs(tmp_path):
    require_types("DummyData", "Convolution", "Pooling", "InnerProduct", "ReLU", "SoftmaxWithLoss")
    for proto in (lenet(4), anonymous_lenet(4)):
        net = load(proto, tmp_path)
        assert len(net.layers) == 9  # no Split layers: every blob feeds one layer
        assert next(iter(net.blobs.values())).shape == (4, 1, 28, 28)
        loss = list(net.forward().values())
        assert len(loss) == 1 and np.isfinite(loss[0]).all()


def test_automatic_names_follow_pycaffe():
    proto = anonymous_lenet(4)
    # Type name + a per-type counter, shared between layers and their tops.
    assert [l.name for l in proto.layer] == ["DummyData1", "Convolution1", "Pooling1", "Convolution2", "Pooling2",
                                             "InnerProduct1", "ReLU1", "InnerProduct2", "SoftmaxWithLoss1"]
    assert list(proto.layer[0].top) == ["DummyData1", "DummyData2"]
    assert list(proto.layer[6].top) == ["InnerProduct1"]  # in place keeps its bottom's name
    assert list(proto.layer[8].bottom) == ["InnerProduct2", "DummyData2"]


def test_top_less_layers(tmp_path):
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    proto = n.to_proto()
    assert [l.name for l in proto.layer] == ["data", "silence_data", "silence_data2"]
    assert all(len(l.top) == 0 for l in proto.layer[1:])
    assert len(load(proto, tmp_path).forward()) == 0


def test_multiple_tops_come_back_as_a_tuple():
    tops = L.Slice(L.DummyData(shape=dict(dim=[2, 6])), slice_point=[2, 4], ntop=3)
    assert isinstance(tops, tuple) and len(tops) == 3
    proto = caffe.to_proto(*tops)
    assert len(proto.layer) == 2  # the shared producer appears once
    assert list(proto.layer[1].slice_param.slice_point) == [2, 4]
    assert list(proto.layer[1].top) == ["Slice1", "Slice2", "Slice3"]


def test_input_that_is_not_a_top_is_a_type_error():
    pair = L.DummyData(ntop=2)
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"):
        L.Silence(pair, ntop=0)
    L.Silence(*pair, ntop=0)


def test_to_proto_collects_what_the_tops_need():
    data = L.DummyData(shape=dict(dim=[2, 3]))
    relu = L.ReLU(data)
    sigmoid = L.Sigmoid(data)
    proto = caffe.to_proto(relu, sigmoid)
    assert [l.type for l in proto.layer] == ["DummyData", "ReLU", "Sigmoid"]
    assert relu.to_proto().layer[-1].type == "ReLU" and len(relu.to_proto().layer) == 2


def test_enum_values_from_params():
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
    assert P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    assert P.Data.LMDB == caffe_pb2.DataParameter.LMDB
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM
    with pytest.raises(AttributeError):
        P.Pooling.MEDIAN


def test_layer_level_fields_param_include_and_loss_weight():
    data = L.DummyData(shape=dict(dim=[2, 3]))
    ip = L.InnerProduct(data, num_output=4, bias_term=False, name="fc",
                        param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                        include=dict(phase=caffe.TEST), loss_weight=0.5,
                        inner_product_param=dict(axis=1))
    layer = ip.to_proto().layer[-1]
    assert layer.name == "fc"
    assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [(1, 1), (2, 0)]
    assert len(layer.include) == 1 and layer.include[0].phase == caffe.TEST
    assert list(layer.loss_weight) == [0.5]
    # Fields of the type's own message go there; `*_param` keywords name the message themselves.
    assert layer.inner_product_param.num_output == 4 and not layer.inner_product_param.bias_term
    assert layer.inner_product_param.axis == 1


def test_include_filters_the_built_net(tmp_path):
    n = caffe.NetSpec()
    n.data = L.DummyData(shape=dict(dim=[2, 3]), data_filler=dict(type="constant", value=-1))
    n.relu = L.ReLU(n.data, include=dict(phase=caffe.TEST))
    n.sigmoid = L.Sigmoid(n.data, include=dict(phase=caffe.TRAIN))
    test_net = load(n.to_proto(), tmp_path, caffe.TEST)
    assert [l.type for l in test_net.layers] == ["DummyData", "ReLU"]
    np.testing.assert_array_equal(test_net.forward()["relu"], 0)
    train_net = load(n.to_proto(), tmp_path, caffe.TRAIN)
    assert [l.type for l in train_net.layers] == ["DummyData", "Sigmoid"]


def test_in_place_layers_run_in_place(tmp_path):
    n = caffe.NetSpec()
    n.data = L.DummyData(shape=dict(dim=[2, 3]), data_filler=dict(type="uniform", min=-1, max=1))
    n.relu = L.ReLU(n.data, in_place=True)
    proto = n.to_proto()
    assert list(proto.layer[1].top) == ["data"]
    net = load(proto, tmp_path)
    out = net.forward()
    assert list(out) == ["data"] and np.all(out["data"] >= 0)


def test_netspec_item_access():
    n = caffe.NetSpec()
    n["data"] = L.DummyData(shape=dict(dim=[1]))
    assert n["data"] is n.data and n.keys() == ["data"] and n.vals() == [n.data]
    with pytest.raises(AttributeError):
        n.missing
