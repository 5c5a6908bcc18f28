"""Caffe's file formats: prototxt errors with their place, binary decode errors, atomic writes,
BlobProto conversions and shape rules, and solver upgrade on load."""
import os

import numpy as np
import pytest

from nvcaffe_py import formats
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2


def test_prototxt_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  tpye: "ReLU"\n}\n')
    with pytest.raises(CaffeError) as info:
        formats.read_net_param(path)
    message = str(info.value)
    assert message.startswith(f"{path}:4:3: ")
    assert "unknown field 'tpye'" in message and "did you mean 'type'" in message and "\n" not in message


def test_prototxt_syntax_error_from_text():
    with pytest.raises(CaffeError, match=r"^<string>:1:\d+: .*"):
        formats.net_param_from_text('layer { name: "a" ')
    with pytest.raises(CaffeError, match=r"^solver\.prototxt:2:\d+: "):
        formats.parse_text("base_lr: 0.1\nmax_iter: ten\n", caffe_pb2.SolverParameter(), "solver.prototxt")


@pytest.mark.parametrize("read", [formats.read_net_param, formats.read_solver_param, formats.read_caffemodel,
                                  lambda p: formats.read_binary(p, caffe_pb2.BlobProto())])
def test_missing_file(tmp_path, read):
    path = tmp_path / "absent.file"
    with pytest.raises(CaffeError, match=f"^{path}: no such file$"):
        read(path)


def test_corrupt_caffemodel(tmp_path):
    path = tmp_path / "broken.caffemodel"
    path.write_bytes(b"\x0a\xff\xff\xff\xff\x0f")  # a length-delimited field running past the end
    with pytest.raises(CaffeError, match=f"^{path}: not a valid binary NetParameter"):
        formats.read_caffemodel(path)


def test_binary_round_trip(tmp_path):
    net = caffe_pb2.NetParameter(name="n")
    layer = net.layer.add(name="ip", type="InnerProduct")
    formats.blob_to_proto(np.arange(6, dtype=np.float32).reshape(2, 3), proto=layer.blobs.add())
    path = tmp_path / "sub" / "w.caffemodel"  # the folder is created
    formats.write_binary(path, net)
    assert formats.read_caffemodel(path) == net
    assert os.listdir(path.parent) == ["w.caffemodel"]


def test_text_round_trip(tmp_path):
    solver = caffe_pb2.SolverParameter(base_lr=0.01, type="Adam", max_iter=10)
    path = tmp_path / "solver.prototxt"
    formats.write_text(path, solver)
    assert formats.read_solver_param(path) == solver


@pytest.fixture
def existing_file(tmp_path):
    path = tmp_path / "snapshot.solverstate"
    path.write_bytes(b"previous snapshot")
    return path


def assert_untouched(path):
    assert path.read_bytes() == b"previous snapshot"
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind


def test_write_atomic_keeps_the_old_file_when_the_write_fails(existing_file, monkeypatch):
    real_fdopen = os.fdopen

    def fdopen_failing_midway(fd, mode):
        f = real_fdopen(fd, mode)
        real_write = f.write

        def write(data):
            real_write(data[:4])  # part of the payload reaches the temporary file
            raise OSError(28, "No space left on device")

        f.write = write
        return f

    monkeypatch.setattr(os, "fdopen", fdopen_failing_midway)
    with pytest.raises(CaffeError, match=rf"^{existing_file}: cannot write: No space left on device$"):
        formats.write_atomic(existing_file, b"new contents")
    assert_untouched(existing_file)


def test_write_atomic_keeps_the_old_file_when_the_rename_fails(existing_file, monkeypatch):
    def failing_replace(src, dst):
        raise PermissionError("rename refused")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CaffeError, match="cannot write: rename refused"):
        formats.write_atomic(existing_file, b"new contents")
    assert_untouched(existing_file)


def test_write_atomic_replaces_the_file(existing_file):
    formats.write_atomic(existing_file, b"new contents")
    assert existing_file.read_bytes() == b"new contents"
    assert os.listdir(existing_file.parent) == [existing_file.name]


def test_write_atomic_leaves_a_file_others_can_read(tmp_path):
    path = tmp_path / "model.caffemodel"
    formats.write_atomic(path, b"weights")
    assert os.stat(path).st_mode & 0o777 == 0o644  # not the temporary file's 0600


# -- BlobProto -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3,), (2, 3, 1, 1, 2), ()])
@pytest.mark.parametrize("double", [False, True])
def test_blob_proto_round_trip(shape, double):
    data = np.random.default_rng(0).standard_normal(shape)
    diff = data * 2
    proto = formats.blob_to_proto(data, diff, double=double)
    assert len(proto.double_data if double else proto.data) == data.size
    dtype = np.float64 if double else np.float32
    back = formats.array_from_blob_proto(proto, dtype)
    assert back.shape == shape
    np.testing.assert_array_equal(back, data.astype(dtype))
    np.testing.assert_array_equal(formats.array_from_blob_proto(proto, dtype, diff=True), diff.astype(dtype))
    assert formats.proto_shape_matches(proto, shape)
    # Serialized and parsed again, as in a caffemodel.
    parsed = caffe_pb2.BlobProto.FromString(proto.SerializeToString())
    assert formats.blob_proto_shape(parsed) == shape
    assert formats.proto_shape_matches(parsed, shape)


def test_blob_from_proto_fills_data_and_diff():
    proto = formats.blob_to_proto(np.ones((2, 2)), np.full((2, 2), 3.0), double=True)
    blob = formats.blob_from_proto(proto, dtype=np.float64)
    assert blob.shape == (2, 2) and blob.dtype == np.float64
    assert np.all(blob.data == 1) and np.all(blob.diff == 3)


def test_scalar_blob_as_caffe_writes_it():
    # Caffe's ToProto adds no `shape` message for a 0-axis blob (e.g. a Scale layer with
    # num_axes: 0): only the single value.
    proto = caffe_pb2.BlobProto(data=[2.5])
    assert formats.blob_proto_shape(proto) == ()
    assert formats.proto_shape_matches(proto, ())
    assert not formats.proto_shape_matches(proto, (1,))
    assert formats.array_from_blob_proto(proto).shape == ()


def legacy(num, channels, height, width):
    return caffe_pb2.BlobProto(num=num, channels=channels, height=height, width=width)


@pytest.mark.parametrize("proto, shape, matches", [
    # Legacy protos compare against the shape padded with leading 1s to 4 axes (Caffe's
    # ShapeEquals): an old InnerProduct weight 1x1xMxN is today's MxN, its bias 1x1x1xN is N.
    (legacy(1, 1, 10, 20), (10, 20), True),
    (legacy(1, 1, 1, 20), (20,), True),
    (legacy(2, 3, 4, 5), (2, 3, 4, 5), True),
    (legacy(1, 1, 10, 20), (20, 10), False),
    (legacy(10, 20, 1, 1), (10, 20), False),
    (legacy(1, 1, 1, 1), (1, 1, 1, 1, 1), False),  # more than 4 axes never match a legacy proto
    (caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[10, 20])), (10, 20), True),
    (caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[10, 20])), (1, 1, 10, 20), False),
    (caffe_pb2.BlobProto(num=0, shape=caffe_pb2.BlobShape(dim=[5])), (5,), False),  # legacy fields win
])
def test_proto_shape_matches_legacy_rules(proto, shape, matches):
    assert formats.proto_shape_matches(proto, shape) is matches


def test_legacy_blob_proto_shape():
    proto = legacy(1, 2, 3, 1)
    proto.data.extend(range(6))
    assert formats.blob_proto_shape(proto) == (1, 2, 3, 1)
    assert formats.array_from_blob_proto(proto).shape == (1, 2, 3, 1)


def test_blob_proto_with_the_wrong_count_is_an_error():
    proto = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[2, 3]), data=[1, 2, 3])
    with pytest.raises(CaffeError, match=r"holds 3 values but its shape \(2, 3\) needs 6"):
        formats.array_from_blob_proto(proto)


# -- solver upgrade ------------------------------------------------------------------------------
@pytest.mark.parametrize("enum_name, type_name", [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
                                                  ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")])
def test_read_solver_param_upgrades_solver_type(tmp_path, enum_name, type_name):
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "train.prototxt"\nbase_lr: 0.01\nsolver_type: {enum_name}\n')
    solver = formats.read_solver_param(path)
    assert solver.type == type_name and not solver.HasField("solver_type")
    assert solver.net == "train.prototxt" and solver.base_lr == pytest.approx(0.01)


def test_read_solver_param_rejects_both_solver_type_and_type(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('solver_type: ADAM\ntype: "Adam"\n')
    with pytest.raises(CaffeError) as info:
        formats.read_solver_param(path)
    # One place, then the message: no second, made-up source name.
    assert str(info.value).startswith(f"{path}: both the legacy 'solver_type' and 'type'")


def test_read_mean_binaryproto(tmp_path):
    mean = np.random.default_rng(1).random((1, 3, 4, 5)).astype(np.float32)
    proto = legacy(*mean.shape)
    proto.data.extend(mean.ravel().tolist())
    path = tmp_path / "mean.binaryproto"
    formats.write_binary(path, proto)
    np.testing.assert_array_equal(formats.read_mean_binaryproto(path), mean)


@pytest.mark.parametrize("text, line, field", [
    ('layer {\n  name: "ip"\n  inner_product_param { num_output: 4\n    num_output: 5 }\n}\n', 4, "num_output"),
    ('layer {\n  name: "ip"\n  inner_product_param { num_output: 4 }\n  inner_product_param { bias_term: false }\n}\n',
     4, "inner_product_param"),
    ('name: "a"\nname: "b"\n', 2, "name"),
])
def test_a_field_given_twice_is_refused_with_its_line(tmp_path, text, line, field):
    """Caffe's parser (protobuf's TextFormat::Parse) refuses a non-repeated field given twice;
    merging would let the last one win silently."""
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    with pytest.raises(CaffeError, match=rf'^{path}:{line}:\d+: .*multiple "{field}"'):
        formats.read_net_param(path)


def test_a_solver_field_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "n.prototxt"\nbase_lr: 0.01\nmax_iter: 10\nbase_lr: 0.1\n')
    with pytest.raises(CaffeError, match=rf'^{path}:4:\d+: .*multiple "base_lr"'):
        formats.read_solver_param(path)


def test_repeated_fields_may_repeat():
    net = formats.net_param_from_text('layer { name: "a" top: "x" top: "y" loss_weight: 1 loss_weight: 0 }')
    assert list(net.layer[0].top) == ["x", "y"] and list(net.layer[0].loss_weight) == [1, 0]
