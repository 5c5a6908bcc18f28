"""Caffe's HDF5 formats: trained weights (`.caffemodel.h5`, Net::ToHDF5) and solver states
(`.solverstate.h5`, SGDSolver::SnapshotSolverStateToHDF5).

Weights: group "data" holds one group per layer (every layer, in net order), and in it dataset "k"
for param blob k, shaped as the blob, float32 (float64 for a double net). A param shared from another
layer has no "data" dataset. With write_diff a group "diff" mirrors "data" with the gradients.

Solver state: int datasets "iter" and "current_step" (shape (1,)), the string dataset "learned_net"
(the weights file), and group "history" holding datasets "0".."n-1" in the solver's history order;
ours adds the string "learned_net_sha256" (the weights file's fingerprint), which Caffe ignores.

Files are built in memory and written atomically (files.write_atomic): never a truncated file.
Reading takes only what the file holds itself (hard links; no external storage, external or soft
links, virtual datasets), and a declared shape is checked before any values are read, so that a
small file cannot make the reader decompress more than the net holds.
"""
import contextlib
import io
import os
from collections import OrderedDict

import numpy as np

from . import files, formats
from .errors import CaffeError
from .lazy_import import h5py
from .proto import caffe_pb2


def _write_file(path, fill) -> str:
    """Build an HDF5 file with `fill(h5py.File)` in memory, then write it atomically to `path`;
    returns its SHA-256 (hex)."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        fill(f)
    return files.write_atomic(path, buffer.getvalue())


@contextlib.contextmanager
def _damage_as_error(path):
    """What h5py raises on a damaged file (OSError, RuntimeError, KeyError, ValueError, ... from
    any access, libhdf5 checking its own structures) as one line naming the file."""
    try:
        yield
    except CaffeError:
        raise
    except Exception as exc:  # noqa: BLE001  (h5py's exception types vary with the damage)
        raise CaffeError(f"{path}: a damaged HDF5 file ({type(exc).__name__}: {exc})") from None


def _open(path):
    path = os.fspath(path)
    files.check_regular(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise CaffeError(f"{path}: not a readable HDF5 file ({exc})") from None


def _own_member(path, group, name):
    """group[name] where the file itself holds it: through a hard link (an external link would open
    another file, a soft link may lead to one) and, for a dataset, with its values stored in this
    file (not external storage, not a virtual dataset mapping other files)."""
    where = f"{group.name.rstrip('/')}/{name}"
    link = group.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        raise CaffeError(f"{path}: '{where}' is an external link (to '{link.filename}'); weights and solver "
                         f"states must hold their own data")
    if not isinstance(link, h5py.HardLink):
        kind = "a soft link" if isinstance(link, h5py.SoftLink) else "not a plain link"
        raise CaffeError(f"{path}: '{where}' is {kind}; weights and solver states must hold their own data")
    item = group[name]
    if isinstance(item, h5py.Dataset):
        if item.external:
            raise CaffeError(f"{path}: dataset '{where}' keeps its values in another file (external storage); "
                             f"weights files must hold their own values")
        if item.is_virtual:
            raise CaffeError(f"{path}: dataset '{where}' is a virtual dataset (its values map other files); "
                             f"weights files must hold their own values")
    return item


def member(path, group, name, kind):
    """group[name], which must be a `kind` (h5py.Group or h5py.Dataset) held by the file itself."""
    if name not in group:
        item = None
    else:
        item = _own_member(path, group, name)
    if not isinstance(item, kind):
        what = "group" if kind is h5py.Group else "dataset"
        raise CaffeError(f"{path}: no {what} '{group.name.rstrip('/')}/{name}'")
    return item


def values(path, dataset, shape=None) -> np.ndarray:
    """A dataset's values; like Caffe's hdf5_load_nd_dataset, only float and integer classes. With
    `shape`, a dataset of another shape is refused before anything is read."""
    with _damage_as_error(path):
        if dataset.dtype.kind not in "fiu":
            raise CaffeError(f"{path}: dataset '{dataset.name}' holds {dataset.dtype}, not numbers")
        if shape is not None and dataset.shape != tuple(shape):
            raise CaffeError(f"{path}: dataset '{dataset.name}' has shape {dataset.shape}, the net needs "
                             f"{tuple(shape)}")
        return np.asarray(dataset[()])


class StoredArray:
    """A dataset of a weights file whose shape is known (from the file's metadata) and whose
    values are read only when asked for."""

    def __init__(self, path, dataset):
        self.path, self.dataset, self.shape = path, dataset, dataset.shape

    def read(self) -> np.ndarray:
        return values(self.path, self.dataset)


# -- weights ---------------------------------------------------------------------------------
def write_weights(path, layers, write_diff=False) -> str:
    """`layers`: (name, blobs, owned) per layer in net order; owned[k] is False for a blob the
    layer shares from another one (Caffe writes its diff, not its data). Returns the file's SHA-256."""
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

    return _write_file(path, fill)


@contextlib.contextmanager
def weights_layers(path):
    """Layer name -> {dataset name: StoredArray} of the file's "data" group, for the block's
    duration; no values are read yet, so that the caller reads only what its net needs, after
    checking the declared shapes. A layer name with '/' (GoogLeNet's "inception_3a/1x1") is a nested
    group path there, so every group under "data" stands for the layer its path names."""
    with _open(path) as f:
        with _damage_as_error(path):
            data = member(path, f, "data", h5py.Group)
            layers = OrderedDict()
            seen = {data.id}
            pending = [(None, data)]  # (layer name, its group); the "data" group is no layer
            while pending:
                layer, group = pending.pop(0)
                for name in group:
                    item = _own_member(path, group, name)
                    if isinstance(item, h5py.Dataset):
                        if layer is None:
                            raise CaffeError(f"{path}: dataset '{item.name}' is not inside a layer group")
                        layers[layer][name] = StoredArray(path, item)
                    elif isinstance(item, h5py.Group):
                        if item.id in seen:
                            raise CaffeError(f"{path}: group '{group.name}/{name}' links back to a group met before")
                        seen.add(item.id)
                        nested = name if layer is None else f"{layer}/{name}"
                        layers[nested] = {}
                        pending.append((nested, item))
        yield layers


# -- solver state ----------------------------------------------------------------------------
def _write_string(group, name, text):
    """As H5LTmake_dataset_string: a scalar, null-terminated fixed-length string."""
    raw = text.encode()
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(raw) + 1)
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    dataset = h5py.h5d.create(group.id, name.encode(), string_type, h5py.h5s.create(h5py.h5s.SCALAR))
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(raw + b"\0", dtype=f"S{len(raw) + 1}"))


_MAX_STRING_BYTES = 1 << 16  # learned_net is a path


def _read_string(path, f, name) -> str:
    """A string dataset, fixed-length (as Caffe writes it) or variable-length (as h5py does)."""
    dataset = member(path, f, name, h5py.Dataset)
    if dataset.dtype.kind not in "SO" or dataset.size != 1 or dataset.dtype.itemsize > _MAX_STRING_BYTES:
        raise CaffeError(f"{path}: dataset '/{name}' is not a string")
    value = np.asarray(dataset[()]).ravel()[0]
    try:
        return (value.decode() if isinstance(value, bytes) else str(value)).rstrip("\0")
    except UnicodeDecodeError:
        raise CaffeError(f"{path}: dataset '/{name}' is not valid UTF-8 text") from None


def _read_int(path, f, name) -> int:
    dataset = member(path, f, name, h5py.Dataset)
    if dataset.size != 1:
        raise CaffeError(f"{path}: dataset '/{name}' has shape {dataset.shape}, not one integer")
    return int(values(path, dataset).ravel()[0])


def write_solver_state(path, state):
    """A caffe_pb2.SolverState in Caffe's HDF5 layout (history in its own precision)."""
    def fill(f):
        f.create_dataset("iter", data=np.array([state.iter], np.int32))
        _write_string(f, "learned_net", state.learned_net)
        f.create_dataset("current_step", data=np.array([state.current_step], np.int32))
        if state.learned_net_sha256:
            _write_string(f, "learned_net_sha256", state.learned_net_sha256)
        history = f.create_group("history")
        for k, proto in enumerate(state.history):
            dtype = np.float64 if len(proto.double_data) else np.float32
            history.create_dataset(str(k), data=formats.array_from_blob_proto(proto, dtype))

    _write_file(path, fill)


def read_solver_state(path, history_shapes, needed_by="the solver") -> caffe_pb2.SolverState:
    """The file as a caffe_pb2.SolverState, so that one restore serves both formats; float64
    history stays float64 (double_data), so nothing is rounded on the way. `history_shapes` are
    the shapes the solver's history needs (`needed_by` says whose, for messages): a file declaring
    others is refused before its history is read."""
    with _open(path) as f, _damage_as_error(path):
        state = caffe_pb2.SolverState(iter=_read_int(path, f, "iter"),
                                      current_step=_read_int(path, f, "current_step"))
        for name in ("learned_net", "learned_net_sha256"):
            if name in f:
                setattr(state, name, _read_string(path, f, name))
        history = member(path, f, "history", h5py.Group)
        if len(history) != len(history_shapes):
            raise CaffeError(f"{path}: holds {len(history)} history blobs but {needed_by} needs {len(history_shapes)} "
                             f"(another solver type or net?)")
        for k, shape in enumerate(history_shapes):
            array = values(path, member(path, history, str(k), h5py.Dataset), shape)
            formats.blob_to_proto(array, proto=state.history.add(), double=array.dtype != np.float32)
        return state
