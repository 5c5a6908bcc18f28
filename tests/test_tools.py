"""The dataset tools: gflags spellings, convert_imageset, compute_image_mean, convert_mnist_data,
convert_cifar_data and make_digits; atomic outputs, progress and bad records by line."""
import gzip
import io
import os
import re
import sys

import cv2
import lmdb
import numpy as np
import pytest

from nvcaffe_py import cli, formats
from nvcaffe_py.data_transformer import DataTransformer
from nvcaffe_py.datum import datum_to_array, image_to_chw, parse_datum
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.tools import (compute_image_mean, convert_cifar_data, convert_imageset, convert_mnist_data,
                              make_digits)
from nvcaffe_py.tools.gflags import GflagsParser, normalize


def records(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = [(k.decode(), parse_datum(v)) for k, v in txn.cursor()]
    env.close()
    return items


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp") or name.endswith(".old")]


# -- flags -------------------------------------------------------------------------------------
def test_gflags_spellings():
    bools = {"gray", "shuffle"}
    assert normalize(["-resize_height", "5", "--resize_width=7", "-encode_type=png", "-gray", "--noshuffle",
                      "x", "-1", "-h"], bools) == [
        "--resize_height", "5", "--resize_width=7", "--encode_type=png", "--gray=true", "--shuffle=false",
        "x", "-1", "-h"]
    parser = GflagsParser("t", "test")
    parser.add_bool_flag("gray")
    parser.add_flag("size", type=int, default=0)
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args(["-gray", "a", "-size", "3", "b"])  # a boolean never eats the next argument
    assert args.gray is True and args.size == 3 and args.rest == ["a", "b"]
    assert parser.parse_args(["--gray=false"]).gray is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--gray=maybe"])


# -- convert_imageset --------------------------------------------------------------------------
@pytest.fixture
def image_list(tmp_path):
    rng = np.random.default_rng(0)
    colour = [rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8) for _ in range(5)]
    (tmp_path / "img").mkdir()
    for i, img in enumerate(colour):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), img)
    (tmp_path / "list.txt").write_text("".join(f"{i}.png {i}\n" for i in range(5)))
    return tmp_path, colour


def run_convert(tmp_path, *flags, name="db"):
    return convert_imageset.main(list(flags) + [f"{tmp_path}/img/", str(tmp_path / "list.txt"), str(tmp_path / name)])


def test_convert_imageset_resize_gray_and_progress(image_list, capsys):
    tmp_path, colour = image_list
    assert run_convert(tmp_path, "-gray", "-resize_height", "3", "--resize_width=4") == 0
    got = records(tmp_path / "db")
    assert [k for k, _ in got] == [f"{i:08d}_{i}.png" for i in range(5)]
    for i, (_, datum) in enumerate(got):
        expected = cv2.resize(cv2.imread(str(tmp_path / "img" / f"{i}.png"), cv2.IMREAD_GRAYSCALE), (4, 3))
        assert datum.label == i and np.array_equal(datum_to_array(datum), expected[np.newaxis])
    err = capsys.readouterr().err
    assert "A total of 5 images." in err and "Processed 5/5 files" in err and "Wrote 5 records" in err


def test_convert_imageset_draws_a_status_line_on_a_terminal(image_list, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run_convert(image_list[0]) == 0
    assert re.search(r"\r5/5 files \([\d.e+]+ files/s, ETA 0s\)", terminal.getvalue()), terminal.getvalue()


def test_a_root_folder_without_its_slash_is_named(image_list, capsys):
    tmp_path, _ = image_list
    assert convert_imageset.main([f"{tmp_path}/img", str(tmp_path / "list.txt"), str(tmp_path / "db")]) == 1
    err = capsys.readouterr().err
    assert f"list.txt:1: '{tmp_path}/img0.png' does not exist, but '{tmp_path}/img/0.png' does" in err
    assert f"give it a trailing '/' ('{tmp_path}/img/')" in err and not (tmp_path / "db").exists()


def test_convert_imageset_shuffle_and_encode_type(image_list):
    tmp_path, colour = image_list
    assert run_convert(tmp_path, "--shuffle", "--encode_type", "jpg") == 0
    got = records(tmp_path / "db")
    assert sorted(d.label for _, d in got) == list(range(5))
    for index, (key, datum) in enumerate(got):
        assert key == f"{index:08d}_{datum.label}.png" and datum.encoded
        assert datum.data[:2] == b"\xff\xd8"  # re-encoded as JPEG
        assert datum_to_array(datum).shape == (3, 6, 8)


def test_unreadable_images_are_reported_by_line_and_left_out(image_list, capsys):
    tmp_path, _ = image_list
    (tmp_path / "img" / "2.png").write_bytes(b"not a png")
    assert run_convert(tmp_path) == 0
    assert [d.label for _, d in records(tmp_path / "db")] == [0, 1, 3, 4]
    err = capsys.readouterr().err
    assert "list.txt:3: skipped: could not open or decode image file" in err
    assert "Skipped 1 unreadable images (lines 3 of" in err


def test_check_size_and_bad_lines_stop_without_leaving_a_database(image_list, capsys):
    tmp_path, _ = image_list
    cv2.imwrite(str(tmp_path / "img" / "3.png"), np.zeros((5, 5, 3), np.uint8))
    assert run_convert(tmp_path, "--check_size") == 1
    assert "list.txt:4: image '3.png' is (3, 5, 5) (channels, height, width) but the first image is (3, 6, 8)" \
        in capsys.readouterr().err
    assert not (tmp_path / "db").exists() and not leftovers(tmp_path)
    (tmp_path / "list.txt").write_text("0.png 0\n1.png one\n")
    assert run_convert(tmp_path) == 1
    assert "list.txt:2: expected 'path label'" in capsys.readouterr().err


def test_existing_output_and_unknown_backends_are_refused(image_list, capsys):
    tmp_path, _ = image_list
    assert run_convert(tmp_path) == 0
    assert run_convert(tmp_path) == 1
    assert "already exists" in capsys.readouterr().err
    assert run_convert(tmp_path, "-backend", "rocksdb", name="other") == 1
    assert "-backend rocksdb is not a database type; give lmdb (the default) or leveldb" in capsys.readouterr().err


def test_the_nvcaffe_cli_dispatches_to_the_tools(image_list):
    tmp_path, _ = image_list
    argv = ["convert_imageset", "-encoded", f"{tmp_path}/img/", str(tmp_path / "list.txt"), str(tmp_path / "db")]
    assert cli.main(argv) == 0
    assert len(records(tmp_path / "db")) == 5


# -- compute_image_mean ------------------------------------------------------------------------
def test_compute_image_mean_writes_a_legacy_binaryproto(image_list, capsys):
    tmp_path, colour = image_list
    assert run_convert(tmp_path, "--encoded") == 0
    out = tmp_path / "mean.binaryproto"
    assert compute_image_mean.main([str(tmp_path / "db"), str(out)]) == 0
    proto = formats.read_binary(out, caffe_pb2.BlobProto())
    assert (proto.num, proto.channels, proto.height, proto.width) == (1, 3, 6, 8)
    expected = np.mean([image_to_chw(img).astype(np.float64) for img in colour], axis=0)
    assert np.allclose(formats.read_mean_binaryproto(out)[0], expected, atol=1e-4)
    err = capsys.readouterr().err
    for c in range(3):
        assert f"mean_value channel [{c}]: {expected[c].mean():.6g}" in err
    param = caffe_pb2.TransformationParameter(mean_file=str(out))
    transformer = DataTransformer(param, caffe_pb2.TEST)  # the mean is usable as a mean_file
    result = np.empty((3, 6, 8), np.float32)
    transformer.transform(image_to_chw(colour[0]), result)
    assert np.allclose(result, image_to_chw(colour[0]) - expected, atol=1e-4)


def test_compute_image_mean_names_a_corrupt_record(tmp_path, capsys):
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"a", caffe_pb2.Datum(channels=1, height=1, width=2, data=b"ab").SerializeToString())
        txn.put(b"b", caffe_pb2.Datum(channels=1, height=1, width=2, data=b"abc").SerializeToString())
    env.close()
    assert compute_image_mean.main([str(tmp_path / "db")]) == 1
    assert "record 'b': Datum holds 3 data bytes" in capsys.readouterr().err


# -- convert_mnist_data ------------------------------------------------------------------------
def write_idx(path, array, magic, compress):
    header = np.array([magic, *array.shape], ">u4").tobytes()
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.mark.parametrize("compress", [False, True])
def test_convert_mnist_data_with_a_slice(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, size=(6, 4, 5), dtype=np.uint8)
    labels = np.arange(6) % 10
    write_idx(tmp_path / "img", images, 2051, compress)
    write_idx(tmp_path / "lab", labels, 2049, compress)
    args = [str(tmp_path / "img"), str(tmp_path / "lab")]
    assert convert_mnist_data.main(args + [str(tmp_path / "all")]) == 0
    got = records(tmp_path / "all")
    assert [k for k, _ in got] == [f"{i:08d}" for i in range(6)]
    for i, (_, datum) in enumerate(got):
        assert (datum.channels, datum.height, datum.width, datum.label) == (1, 4, 5, labels[i])
        assert datum.data == images[i].tobytes()
    assert convert_mnist_data.main(["--start", "2", "--count=3"] + args + [str(tmp_path / "part")]) == 0
    assert [k for k, _ in records(tmp_path / "part")] == ["00000002", "00000003", "00000004"]


def test_convert_mnist_data_refuses_bad_files(tmp_path, capsys):
    images = np.zeros((3, 2, 2), np.uint8)
    write_idx(tmp_path / "img", images, 2051, False)
    write_idx(tmp_path / "lab", np.zeros(3), 2051, False)  # wrong magic
    assert convert_mnist_data.main([str(tmp_path / "img"), str(tmp_path / "lab"), str(tmp_path / "db")]) == 1
    assert "has magic number 2051, not 2049" in capsys.readouterr().err
    write_idx(tmp_path / "lab", np.zeros(3), 2049, False)
    (tmp_path / "img").write_bytes((tmp_path / "img").read_bytes()[:-1])
    assert convert_mnist_data.main([str(tmp_path / "img"), str(tmp_path / "lab"), str(tmp_path / "db")]) == 1
    assert "promises 3 items" in capsys.readouterr().err
    assert not (tmp_path / "db").exists() and not leftovers(tmp_path)


# -- convert_cifar_data ------------------------------------------------------------------------
def test_convert_cifar_data_train_and_test(tmp_path, capsys):
    rng = np.random.default_rng(0)
    batches = {}
    for name in convert_cifar_data.TRAIN_FILES + convert_cifar_data.TEST_FILES:
        rows = rng.integers(0, 256, size=(2, 3073), dtype=np.uint8)
        rows[:, 0] %= 10
        (tmp_path / name).write_bytes(rows.tobytes())
        batches[name] = rows
    assert convert_cifar_data.main([str(tmp_path), str(tmp_path / "out")]) == 0
    train = records(tmp_path / "out" / "cifar10_train_lmdb")
    assert [k for k, _ in train] == [f"{i:05d}" for i in range(10)]
    first = batches["data_batch_1.bin"][1]
    assert train[1][1].label == first[0] and train[1][1].data == first[1:].tobytes()
    assert (train[1][1].channels, train[1][1].height, train[1][1].width) == (3, 32, 32)
    test = records(tmp_path / "out" / "cifar10_test_lmdb")
    assert len(test) == 2 and test[0][1].data == batches["test_batch.bin"][0][1:].tobytes()
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 3074)
    assert convert_cifar_data.main([str(tmp_path), str(tmp_path / "out2")]) == 1
    assert "not a whole number of 3073-byte CIFAR-10 records (record 1 is incomplete)" in capsys.readouterr().err
    os.remove(tmp_path / "data_batch_3.bin")
    assert convert_cifar_data.main([str(tmp_path), str(tmp_path / "out3")]) == 1
    assert "lacks data_batch_3.bin" in capsys.readouterr().err


# -- make_digits -------------------------------------------------------------------------------
def test_make_digits_is_balanced_repeatable_and_replaces(tmp_path):
    argv = ["--output", str(tmp_path / "d"), "--num_train", "200", "--num_test", "50", "-seed", "3"]
    assert make_digits.main(argv) == 0
    train = records(tmp_path / "d" / "train_lmdb")
    test = records(tmp_path / "d" / "test_lmdb")
    assert len(train) == 200 and len(test) == 50
    assert np.bincount([d.label for _, d in train]).tolist() == [20] * 10
    images = np.stack([datum_to_array(d) for _, d in train])
    assert images.shape == (200, 1, 28, 28) and images.max() > 100
    assert (tmp_path / "d" / "preview.png").exists()
    first = (tmp_path / "d" / "train_lmdb" / "data.mdb").read_bytes()
    assert make_digits.main(argv) == 0  # same seed, same dataset; the old one is replaced
    assert records(tmp_path / "d" / "train_lmdb") == train
    assert not leftovers(tmp_path / "d") and len(first) > 0
