"""LevelDB datasets, Caffe's default backend, through plyvel (the [leveldb] extra): the tools write
them with -backend leveldb, the Data layer and compute_image_mean read them as LMDBs are read; and
without plyvel they are refused with what to do."""
import sys

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.tools import compute_image_mean, convert_imageset

from test_tools import image_list  # noqa: F401  (the fixture: five small colour PNGs and their list)

plyvel = pytest.importorskip("plyvel", reason="plyvel is the [leveldb] extra: pip install -e '.[leveldb]'")


def data_net(source, batch, backend="LEVELDB"):
    text = (f'layer {{ name: "d" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{source}" backend: {backend} batch_size: {batch} }} }}')
    return caffe.Net(formats.net_param_from_text(text), caffe.TRAIN)


def test_a_leveldb_written_by_convert_imageset_reads_back(image_list, tmp_path):  # noqa: F811
    folder, colour = image_list
    args = [f"{folder}/img/", str(folder / "list.txt")]
    assert convert_imageset.main(["-backend", "leveldb", *args, str(tmp_path / "images_leveldb")]) == 0
    assert convert_imageset.main([*args, str(tmp_path / "images_lmdb")]) == 0
    handle = plyvel.DB(str(tmp_path / "images_leveldb"))  # a real LevelDB, with Caffe's keys
    assert [key for key, _ in handle] == [f"{i:08d}_{i}.png".encode() for i in range(5)]
    handle.close()
    from_leveldb, from_lmdb = data_net(tmp_path / "images_leveldb", 3), data_net(tmp_path / "images_lmdb", 3, "LMDB")
    seen = []
    for _ in range(3):  # 9 records of 5: the LevelDB cursor cycles as the LMDB one does
        from_leveldb.forward()
        from_lmdb.forward()
        np.testing.assert_array_equal(from_leveldb.blobs["data"].data, from_lmdb.blobs["data"].data)
        seen += [int(v) for v in from_leveldb.blobs["label"].data]
    assert seen == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    for data, label in zip(from_leveldb.blobs["data"].data, from_leveldb.blobs["label"].data):
        np.testing.assert_array_equal(data, colour[int(label)].transpose(2, 0, 1))  # PNG pixels, as written
    second = data_net(tmp_path / "images_leveldb", 2)  # a second reader shares the locked database
    second.forward()
    assert list(second.blobs["label"].data) == [0, 1]
    for name in ("images_leveldb", "images_lmdb"):
        assert compute_image_mean.main([str(tmp_path / name), str(tmp_path / f"{name}.binaryproto")]) == 0
    means = [formats.read_mean_binaryproto(tmp_path / f"{name}.binaryproto") for name in ("images_leveldb", "images_lmdb")]
    np.testing.assert_array_equal(*means)


def test_without_plyvel_a_leveldb_is_refused_with_advice(image_list, tmp_path, monkeypatch):  # noqa: F811
    folder, _ = image_list
    args = [f"{folder}/img/", str(folder / "list.txt"), str(tmp_path / "db")]
    assert convert_imageset.main(["-backend", "leveldb", *args]) == 0
    monkeypatch.setitem(sys.modules, "plyvel", None)  # `import plyvel` fails, as where it is not installed
    with pytest.raises(CaffeError, match=r"layer 'd' \(Data\).*LevelDB needs the plyvel binding: "
                                         r"pip install 'nvcaffe_py\[leveldb\]'.*as an LMDB"):
        data_net(tmp_path / "db", 1)
