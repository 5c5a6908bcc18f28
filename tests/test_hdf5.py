"""HDF5Data (files in order, batches across files, cycling, shuffle) and HDF5Output (appends)."""
import h5py
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.errors import CaffeError


@pytest.fixture
def h5_files(tmp_path):
    """Two files of 3 and 4 rows: data (N, 2, 3) float64, label (N,) int; row r has label r."""
    rows = np.arange(7)
    data = np.random.default_rng(0).standard_normal((7, 2, 3))
    for name, part in (("a.h5", slice(0, 3)), ("b.h5", slice(3, 7))):
        with h5py.File(tmp_path / name, "w") as f:
            f["data"] = data[part]
            f["label"] = rows[part]
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.h5'}\n{tmp_path / 'b.h5'}\n")
    return tmp_path, data


def hdf5_net(root, batch, shuffle=False, tops='top: "data" top: "label"', dtype=np.float32):
    text = (f'layer {{ name: "h5" type: "HDF5Data" {tops} hdf5_data_param {{ source: "{root}/list.txt" '
            f'batch_size: {batch} shuffle: {str(shuffle).lower()} }} }}')
    return caffe.Net(formats.net_param_from_text(text), caffe.TRAIN, dtype=dtype)


def read_labels(net, batches):
    out = []
    for _ in range(batches):
        net.forward()
        out += [int(v) for v in net.blobs["label"].data]
    return out


def test_rows_in_order_across_files_and_cycling(h5_files):
    root, data = h5_files
    net = hdf5_net(root, 5, dtype=np.float64)
    assert net.blobs["data"].shape == (5, 2, 3) and net.blobs["label"].shape == (5,)
    assert read_labels(net, 3) == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0]
    assert np.array_equal(net.blobs["data"].data, data[[3, 4, 5, 6, 0]])


def test_shuffle_permutes_files_and_rows_every_pass(h5_files):
    root, _ = h5_files
    net = hdf5_net(root, 7, shuffle=True)
    passes = [read_labels(net, 1) for _ in range(6)]
    assert all(sorted(p) == list(range(7)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    # Rows of one file stay together within a pass: the first three or the last three are file a.
    assert all(set(p[:3]) == {0, 1, 2} or set(p[4:]) == {0, 1, 2} for p in passes)


def test_a_single_top_reads_one_dataset(h5_files):
    root, data = h5_files
    net = hdf5_net(root, 2, tops='top: "data"')
    net.forward()
    assert np.allclose(net.blobs["data"].data, data[:2])


def test_missing_dataset_and_ragged_rows_are_errors(h5_files):
    root, _ = h5_files
    with pytest.raises(CaffeError, match=r"layer 'h5' \(HDF5Data\): HDF5 file '.*a.h5' has no dataset 'extra'"):
        hdf5_net(root, 2, tops='top: "data" top: "extra"')
    with h5py.File(root / "a.h5", "a") as f:
        del f["label"]
        f["label"] = np.arange(2)
    with pytest.raises(CaffeError, match=r"dataset 'label' has shape \(2,\); every dataset needs the same"):
        hdf5_net(root, 2)
    (root / "list.txt").write_text("")
    with pytest.raises(CaffeError, match="must list at least one HDF5 file"):
        hdf5_net(root, 2)


def test_hdf5_output_appends_every_forward(tmp_path):
    out = tmp_path / "out.h5"
    text = f'''
    layer {{ name: "in" type: "Input" top: "x" top: "y"
             input_param {{ shape {{ dim: 2 dim: 3 }} shape {{ dim: 2 }} }} }}
    layer {{ name: "save" type: "HDF5Output" bottom: "x" bottom: "y" hdf5_output_param {{ file_name: "{out}" }} }}
    '''
    net = caffe.Net(formats.net_param_from_text(text), caffe.TEST)
    batches = [np.random.default_rng(i).standard_normal((2, 3)).astype(np.float32) for i in range(2)]
    for i, x in enumerate(batches):
        net.forward(x=x, y=np.array([i, i + 10], np.float32))
        with h5py.File(out, "r") as f:  # complete and readable after every forward
            assert f["data"].shape == (2 * (i + 1), 3)
    with h5py.File(out, "r") as f:
        assert np.array_equal(f["data"][:], np.concatenate(batches))
        assert np.array_equal(f["label"][:], [0, 10, 1, 11])


def test_hdf5_output_needs_matching_rows(tmp_path):
    text = f'''
    layer {{ name: "in" type: "Input" top: "x" top: "y" input_param {{ shape {{ dim: 2 dim: 3 }} shape {{ dim: 3 }} }} }}
    layer {{ name: "save" type: "HDF5Output" bottom: "x" bottom: "y"
             hdf5_output_param {{ file_name: "{tmp_path / 'o.h5'}" }} }}
    '''
    net = caffe.Net(formats.net_param_from_text(text), caffe.TEST)
    with pytest.raises(CaffeError, match=r"layer 'save' \(HDF5Output\): data has 2 rows but label has 3"):
        net.forward()
