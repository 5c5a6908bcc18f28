"""The GPU input path (layers/base_data_gpu.py) on the CUDA emulator, or a GPU: batches built in
page-locked memory, uploaded on their own stream into a double buffer, swapped in by the forward.
Its batches must be the CPU path's, over iterations that wrap around the dataset, under both of
the emulator's orders (uploads run late; compute runs late), so that a missing event wait fails;
and an iteration must make no synchronous copy or synchronisation."""
import cv2
import lmdb
import numpy as np
import pytest

import cuda_emulator
import nvcaffe_py as caffe
from nvcaffe_py import formats
from nvcaffe_py.backends.cuda import memory, traffic
from nvcaffe_py.datum import array_to_datum

ITERATIONS = 8  # batches of 3 from 5 records: wraps around four times; page-locked buffers are reused


def _head(kind, params, tops='top: "data" top: "label"'):
    return (f'layer {{ name: "d" type: "{kind}" {tops} transform_param {{ scale: 0.5 }} {params} }} '
            f'layer {{ name: "p" type: "Power" bottom: "data" top: "out" power_param {{ shift: 1 }} }}')


@pytest.fixture
def sources(tmp_path):
    rng = np.random.default_rng(3)
    arrays = rng.integers(0, 256, size=(5, 3, 4, 5), dtype=np.uint8)
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, a in enumerate(arrays):
            txn.put(f"{i:03d}".encode(), array_to_datum(a, 10 + i).SerializeToString())
    env.close()
    (tmp_path / "imgs").mkdir()
    for i, a in enumerate(arrays):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), a.transpose(1, 2, 0))
    (tmp_path / "list.txt").write_text("".join(f"{i}.png {i}\n" for i in range(5)))
    return {
        "Data": f'data_param {{ source: "{tmp_path}/db" backend: LMDB batch_size: 3 prefetch: 1 }}',
        "ImageData": f'image_data_param {{ source: "{tmp_path}/list.txt" root_folder: "{tmp_path}/imgs/" '
                     f'batch_size: 3 }}',
    }


def _cpu_batches(text):
    caffe.set_mode_cpu()
    net = caffe.Net(formats.net_param_from_text(text), caffe.TRAIN)
    out = []
    for _ in range(ITERATIONS):
        net.forward()
        out.append([net.blobs[n].data_readonly().copy() for n in ("data", "label", "out")])
    net.layers[0].close()
    return out


def _gpu_batches(text):
    """Each iteration's tops, copied on the compute stream into buffers read at the end: nothing
    between the iterations waits for the device."""
    caffe.set_mode_gpu()
    net = caffe.Net(formats.net_param_from_text(text), caffe.TRAIN)
    kept, counts = [], []
    for _ in range(ITERATIONS):
        with traffic.counting() as count:
            net.forward_from_to()  # the loss is 0: no loss layer, nothing read
            copies = []
            for name in ("data", "label", "out"):
                source = net.blobs[name].gpu_data_readonly()
                copies.append(memory.empty(source.size, source.dtype))
                memory.copy(copies[-1], source)
        kept.append([(c, net.blobs[n].shape) for c, n in zip(copies, ("data", "label", "out"))])
        counts.append(count)
    out = [[memory.to_host(c).reshape(shape) for c, shape in row] for row in kept]
    net.layers[0].close()
    caffe.set_mode_cpu()
    return out, counts


@pytest.mark.parametrize("late", ["side", "compute", "all"])
@pytest.mark.parametrize("kind", ["Data", "ImageData"])
def test_async_double_buffer_gives_the_cpu_batches(device, sources, kind, late):
    text = _head(kind, sources[kind])
    expected = _cpu_batches(text)
    pageable = cuda_emulator.PAGEABLE_ASYNC_COPIES[0]
    with cuda_emulator.late(late):
        got, counts = _gpu_batches(text)
    for k, (want, have) in enumerate(zip(expected, got)):
        for name, a, b in zip(("data", "label", "out"), want, have):
            np.testing.assert_array_equal(b, a, err_msg=f"iteration {k}: {name}")
    assert cuda_emulator.PAGEABLE_ASYNC_COPIES[0] == pageable  # built in page-locked memory: no staging copy
    for count in counts[1:]:
        assert count["htod"] == count["dtoh"] == count["sync"] == 0, dict(count)
        assert count["htod_async"] == 2  # the next batch's data and labels


def test_batches_switch_between_gpu_and_cpu_forward_without_a_gap(device, sources):
    """A batch the GPU forward took ahead is the next CPU forward's."""
    text = _head("Data", sources["Data"])
    expected = [row[1] for row in _cpu_batches(text)]
    net = caffe.Net(formats.net_param_from_text(text), caffe.TRAIN)
    labels = []
    for k in range(ITERATIONS):
        (caffe.set_mode_gpu if k % 2 == 0 else caffe.set_mode_cpu)()
        net.forward()
        labels.append(net.blobs["label"].data_readonly().copy())
    caffe.set_mode_cpu()
    net.layers[0].close()
    np.testing.assert_array_equal(np.array(labels), np.array(expected))


def test_the_pool_orders_a_block_reused_by_another_stream(device):
    """A temporary freed while a kernel reading it is still queued (the compute stream runs late)
    and reused at once for an upload on the upload stream: the upload must wait for that kernel."""
    from nvcaffe_py.backends.cuda import math_functions as mf
    from nvcaffe_py.backends.cuda import streams

    caffe.set_mode_gpu()
    n = 1000
    with cuda_emulator.late("compute"):
        out = memory.empty(n, np.float32)
        temporary = memory.to_device(np.full(n, 2, np.float32))
        mf.scale(1.0, temporary, out)  # queued: reads the temporary
        address = memory.pointer(temporary)
        del temporary
        slot = memory.empty(n, np.float32, stream=streams.upload())
        assert memory.pointer(slot) == address  # the same block
        with caffe.backends.cuda.context.pushed():
            pinned = memory.pinned_empty((n,), np.float32)
        pinned[...] = 7
        memory.upload_async(slot, pinned, streams.upload())
        np.testing.assert_array_equal(memory.to_host(out), 2)
    caffe.set_mode_cpu()


def test_a_forked_child_gets_a_clear_error(device):
    import os

    from nvcaffe_py.backends.cuda import context

    caffe.set_mode_gpu()
    memory.to_device(np.ones(4, np.float32))
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one line back through the pipe, then out without cleanup
        try:
            memory.to_device(np.ones(4, np.float32))
            message = "no error"
        except caffe.CaffeError as exc:
            message = str(exc)
        os.write(writer, message.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as f:
        message = f.read()
    os.waitpid(pid, 0)
    caffe.set_mode_cpu()
    assert "forked from process" in message and "spawn" in message
    assert context.is_active()  # the parent's context is untouched


def test_a_batch_taken_ahead_logs_its_notes_when_used(device, sources, caplog):
    """Batch 1 (records 3, 4, 0) wraps around: its 'Restarting' line comes with the forward that
    uses it, not with the one that took it ahead to upload it."""
    caffe.set_mode_gpu()
    net = caffe.Net(formats.net_param_from_text(_head("Data", sources["Data"])), caffe.TRAIN)
    restarts = []
    with caplog.at_level("INFO", logger="nvcaffe_py"):
        for _ in range(2):
            net.forward()
            restarts.append(sum("Restarting data prefetching" in r.getMessage() for r in caplog.records))
    net.layers[0].close()
    caffe.set_mode_cpu()
    assert restarts == [0, 1]
