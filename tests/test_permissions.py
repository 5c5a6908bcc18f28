"""Files and databases we write get the permissions of the user's umask (0644 and 0755 under 022),
as Caffe's do, though they are built under private temporary names first."""
import os
import stat

import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats, permissions
from nvcaffe_py.db import LMDBWriter
from nvcaffe_py.proto import caffe_pb2


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def user_umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_and_snapshots_follow_the_umask(tmp_path, user_umask):
    assert permissions.umask() == user_umask
    formats.write_binary(tmp_path / "blob.binaryproto", caffe_pb2.BlobProto(data=[1.0]))
    assert mode(tmp_path / "blob.binaryproto") == 0o666 & ~user_umask
    net = caffe.Net(formats.net_param_from_text(
        'layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 } } }'), caffe.TEST)
    net.save(str(tmp_path / "w.caffemodel"))
    net.save_hdf5(str(tmp_path / "w.caffemodel.h5"))
    for name in ("w.caffemodel", "w.caffemodel.h5"):
        assert mode(tmp_path / name) == 0o666 & ~user_umask


def test_lmdbs_follow_the_umask(tmp_path, user_umask):
    with LMDBWriter(tmp_path / "db") as db:
        db.put("k", np.zeros(1).tobytes())
    assert mode(tmp_path / "db") == 0o777 & ~user_umask
    assert mode(tmp_path / "db" / "data.mdb") == 0o664 & ~user_umask
