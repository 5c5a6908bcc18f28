"""Damaged LMDBs: a truncated data.mdb or a corrupted B-tree page is a one-line error naming the
database (and, where the damage lies among the records, the record near it), never a SIGBUS or
LMDB's assertion abort, whichever command reads it. The damaged files run in child processes, so
that a crash shows as a signal rather than killing the test run."""
import os
import shutil
import struct
import subprocess
import sys

import pytest

from nvcaffe_py import db
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.net import TEST, Net

from solver_helpers import classifier_text, random_digits, write_lmdb

RECORDS = 200  # 800-byte records: a root branch page over about 50 leaf pages
PAGE = 4096


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    """An intact LMDB with a net, solver and weights beside it that read it."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "train_lmdb"
    write_lmdb(path, *random_digits(RECORDS))
    (tmp_path / "net.prototxt").write_text(classifier_text(path.name, 4, num_output=10))
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt" base_lr: 0.01 lr_policy: "fixed" '
                                              'max_iter: 100 display: 0 snapshot_after_train: false')
    Net(str(tmp_path / "net.prototxt"), TEST).save(tmp_path / "w.caffemodel")
    return path


def run_nvcaffe(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nvcaffe_py", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, f"exit status {result.returncode} (a negative one is a signal): {result.stderr}"
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and "error:" in last, result.stderr
    for fragment in fragments:
        assert fragment in last, last


def command_lines(path):
    """Caffe's three readers of an LMDB: compute_image_mean, test and train."""
    return {"compute_image_mean": ["compute_image_mean", path.name],
            "test": ["test", "--model", "net.prototxt", "--weights", "w.caffemodel", "--iterations", "60"],
            "train": ["train", "--solver", "solver.prototxt"]}


def meta(path):
    """(last page, root page) of the newest meta page."""
    raw = (path / "data.mdb").read_bytes()[: 2 * PAGE]
    metas = [struct.unpack_from("<QQ", raw, page * PAGE + 16 + 120) for page in (0, 1)]
    last, _ = max(metas, key=lambda m: m[1])
    root = struct.unpack_from("<Q", raw, (1 if metas[1][1] > metas[0][1] else 0) * PAGE + 16 + 72 + 40)[0]
    return last, root


def overwrite(path, offset, data):
    with open(path / "data.mdb", "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize("command", ["compute_image_mean", "test", "train"])
@pytest.mark.parametrize("cut", ["to 8192 bytes", "one page short"])
def test_a_truncated_lmdb_is_a_one_line_error(dataset, command, cut):
    size = os.path.getsize(dataset / "data.mdb")
    os.truncate(dataset / "data.mdb", 8192 if cut == "to 8192 bytes" else size - PAGE)
    result = run_nvcaffe(*command_lines(dataset)[command], cwd=dataset.parent)
    assert_one_line_error(result, "train_lmdb", "truncated")


def leaf_with_wrong_flags(path):
    """The second leaf page marked as an overflow page: LMDB asserts when its cursor reaches it."""
    overwrite(path, 3 * PAGE + 10, struct.pack("<H", 0x04))
    return "should be a leaf page"


def child_beyond_the_file(path):
    """The root's second child pointer names a page past the last one: MDB_PAGE_NOTFOUND."""
    _, root = meta(path)
    raw = (path / "data.mdb").read_bytes()
    node = root * PAGE + struct.unpack_from("<H", raw, root * PAGE + 16 + 2)[0]
    overwrite(path, node, struct.pack("<HHH", 0xFFFF, 0xFFFF, 0))
    return "past the last page"


def child_is_the_root(path):
    """A branch entry pointing back at its own page (a cycle; LMDB asserts)."""
    _, root = meta(path)
    raw = (path / "data.mdb").read_bytes()
    node = root * PAGE + struct.unpack_from("<H", raw, root * PAGE + 16 + 4)[0]
    overwrite(path, node, struct.pack("<HHH", root, 0, 0))
    return "reached twice"


def value_size_past_the_page(path):
    """A record's size field grown so that its value would run past the end of the file."""
    last, _ = meta(path)
    raw = (path / "data.mdb").read_bytes()
    page = last * PAGE
    node = page + struct.unpack_from("<H", raw, page + 16)[0]
    overwrite(path, node, struct.pack("<HH", 0xFFFF, 0x7FFF))
    return "runs past"


@pytest.mark.parametrize("damage", [leaf_with_wrong_flags, child_beyond_the_file, child_is_the_root,
                                    value_size_past_the_page])
def test_a_corrupted_lmdb_is_a_one_line_error_naming_where(dataset, damage):
    what = damage(dataset)
    for command, argv in command_lines(dataset).items():
        result = run_nvcaffe(*argv, cwd=dataset.parent)
        assert_one_line_error(result, "train_lmdb", "corrupted", what)


def test_the_check_names_the_record_near_the_damage(dataset):
    leaf_with_wrong_flags(dataset)
    with pytest.raises(CaffeError, match=r"^LMDB '.*train_lmdb' is corrupted near record '000000\d\d': page 3 "):
        db.open_reader(dataset)


def test_lmdb_errors_while_reading_are_one_line_errors(dataset, monkeypatch):
    """Errors LMDB reports after opening (here: a reader slot table that is full) name the
    database and the record, from the prefetch thread too."""
    cursor = db.CyclingCursor(dataset)
    for _ in range(5):
        cursor.next()

    class FailingCursor:
        def item(self):
            raise db.lmdb.ReadersFullError("mdb_txn_begin: MDB_READERS_FULL")

        next = first = item

    cursor._cursor = FailingCursor()
    with pytest.raises(CaffeError, match=r"^LMDB '.*train_lmdb': cannot read the record after '00000004': "
                                         r"mdb_txn_begin: MDB_READERS_FULL$"):
        cursor.next()


def test_an_intact_lmdb_reads_as_before(dataset):
    cursor = db.CyclingCursor(dataset)
    keys = [cursor.next()[0] for _ in range(RECORDS + 1)]
    assert keys[0] == keys[-1] == b"00000000" and len(set(keys)) == RECORDS and cursor.wrapped == 1


def test_a_copy_of_a_damaged_lmdb_is_checked_again(dataset, tmp_path):
    """The check belongs to the file at open, not to its path: a repaired copy at a new path reads."""
    db.open_reader(dataset)
    copy = tmp_path / "copy_lmdb"
    shutil.copytree(dataset, copy)
    leaf_with_wrong_flags(copy)
    with pytest.raises(CaffeError, match="corrupted"):
        db.open_reader(copy)
