"""Caffe's file formats: prototxt (text) and binary NetParameter / SolverParameter /
SolverState / BlobProto files, with old formats upgraded on load and atomic writes.

Parse errors name the place: `path:line:col: message`.
"""
import math
import os

import numpy as np
from google.protobuf import message as _pb_message
from google.protobuf import text_format

from . import files, unsupported, upgrade
from .files import write_atomic
from .blob import Blob
from .errors import CaffeError, InvalidValueError
from .proto import caffe_pb2


# -- text ------------------------------------------------------------------------------------
def parse_text(text: str, message, source: str = "<string>"):
    """Parse into `message`; as Caffe's parser (TextFormat::Parse), a non-repeated field given twice
    is an error rather than the last one winning."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        findings = unsupported.scan(text) if isinstance(message, caffe_pb2.NetParameter) else []
        if findings:  # unknown fields or values, probably from a fork: list them all at once
            raise unsupported.report(findings, source) from None
        line, col = exc.GetLine(), exc.GetColumn()
        detail = str(exc)
        # protobuf prefixes the position itself ("3:7 : ..."); keep only the message.
        if line is not None and detail.startswith(f"{line}:"):
            detail = detail.split(" : ", 1)[-1]
        where = f"{source}:{line}:{col}" if line is not None else source
        raise CaffeError(f"{where}: {detail}") from None
    return message


def _read_text_file(path: str) -> str:
    try:
        return files.read_regular(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaffeError(f"{path}: cannot read: {exc}") from None


def _upgraded_net(net_param, source):
    if upgrade.net_needs_upgrade(net_param):
        return upgrade.upgrade_net(net_param, source)
    return net_param


def read_text(path, message):
    """`message` filled from the prototxt at `path`, as written (no upgrade)."""
    path = os.fspath(path)
    return parse_text(_read_text_file(path), message, path)


def read_net_param(path_or_param, source=None):
    """A NetParameter from a prototxt path (or an already built NetParameter), upgraded."""
    if isinstance(path_or_param, caffe_pb2.NetParameter):
        return _upgraded_net(path_or_param, source or "<net>")
    path = os.fspath(path_or_param)
    return _upgraded_net(read_text(path, caffe_pb2.NetParameter()), path)


def net_param_from_text(text: str, source="<string>"):
    return _upgraded_net(parse_text(text, caffe_pb2.NetParameter(), source), source)


def read_solver_param(path):
    path = os.fspath(path)
    param = read_text(path, caffe_pb2.SolverParameter())
    if upgrade.solver_needs_upgrade(param):
        param = upgrade.upgrade_solver(param, path)
    return param


# -- binary ----------------------------------------------------------------------------------
def read_binary(path, message):
    path = os.fspath(path)
    data = files.read_regular(path)
    try:
        message.ParseFromString(data)
    except (_pb_message.DecodeError, UnicodeDecodeError) as exc:  # the pure-Python protobuf checks UTF-8
        raise CaffeError(f"{path}: not a valid binary {type(message).__name__} ({exc})") from None
    _check_text(message, path, type(message).__name__)
    return message


def _check_text(message, path, where):
    """Refuse string fields that are not UTF-8 (protobuf's C parser hands them over as bytes,
    which no code expecting text handles)."""
    for field, value in message.ListFields():
        single = isinstance(value, (str, bytes, _pb_message.Message))  # else a repeated field's list
        if field.type == field.TYPE_STRING:
            if any(isinstance(text, bytes) for text in ([value] if single else value)):
                raise CaffeError(f"{path}: {where}.{field.name} is not valid UTF-8 text")
        elif field.type == field.TYPE_MESSAGE:
            for k, item in enumerate([value] if single else value):
                _check_text(item, path, f"{where}.{field.name}" + ("" if single else f"[{k}]"))


def read_caffemodel(path):
    """Trained weights as a NetParameter (V0/V1 layers upgraded)."""
    return _upgraded_net(read_binary(path, caffe_pb2.NetParameter()), os.fspath(path))


def write_binary(path, message) -> str:
    """Write `message` atomically; returns the file's SHA-256 (hex)."""
    return write_atomic(path, message.SerializeToString())


def write_text(path, message):
    write_atomic(path, text_format.MessageToString(message).encode())


# -- BlobProto <-> arrays --------------------------------------------------------------------
_LEGACY_DIMS = ("num", "channels", "height", "width")


def _is_legacy(proto) -> bool:
    return any(proto.HasField(f) for f in _LEGACY_DIMS)


def blob_proto_shape(proto) -> tuple:
    """Caffe's Blob::FromProto: the legacy 4-d fields when any is set, else `shape` (whose absence,
    as Caffe writes a 0-axis blob, means a scalar)."""
    if _is_legacy(proto):
        return (proto.num, proto.channels, proto.height, proto.width)
    return tuple(int(d) for d in proto.shape.dim)


def array_from_blob_proto(proto, dtype=np.float32, diff=False, where="blob proto") -> np.ndarray:
    """The proto's values in its shape; `where` names the proto in errors (file, layer, index)."""
    shape = blob_proto_shape(proto)
    if any(d < 0 for d in shape):
        raise CaffeError(f"{where} has shape {shape}, with a negative dimension")
    values = (proto.double_diff or proto.diff) if diff else (proto.double_data or proto.data)
    expected = math.prod(shape)
    if len(values) != expected:
        raise InvalidValueError(f"{where} holds {len(values)} values but its shape {shape} needs {expected}")
    return np.asarray(values, dtype=dtype).reshape(shape)


def blob_from_proto(proto, dtype=np.float32, where="blob proto"):
    blob = Blob(blob_proto_shape(proto), dtype=dtype)
    blob.data[...] = array_from_blob_proto(proto, dtype, where=where)
    if len(proto.diff) or len(proto.double_diff):
        blob.diff[...] = array_from_blob_proto(proto, dtype, diff=True, where=where)
    return blob


def blob_to_proto(data: np.ndarray, diff: np.ndarray | None = None, proto=None, double=False):
    proto = caffe_pb2.BlobProto() if proto is None else proto
    proto.Clear()
    proto.shape.dim.extend(int(d) for d in data.shape)
    if double:
        proto.double_data.extend(np.asarray(data, np.float64).ravel().tolist())
        if diff is not None:
            proto.double_diff.extend(np.asarray(diff, np.float64).ravel().tolist())
    else:
        proto.data.extend(np.asarray(data, np.float32).ravel().tolist())
        if diff is not None:
            proto.diff.extend(np.asarray(diff, np.float32).ravel().tolist())
    return proto


def proto_shape_matches(proto, shape: tuple) -> bool:
    """Caffe's Blob::ShapeEquals: legacy 4-d protos compare against the shape padded to 4 axes."""
    if not _is_legacy(proto):
        return tuple(proto.shape.dim) == tuple(shape)
    if len(shape) > 4:
        return False
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return padded == (proto.num, proto.channels, proto.height, proto.width)


def read_mean_binaryproto(path) -> np.ndarray:
    return array_from_blob_proto(read_binary(path, caffe_pb2.BlobProto()), where=os.fspath(path))
