"""Each data layer deals its items among the ranks as Caffe's DataLayer::Skip: rank r of N gets
the items whose running offset % N == r, so rank r's batch j, item i is item (j*b + i)*N + r of the
single process's stream (WindowData deals whole batches: rank r's batch j is batch j*N + r).
The ranks are set as a data-parallel run sets them (nvcaffe_py.mode), one after the other here."""
import contextlib

import h5py
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats, mode, rng
from nvcaffe_py.errors import CaffeError

from solver_helpers import write_lmdb
from test_image_data import image_dir  # noqa: F401  (the fixture)
from test_window_data import forward, window_layer, write_images

BATCH, BATCHES = 3, 4


@contextlib.contextmanager
def as_rank(rank, ranks):
    mode.set_solver_count(ranks)
    mode.set_solver_rank(rank)
    rng.set_random_seed(99)  # every rank seeds alike before building (data_parallel.py)
    try:
        yield
    finally:
        mode.set_solver_count(1)
        mode.set_solver_rank(0)


def stream(make_net, rank, ranks, batches, top="label"):
    """The `top` values of `batches` forward passes of the net built as rank `rank` of `ranks`."""
    with as_rank(rank, ranks):
        net = make_net()
        values = []
        for _ in range(batches):
            net.forward()
            values.append(net.blobs[top].data.copy())
        return values


def check_dealt_by_item(make_net):
    for ranks in (2, 3):
        single = np.concatenate(stream(make_net, 0, 1, BATCHES * ranks))
        for rank in range(ranks):
            dealt = np.concatenate(stream(make_net, rank, ranks, BATCHES))
            np.testing.assert_array_equal(dealt, single[rank::ranks], err_msg=f"rank {rank} of {ranks}")


def data_net(path, phase=caffe.TRAIN):
    text = (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{path}" '
            f'batch_size: {BATCH} backend: LMDB }} }}')
    return caffe.Net(formats.net_param_from_text(text), phase)


def test_data_deals_records_and_keeps_dealing_across_the_end(tmp_path):
    records = 10  # not a multiple of 2 or 3: after the end, the ranks' shares shift as in Caffe
    write_lmdb(tmp_path / "db", np.zeros((records, 1, 2, 2)), np.arange(records))
    check_dealt_by_item(lambda: data_net(tmp_path / "db"))
    assert np.concatenate(stream(lambda: data_net(tmp_path / "db"), 0, 2, 1)).tolist() == [0, 2, 4]


def test_test_phase_nets_read_everything(tmp_path):
    write_lmdb(tmp_path / "db", np.zeros((10, 1, 2, 2)), np.arange(10))
    seen = stream(lambda: data_net(tmp_path / "db", caffe.TEST), 1, 2, 2)
    assert np.concatenate(seen).tolist() == [0, 1, 2, 3, 4, 5]


def test_image_data_deals_its_shuffled_list(image_dir):  # noqa: F811
    root, _ = image_dir
    text = (f'layer {{ name: "img" type: "ImageData" top: "data" top: "label" image_data_param {{ '
            f'source: "{root}/list.txt" root_folder: "{root}/imgs/" batch_size: {BATCH} shuffle: true '
            f'new_height: 4 new_width: 4 }} }}')
    check_dealt_by_item(lambda: caffe.Net(formats.net_param_from_text(text), caffe.TRAIN))


def test_hdf5_data_deals_rows_across_files(tmp_path):
    for name, rows in (("a.h5", range(0, 5)), ("b.h5", range(5, 12))):
        with h5py.File(tmp_path / name, "w") as f:
            f["data"] = np.zeros((len(rows), 2))
            f["label"] = np.array(rows, np.float64)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.h5'}\n{tmp_path / 'b.h5'}\n")
    text = (f'layer {{ name: "h5" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ '
            f'source: "{tmp_path}/list.txt" batch_size: {BATCH} shuffle: true }} }}')
    check_dealt_by_item(lambda: caffe.Net(formats.net_param_from_text(text), caffe.TRAIN))


def test_window_data_deals_whole_batches(tmp_path):
    write_images(tmp_path)

    def batches(rank, ranks, count):
        with as_rank(rank, ranks):
            layer, _, tops = window_layer(tmp_path, batch_size=4, transform="crop_size: 8 mirror: true")
            try:
                return [forward(layer, tops)[0] for _ in range(count)]
            finally:
                layer.close()

    single = batches(0, 1, 6)
    for rank in range(2):
        for j, batch in enumerate(batches(rank, 2, 3)):
            np.testing.assert_array_equal(batch, single[j * 2 + rank])


def test_memory_data_layers_see_the_rank():
    with as_rank(1, 2):
        assert (caffe.solver_rank(), caffe.solver_count()) == (1, 2)


def test_more_ranks_than_items_is_an_error(tmp_path):
    write_lmdb(tmp_path / "db", np.zeros((2, 1, 2, 2)), np.arange(2))
    with as_rank(0, 3), pytest.raises(CaffeError, match="holds 2 item.*fewer than the 3 ranks"):
        data_net(tmp_path / "db")
