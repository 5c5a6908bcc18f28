"""Files we write: atomically, with the permissions the process's umask gives (not mkstemp's 0600),
and the temporaries a killed run leaves behind removed at the next start, which says so."""
import logging
import os
import subprocess
import sys

import pytest

from nvcaffe_py import files
from nvcaffe_py.db import LMDBWriter
from nvcaffe_py.solvers import get_solver

from solver_helpers import RULES, workdir, write_solver  # noqa: F401 (workdir: a fixture)


@pytest.fixture
def umask():
    """Set the process umask for a test, and put the previous one back."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path):
    return os.stat(path).st_mode & 0o777


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    files.write_atomic(tmp_path / "a.caffemodel", b"weights")
    assert mode(tmp_path / "a.caffemodel") == expected
    with LMDBWriter(tmp_path / "db") as db:
        db.put("k", b"v")
    assert mode(tmp_path / "db") == expected | (expected & 0o444) >> 2  # directories: x where r
    assert mode(tmp_path / "db" / "data.mdb") == expected


def test_snapshots_follow_the_umask(workdir, umask):
    umask(0o022)
    get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 2, snapshot=2)).solve()
    assert mode("s_iter_2.caffemodel") == mode("s_iter_2.solverstate") == 0o644


def dead_pid():
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_runs_temporaries_are_removed_at_the_next_start_and_logged(workdir, caplog):
    gone, alive = dead_pid(), os.getppid()
    stale = [f"s_iter_2.caffemodel.{gone}-0a1b2c3d.tmp", f"s_iter_2.solverstate.{gone}-4e5f6a7b.tmp"]
    kept = [f"s_iter_4.caffemodel.{alive}-0a1b2c3d.tmp",  # another process, still running, writes it
            f"other_iter_2.caffemodel.{gone}-0a1b2c3d.tmp",  # not this run's prefix
            "s_iter_2.caffemodel.tmp"]  # not our naming
    for name in stale + kept:
        (workdir / name).write_bytes(b"partial")
    with caplog.at_level(logging.INFO, logger="nvcaffe_py"):
        get_solver(write_solver(workdir, "s.prototxt", RULES["SGD"], 1, snapshot=0)).solve()
    assert not any((workdir / name).exists() for name in stale)
    assert all((workdir / name).exists() for name in kept)
    assert f"Removed 2 temporary files left by an interrupted run: {stale[0]}, {stale[1]}" in caplog.text


def test_a_killed_conversions_temporary_folder_is_removed(tmp_path):
    gone = dead_pid()
    (tmp_path / f"out_lmdb.{gone}-0a1b2c3d.tmp").mkdir()
    (tmp_path / f"out_lmdb.{gone}-0a1b2c3d.tmp" / "data.mdb").write_bytes(b"partial")
    with LMDBWriter(tmp_path / "out_lmdb") as db:
        db.put("k", b"v")
    assert sorted(os.listdir(tmp_path)) == ["out_lmdb"]


def test_a_dataset_moved_aside_by_a_killed_replace_is_put_back(tmp_path):
    """Killed between moving the old dataset aside and renaming the new one in: the old one returns."""
    gone = dead_pid()
    aside = tmp_path / f"out_lmdb.{gone}-0a1b2c3d.old"
    with LMDBWriter(aside) as db:
        db.put("k", b"old")
    assert files.remove_stale_temporaries(tmp_path, "out_lmdb") == [aside.name]
    assert sorted(os.listdir(tmp_path)) == ["out_lmdb"]


def test_an_unreadable_temporary_name_is_left_alone(tmp_path):
    (tmp_path / "s_iter_2.caffemodel.notapid-0a1b2c3d.tmp").write_bytes(b"x")
    (tmp_path / f"s_iter_2.caffemodel.{os.getpid()}-0a1b2c3d.tmp").write_bytes(b"ours, in flight")
    assert files.remove_stale_temporaries(tmp_path, "s_iter_") == []
    assert len(os.listdir(tmp_path)) == 2
