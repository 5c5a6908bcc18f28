"""Caffe's HDF5 formats: trained weights (`.caffemodel.h5`, Net::ToHDF5) and solver states
(`.solverstate.h5`, SGDSolver::SnapshotSolverStateToHDF5).

Weights: group "data" holds one group per layer (every layer, in net order), and in it dataset "k"
for param blob k, shaped as the blob, float32 (float64 for a double net). A param shared from another
layer has no "data" dataset. With write_diff a group "diff" mirrors "data" with the gradients.

Solver state: int datasets "iter" and "current_step" (shape (1,)), the string dataset "learned_net"
(the weights file), and group "history" holding datasets "0".."n-1" in the solver's history order.

Files are built in memory and written atomically (formats.write_atomic): never a truncated file.
"""
import io
import os
from collections import OrderedDict

import h5py
import numpy as np

from . import formats
from .errors import CaffeError
from .proto import caffe_pb2


def _write_file(path, fill):
    """Build an HDF5 file with `fill(h5py.File)` in memory, then write it atomically to `path`."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        fill(f)
    formats.write_atomic(path, buffer.getvalue())


def _open(path):
    path = os.fspath(path)
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise CaffeError(f"{path}: no such file") from None
    except OSError as exc:
        raise CaffeError(f"{path}: not a readable HDF5 file ({exc})") from None


def _member(path, group, name, kind):
    """group[name], which must be a `kind` (h5py.Group or h5py.Dataset)."""
    item = group.get(name)
    if not isinstance(item, kind):
        what = "group" if kind is h5py.Group else "dataset"
        raise CaffeError(f"{path}: no {what} '{group.name.rstrip('/')}/{name}'")
    return item


def _numeric(path, dataset) -> np.ndarray:
    """A dataset's values; like Caffe's hdf5_load_nd_dataset, only float and integer classes."""
    if dataset.dtype.kind not in "fiu":
        raise CaffeError(f"{path}: dataset '{dataset.name}' holds {dataset.dtype}, not numbers")
    return np.asarray(dataset[()])


# -- weights ---------------------------------------------------------------------------------
def write_weights(path, layers, write_diff=False):
    """`layers`: (name, blobs, owned) per layer in net order; owned[k] is False for a blob the
    layer shares from another one (Caffe writes its diff, not its data)."""
    def fill(f):
        data = f.create_group("data")
        diff = f.create_group("diff") if write_diff else None
        for name, blobs, owned in layers:
            # require_group: a name with '/' may have created this group as another's parent
            layer_data = data.require_group(name)
            layer_diff = diff.require_group(name) if write_diff else None
            for k, blob in enumerate(blobs):
                if owned[k]:
                    layer_data.create_dataset(str(k), data=blob.data_readonly())
                if write_diff:
                    layer_diff.create_dataset(str(k), data=blob.diff_readonly())

    _write_file(path, fill)


def read_weights(path) -> "OrderedDict[str, dict]":
    """Layer name -> {dataset name: array} from the file's "data" group. A layer name with '/'
    (GoogLeNet's "inception_3a/1x1") is a nested group path there, so every group under "data"
    stands for the layer its path names."""
    with _open(path) as f:
        data = _member(path, f, "data", h5py.Group)
        stray = [item.name for item in data.values() if isinstance(item, h5py.Dataset)]
        if stray:
            raise CaffeError(f"{path}: dataset '{stray[0]}' is not inside a layer group")
        layers = OrderedDict()

        def visit(name, item):
            if isinstance(item, h5py.Group):
                layers[name] = {k: _numeric(path, ds) for k, ds in item.items() if isinstance(ds, h5py.Dataset)}

        data.visititems(visit)
        return layers


# -- solver state ----------------------------------------------------------------------------
def _write_string(group, name, text):
    """As H5LTmake_dataset_string: a scalar, null-terminated fixed-length string."""
    raw = text.encode()
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(raw) + 1)
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    dataset = h5py.h5d.create(group.id, name.encode(), string_type, h5py.h5s.create(h5py.h5s.SCALAR))
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw + b"\0", dtype=f"S{len(raw) + 1}"))


def _read_string(path, f, name) -> str:
    """A string dataset, fixed-length (as Caffe writes it) or variable-length (as h5py does)."""
    dataset = _member(path, f, name, h5py.Dataset)
    if dataset.dtype.kind not in "SO" or dataset.size != 1:
        raise CaffeError(f"{path}: dataset '/{name}' is not a string")
    value = np.asarray(dataset[()]).ravel()[0]
    return (value.decode() if isinstance(value, bytes) else str(value)).rstrip("\0")


def _read_int(path, f, name) -> int:
    values = _numeric(path, _member(path, f, name, h5py.Dataset)).ravel()
    if values.size != 1:
        raise CaffeError(f"{path}: dataset '/{name}' holds {values.size} values, not one integer")
    return int(values[0])


def write_solver_state(path, state):
    """A caffe_pb2.SolverState in Caffe's HDF5 layout (history in its own precision)."""
    def fill(f):
        f.create_dataset("iter", data=np.array([state.iter], np.int32))
        _write_string(f, "learned_net", state.learned_net)
        f.create_dataset("current_step", data=np.array([state.current_step], np.int32))
        history = f.create_group("history")
        for k, proto in enumerate(state.history):
            dtype = np.float64 if len(proto.double_data) else np.float32
            history.create_dataset(str(k), data=formats.array_from_blob_proto(proto, dtype))

    _write_file(path, fill)


def read_solver_state(path) -> caffe_pb2.SolverState:
    """The file as a caffe_pb2.SolverState, so that one restore serves both formats; float64
    history stays float64 (double_data), so nothing is rounded on the way."""
    with _open(path) as f:
        state = caffe_pb2.SolverState(iter=_read_int(path, f, "iter"),
                                      current_step=_read_int(path, f, "current_step"))
        if "learned_net" in f:
            state.learned_net = _read_string(path, f, "learned_net")
        history = _member(path, f, "history", h5py.Group)
        for k in range(len(history)):
            values = _numeric(path, _member(path, history, str(k), h5py.Dataset))
            formats.blob_to_proto(values, proto=state.history.add(), double=values.dtype != np.float32)
        return state
