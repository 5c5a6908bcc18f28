"""Data layer over LMDB: exact read-back of hand-built records (raw, float_data, encoded), cycling,
rand_skip, several readers, missing and corrupt sources, convert_imageset byte-identity, and
prefetching that overlaps a slow reader with compute (LevelDB: tests/test_leveldb.py)."""
import gc
import threading
import time

import cv2
import lmdb
import numpy as np
import pytest

import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.datum import array_to_datum, image_to_chw
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.layers.data import DatabaseSource
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.tools import convert_imageset


def write_lmdb(path, records):
    """An LMDB written directly with py-lmdb: (key, Datum or bytes) pairs."""
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in records:
            txn.put(key.encode(), value if isinstance(value, bytes) else value.SerializeToString())
    env.close()
    return str(path)


def data_net(source, batch, phase=caffe.TRAIN, labels=True, transform="", extra=""):
    tops = 'top: "data" top: "label"' if labels else 'top: "data"'
    text = (f'layer {{ name: "d" type: "Data" {tops} transform_param {{ {transform} }} '
            f'data_param {{ source: "{source}" backend: LMDB batch_size: {batch} {extra} }} }}')
    return caffe.Net(formats.net_param_from_text(text), phase)


def images(n, shape=(2, 3, 4), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n,) + shape, dtype=np.uint8)


@pytest.fixture
def raw_lmdb(tmp_path):
    arrays = images(5)
    # Keys written out of order: records come back in key order.
    path = write_lmdb(tmp_path / "raw", [(f"{i:03d}", array_to_datum(arrays[i], 10 + i)) for i in (3, 0, 4, 1, 2)])
    return path, arrays


def test_raw_records_read_back_exactly_and_cycle(raw_lmdb):
    path, arrays = raw_lmdb
    net = data_net(path, batch=3)
    assert net.blobs["data"].shape == (3, 2, 3, 4) and net.blobs["label"].shape == (3,)
    order = []
    for _ in range(4):  # 12 records from 5: cycles twice and a bit
        net.forward()
        for data, label in zip(net.blobs["data"].data, net.blobs["label"].data):
            index = int(label) - 10
            assert np.array_equal(data, arrays[index].astype(np.float32))
            order.append(index)
    assert order == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


def test_label_top_is_optional(raw_lmdb):
    path, arrays = raw_lmdb
    net = data_net(path, batch=2, labels=False)
    net.forward()
    assert list(net.blobs) == ["data"] and np.array_equal(net.blobs["data"].data[1], arrays[1])


def test_float_data_and_encoded_records(tmp_path):
    floats = np.random.default_rng(1).standard_normal((3, 1, 2, 2)).astype(np.float32)
    path = write_lmdb(tmp_path / "float", [(f"{i}", array_to_datum(floats[i], i)) for i in range(3)])
    net = data_net(path, batch=3, transform="scale: 2")
    net.forward()
    assert np.array_equal(net.blobs["data"].data, floats * 2)

    colour = images(2, (6, 5, 3))  # HxWxC, BGR as OpenCV keeps it
    records = []
    for i, img in enumerate(colour):
        datum = caffe_pb2.Datum(data=cv2.imencode(".png", img)[1].tobytes(), encoded=True, label=i)
        records.append((f"{i}", datum))
    net = data_net(write_lmdb(tmp_path / "png", records), batch=2, phase=caffe.TEST, transform="crop_size: 4")
    net.forward()
    for i, img in enumerate(colour):
        assert np.array_equal(net.blobs["data"].data[i], image_to_chw(img)[:, 1:5, 0:4])  # centre crop


def test_rand_skip_starts_within_the_first_records(raw_lmdb):
    path, _ = raw_lmdb
    starts = set()
    for seed in range(30):
        caffe.set_random_seed(seed)
        net = data_net(path, batch=1, extra="rand_skip: 3")
        net.forward()
        starts.add(int(net.blobs["label"].data[0]) - 10)
    assert starts == {0, 1, 2}


def test_train_and_test_nets_read_one_lmdb_at_once(raw_lmdb):
    path, arrays = raw_lmdb
    train, test = data_net(path, 2), data_net(path, 3, phase=caffe.TEST)
    seen_train, seen_test = [], []
    for _ in range(3):
        train.forward()
        test.forward()
        seen_train += list(train.blobs["label"].data - 10)
        seen_test += list(test.blobs["label"].data - 10)
    assert seen_train == [0, 1, 2, 3, 4, 0] and seen_test == [0, 1, 2, 3, 4, 0, 1, 2, 3]


def test_missing_sources_are_named(tmp_path):
    with pytest.raises(CaffeError, match=r"layer 'd' \(Data\): LMDB '.*nowhere' does not exist"):
        data_net(tmp_path / "nowhere", 1)


def test_corrupt_record_raises_in_the_main_thread_naming_its_key(tmp_path):
    arrays = images(4)
    records = [(f"{i:02d}", array_to_datum(arrays[i], i)) for i in range(4)]
    records[2] = ("02", b"\x0a\xff\xff")  # truncated protobuf
    net = data_net(write_lmdb(tmp_path / "bad", records), batch=2)
    net.forward()  # first batch is fine
    for _ in range(2):  # and the error stays, rather than a hang
        with pytest.raises(CaffeError, match=r"layer 'd' \(Data\): record '02' of LMDB '.*bad': not a valid Datum"):
            net.forward()

    wrong_size = caffe_pb2.Datum(channels=2, height=3, width=4, data=b"short", label=0)
    net = data_net(write_lmdb(tmp_path / "short", [("a", array_to_datum(arrays[0])), ("b", wrong_size)]), batch=2)
    with pytest.raises(CaffeError, match=r"record 'b' .*5 data bytes but its shape \(2, 3, 4\) needs 24"):
        net.forward()


def test_images_of_different_sizes_need_batch_size_one(tmp_path):
    records = [("a", array_to_datum(images(1, (1, 4, 4))[0])), ("b", array_to_datum(images(1, (1, 5, 3))[0]))]
    path = write_lmdb(tmp_path / "sizes", records)
    net = data_net(path, batch=1)
    net.forward()
    net.forward()
    assert net.blobs["data"].shape == (1, 1, 5, 3)
    with pytest.raises(CaffeError, match=r"record 'b'.*differs from \(1, 4, 4\)"):
        data_net(path, batch=2).forward()


@pytest.mark.parametrize("flags, expect_encoded", [([], False), (["--encoded"], True)])
def test_convert_imageset_records_are_byte_identical_to_expected_datums(tmp_path, flags, expect_encoded):
    colour = images(3, (5, 6, 3), seed=4)
    lines = []
    for i, img in enumerate(colour):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), img)
        lines.append(f"img{i}.png {i * 2}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out_lmdb"
    assert convert_imageset.main(flags + [f"{tmp_path}/", str(tmp_path / "list.txt"), str(out)]) == 0
    expected = []
    for i, img in enumerate(colour):
        if expect_encoded:
            datum = caffe_pb2.Datum(data=(tmp_path / f"img{i}.png").read_bytes(), label=i * 2, encoded=True)
        else:
            datum = caffe_pb2.Datum(channels=3, height=5, width=6, data=image_to_chw(img).tobytes(), label=i * 2)
        expected.append((f"{i:08d}_img{i}.png".encode(), datum.SerializeToString()))
    env = lmdb.open(str(out), readonly=True, lock=False)
    with env.begin() as txn:
        assert list(txn.cursor()) == expected
    env.close()
    net = data_net(out, batch=3)
    net.forward()
    assert np.array_equal(net.blobs["data"].data, np.stack([image_to_chw(img) for img in colour]))


def test_prefetch_overlaps_a_slow_reader_with_compute(raw_lmdb, monkeypatch):
    path, _ = raw_lmdb
    delay, batches = 0.004, 12  # 5 records x 4 ms: 20 ms to read a batch
    original = DatabaseSource.decode

    def slow_decode(value, transformer):
        time.sleep(delay)
        return original(value, transformer)

    monkeypatch.setattr(DatabaseSource, "decode", staticmethod(slow_decode))
    compute = 5 * delay

    def timed(with_compute):
        net = data_net(path, batch=5)
        start = time.perf_counter()
        for _ in range(batches):
            net.forward()
            if with_compute:
                time.sleep(compute)  # the solver's forward/backward, which releases the GIL as BLAS does
        return time.perf_counter() - start

    read_only = timed(False)
    overlapped = timed(True)
    serial = read_only + batches * compute
    ratio = overlapped / serial
    # Serial would be 1.0; perfect overlap of equal halves 0.5 (plus one batch of start-up).
    assert ratio < 0.75, f"prefetch overlap ratio {ratio:.2f} (read {read_only:.3f}s, overlapped {overlapped:.3f}s)"


def test_prefetch_thread_stops_when_the_net_goes(raw_lmdb):
    path, _ = raw_lmdb
    before = set(threading.enumerate())
    net = data_net(path, batch=2)
    net.forward()
    threads = [t for t in threading.enumerate() if t not in before]
    assert len(threads) == 1 and threads[0].is_alive() and "layer 'd' (Data) prefetch" in threads[0].name
    del net
    gc.collect()
    for t in threads:
        t.join(timeout=2.0)
        assert not t.is_alive()
