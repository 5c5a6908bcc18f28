"""Loading a file reads that file, and only as much of it as the net needs: HDF5 weights and
solver states may not pull bytes from other files (external storage, external or soft links,
virtual datasets), a declared size is checked against the net before anything is read, layers
the net lacks are skipped unread, and only regular files of bounded size are read (not
/dev/zero, a FIFO or a directory). The memory-hungry cases run in a child process under an
address-space cap, so that a regression fails the test rather than the machine."""
import os
import resource
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from nvcaffe_py import files, formats, hdf5_format
from nvcaffe_py.datum import datum_to_array
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.proto import caffe_pb2

from net_helpers import MLP, build

HUGE = 1 << 30  # float32 values: 4 GiB, far above the child's cap, in a file of a few kilobytes
CHILD_MEMORY = 1536 << 20


def cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


def run_capped(code, cwd, timeout=120):
    """Run `code` (after the MLP net is built as `net`) in a child under the memory cap."""
    prelude = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
        from net_helpers import build
        from nvcaffe_py.errors import CaffeError
        net = build()
        try:
    """)
    body = textwrap.indent(textwrap.dedent(code), "    ")
    ending = "\nexcept CaffeError as exc:\n    print('CaffeError:', exc)\n"
    return subprocess.run([sys.executable, "-c", prelude + body + ending], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=cap_memory)


def assert_refused(result, *fragments):
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stdout.startswith("CaffeError:"), result.stdout
    for fragment in fragments:
        assert fragment in result.stdout, result.stdout


def weights_h5(path, net, fill=None):
    """The net's weights in Caffe's HDF5 layout; fill(f) may then change the file."""
    net.save_hdf5(str(path))
    if fill:
        with h5py.File(path, "a") as f:
            fill(f)
    return str(path)


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.key"
    path.write_bytes(np.arange(15, dtype=np.float32).tobytes())  # exactly ip1's 5x3 weights
    return path


# -- other files -------------------------------------------------------------------------------
def test_external_storage_is_refused(tmp_path, secret):
    def point_at_secret(f):
        del f["data/ip1/0"]
        f["data/ip1"].create_dataset("0", shape=(5, 3), dtype="f4", external=[(str(secret), 0, 60)])

    net = build()
    before = net.params["ip1"][0].data.copy()
    path = weights_h5(tmp_path / "evil.caffemodel.h5", build(), point_at_secret)
    with pytest.raises(CaffeError, match=r"evil.caffemodel.h5: dataset '/data/ip1/0' keeps its values in another "
                                         r"file \(external storage\); weights files must hold their own values"):
        net.copy_from(path)
    assert np.array_equal(net.params["ip1"][0].data, before)


@pytest.mark.parametrize("kind", ["external", "soft"])
def test_links_are_refused(tmp_path, kind):
    other = weights_h5(tmp_path / "other.caffemodel.h5", build())

    def link(f):
        del f["data/ip1"]
        f["data/ip1"] = h5py.ExternalLink(other, "/data/ip1") if kind == "external" else h5py.SoftLink("/data/ip2")

    path = weights_h5(tmp_path / "linked.caffemodel.h5", build(), link)
    with pytest.raises(CaffeError, match=rf"linked.caffemodel.h5: '/data/ip1' is an? {kind} link"):
        build().copy_from(path)


def test_virtual_datasets_are_refused(tmp_path):
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as f:
        f["values"] = np.ones((5, 3), np.float32)

    def virtual(f):
        del f["data/ip1/0"]
        layout = h5py.VirtualLayout(shape=(5, 3), dtype="f4")
        layout[...] = h5py.VirtualSource(str(source), "values", shape=(5, 3))
        f["data/ip1"].create_virtual_dataset("0", layout)

    path = weights_h5(tmp_path / "virtual.caffemodel.h5", build(), virtual)
    with pytest.raises(CaffeError, match=r"dataset '/data/ip1/0' is a virtual dataset"):
        build().copy_from(path)


def test_a_solverstate_with_external_history_is_refused(tmp_path, secret):
    state = caffe_pb2.SolverState(iter=1, learned_net="")
    formats.blob_to_proto(np.zeros((5, 3), np.float32), proto=state.history.add())
    path = tmp_path / "s.solverstate.h5"
    hdf5_format.write_solver_state(str(path), state)
    with h5py.File(path, "a") as f:
        del f["history/0"]
        f["history"].create_dataset("0", shape=(5, 3), dtype="f4", external=[(str(secret), 0, 60)])
    with pytest.raises(CaffeError, match=r"dataset '/history/0' keeps its values in another file"):
        hdf5_format.read_solver_state(str(path), [(5, 3)])


# -- declared sizes ----------------------------------------------------------------------------
def unwritten(f, name, shape):
    """A chunked dataset never written: it costs no bytes on disk and reads as `shape` zeros."""
    if name in f:
        del f[name]
    f.create_dataset(name, shape=shape, dtype="f4", chunks=(1 << 20,) if len(shape) == 1 else True)


def test_a_huge_dataset_of_a_layer_the_net_lacks_is_not_read(tmp_path):
    path = weights_h5(tmp_path / "bomb.caffemodel.h5", build(), lambda f: unwritten(f, "data/conv9/0", (HUGE,)))
    assert os.path.getsize(path) < 1 << 20
    result = run_capped(f"net.copy_from({path!r}); print('loaded')", tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "loaded", result.stderr[-2000:]


def test_a_huge_dataset_for_a_layer_of_the_net_is_refused_unread(tmp_path):
    path = weights_h5(tmp_path / "bomb.caffemodel.h5", build(), lambda f: unwritten(f, "data/ip1/0", (HUGE,)))
    assert_refused(run_capped(f"net.copy_from({path!r})", tmp_path),
                   f"cannot copy param 0 of layer 'ip1': shape mismatch, weights have ({HUGE},)")


@pytest.mark.parametrize("dataset", ["iter", "current_step", "history/0"])
def test_huge_solverstate_datasets_are_refused_unread(tmp_path, dataset):
    state = caffe_pb2.SolverState(iter=1, learned_net="")
    formats.blob_to_proto(np.zeros((5, 3), np.float32), proto=state.history.add())
    path = str(tmp_path / "bomb.solverstate.h5")
    hdf5_format.write_solver_state(path, state)
    with h5py.File(path, "a") as f:
        unwritten(f, dataset, (HUGE,))
    result = run_capped(f"from nvcaffe_py import hdf5_format\nhdf5_format.read_solver_state({path!r}, [(5, 3)])",
                        tmp_path)
    assert_refused(result, f"'/{dataset}'", f"({HUGE},)")


# -- not regular files, and sizes --------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".caffemodel", ".caffemodel.h5"])
def test_weights_from_a_device_are_refused(tmp_path, suffix):
    link = tmp_path / f"zero{suffix}"
    link.symlink_to("/dev/zero")
    assert_refused(run_capped(f"net.copy_from({str(link)!r})", tmp_path), f"{link}: not a regular file")


def test_a_solverstate_naming_a_device_is_refused(tmp_path):
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" max_iter: 2')
    (tmp_path / "net.prototxt").write_text(MLP)
    state = caffe_pb2.SolverState(iter=1, learned_net="/dev/zero")
    for shape in [(5, 3), (5,), (3, 5), (3,)]:  # the MLP's parameters: an SGD history that fits
        formats.blob_to_proto(np.zeros(shape, np.float32), proto=state.history.add())
    formats.write_binary(tmp_path / "s.solverstate", state)
    code = """
        from nvcaffe_py.solvers import get_solver
        get_solver("solver.prototxt").restore("s.solverstate")
    """
    assert_refused(run_capped(code, tmp_path), "/dev/zero: not a regular file")


def test_a_fifo_or_a_directory_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "weights.caffemodel"
    os.mkfifo(fifo)
    assert_refused(run_capped(f"net.copy_from({str(fifo)!r})", tmp_path, timeout=30),
                   f"{fifo}: not a regular file (a FIFO)")
    with pytest.raises(CaffeError, match=rf"^{tmp_path}: not a regular file \(a directory\)$"):
        formats.read_net_param(tmp_path)


def test_protobuf_files_have_a_bounded_size(tmp_path, monkeypatch):
    """As Caffe's reader (a 2 GiB limit); here with a small limit, to test it cheaply."""
    path = tmp_path / "big.caffemodel"
    path.write_bytes(b"\0" * 101)
    monkeypatch.setattr(files, "PROTOBUF_FILE_LIMIT", 100)
    with pytest.raises(CaffeError, match=rf"^{path}: 101 bytes, more than the 100 such a file may hold"):
        formats.read_caffemodel(path)
    path.write_bytes(b"\0" * 100)
    with pytest.raises(CaffeError, match="not a valid binary NetParameter"):
        formats.read_caffemodel(path)
    assert files.PROTOBUF_FILE_LIMIT < (1 << 31)


def test_the_memory_cap_of_the_child_is_effective(tmp_path):
    result = subprocess.run([sys.executable, "-c", "import numpy; numpy.ones(1 << 30)"], capture_output=True,
                            text=True, timeout=60, preexec_fn=cap_memory)
    assert result.returncode != 0 and "MemoryError" in result.stderr


def test_lists_and_images_that_are_not_regular_files_are_refused(tmp_path):
    os.mkfifo(tmp_path / "list.fifo")
    code = f"""
        from nvcaffe_py.datum import read_image, read_image_list
        for read in (lambda: read_image_list({str(tmp_path / 'list.fifo')!r}), lambda: read_image('/dev/zero')):
            try:
                read()
            except CaffeError as exc:
                print('refused:', exc)
        raise CaffeError('done')
    """
    result = run_capped(code, tmp_path, timeout=30)
    assert result.stdout.splitlines()[:2] == [
        f"refused: cannot read the image list: {tmp_path / 'list.fifo'}: not a regular file (a FIFO)",
        "refused: image file '/dev/zero' is not a regular file"], result.stderr[-2000:]


# -- damage the fuzz test found --------------------------------------------------------------------
@pytest.mark.parametrize("signature", [b"SNOD", b"TREE", b"HEAP"])
def test_a_damaged_hdf5_file_is_one_line(tmp_path, signature):
    """libhdf5 finds the damage as it goes; h5py raises RuntimeError, KeyError, ValueError..."""
    path = weights_h5(tmp_path / "damaged.caffemodel.h5", build())
    raw = bytearray(open(path, "rb").read())
    assert signature in raw
    at = raw.index(signature)
    raw[at:at + 4] = b"XXXX"
    open(path, "wb").write(bytes(raw))
    with pytest.raises(CaffeError, match=rf"^{path}: a damaged HDF5 file \("):
        build().copy_from(path)


def test_an_encoded_datum_without_bytes_is_one_line():
    with pytest.raises(CaffeError, match=r"^cannot decode the encoded image \(0 bytes\)"):
        datum_to_array(caffe_pb2.Datum(encoded=True, data=b""))


def test_a_caffemodel_string_that_is_not_utf8_is_one_line(tmp_path):
    """protobuf's C parser hands such a field over as bytes, which the upgrade then failed on."""
    weights = caffe_pb2.NetParameter(name="n")
    weights.layers.add(name="ip1", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(weights.SerializeToString().replace(b"ip1", b"i\xff1"))
    with pytest.raises(CaffeError, match=rf"^{path}: NetParameter.layers\[0\].name is not valid UTF-8 text$"):
        build().copy_from(str(path))
