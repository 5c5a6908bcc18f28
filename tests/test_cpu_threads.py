"""The CPU thread parallelism (nvcaffe_py/backends/cpu/threads.py): the splitting helpers, `run`, the BLAS
thread limit, and every layer that shares its work among threads giving the results it gives
on one thread (forced here onto several parts however small the input)."""
import threading

import numpy as np
import pytest

from nvcaffe_py.backends.cpu import convolution as convolution_engine
from nvcaffe_py.backends.cpu import threads
from nvcaffe_py.errors import CaffeError
from nvcaffe_py.gradient_check import setup_layer
from nvcaffe_py.layers import inner_product as inner_product_module
from nvcaffe_py.backends.cpu import pooling as pooling_engine


def test_parts_cover_the_range_in_order_and_respect_the_minimum(monkeypatch):
    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "3")
    assert threads.parts(10, min_elements=1) == [slice(0, 4), slice(4, 7), slice(7, 10)]
    assert threads.parts(2, min_elements=1) == [slice(0, 1), slice(1, 2)]
    assert threads.parts(0) == []
    # Too little work for a second part: 100 items of 1000 elements against a 60,000 minimum.
    assert threads.parts(100, 1000, min_elements=60_000) == [slice(0, 100)]
    assert threads.groups(list("abcde")) == [["a", "b"], ["c", "d"], ["e"]]


def test_thread_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "5")
    assert threads.thread_count() == 5
    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "many")
    with pytest.raises(CaffeError, match="NVCAFFE_CPU_THREADS must be a whole number, got 'many'"):
        threads.thread_count()


def test_a_scope_reads_the_thread_count_once(monkeypatch):
    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "3")
    with threads.scope():
        monkeypatch.setenv("NVCAFFE_CPU_THREADS", "2")
        with threads.scope():  # an inner block keeps the outermost block's count
            assert threads.thread_count() == 3
        assert threads.parts(10, min_elements=1)[0] == slice(0, 4)
    assert threads.thread_count() == 2  # read again outside


def test_run_keeps_order_uses_threads_and_passes_errors_on(monkeypatch):
    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "3")
    all_started = threading.Barrier(3, timeout=10)  # broken unless the 3 parts run at once

    def part(i):
        all_started.wait()
        return i, threading.current_thread().name

    with threads.scope():
        names = threads.run(part, range(3))
    assert [i for i, _ in names] == [0, 1, 2]
    assert len({name for _, name in names}) == 3

    def fails(i):
        if i == 1:
            raise RuntimeError("part 1 failed")
        return i

    def thread_names(_):
        return {name for name in threads.run(lambda _: threading.current_thread().name, range(3))}

    with threads.scope():
        with pytest.raises(RuntimeError, match="part 1 failed"):
            threads.run(fails, range(3))
        # A run inside a part runs its items in turn on that thread instead of waiting on the pool.
        assert all(len(names) == 1 for names in threads.run(thread_names, range(3)))
    # Outside a threads.scope() block (a layer called on its own), the parts run in turn, here.
    assert thread_names(None) == {threading.current_thread().name}


def test_blas_is_single_threaded_inside_and_restored_after(monkeypatch):
    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "2")
    controller = threads._blas_controller()
    if not controller.lib_controllers:
        pytest.skip("NumPy's BLAS is not one threadpoolctl can control")
    before = [lib.num_threads for lib in controller.lib_controllers]
    with threads.scope():
        with threads.single_threaded_blas():
            assert all(lib.get_num_threads() == 1 for lib in controller.lib_controllers)
        assert all(lib.get_num_threads() == 1 for lib in controller.lib_controllers)
    assert [lib.get_num_threads() for lib in controller.lib_controllers] == before


def test_without_threadpoolctl_the_layers_run_on_one_thread(monkeypatch):
    import sys

    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "2")
    monkeypatch.setattr(threads, "_blas", None)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    with threads.scope():
        names = threads.run(lambda _: threading.current_thread().name, range(2))
    assert names == [threading.current_thread().name] * 2
    assert threads._blas is False


def _run_layer(text, bottoms, num_tops=1, backward=True):
    """Forward (and backward with fixed top diffs) of a fresh float32 layer: tops, bottom diffs,
    param diffs."""
    from nvcaffe_py import rng

    rng.set_random_seed(3)
    layer, bottom_blobs, tops = setup_layer(text, bottoms, num_tops, dtype=np.float32)
    layer.forward_cpu(bottom_blobs, tops)
    outputs = [t.data.copy() for t in tops]
    if not backward:
        return outputs, [], []
    diffs = np.random.default_rng(7)
    for t in tops:
        t.diff[...] = diffs.standard_normal(t.shape)
    for b in bottom_blobs:
        b.diff[...] = 0
    for p in layer.blobs:
        p.diff[...] = 0
    layer.backward_cpu(tops, [True] * len(bottom_blobs), bottom_blobs)
    return outputs, [b.diff.copy() for b in bottom_blobs], [p.diff.copy() for p in layer.blobs]


CONV_FILLERS = 'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 }'
CASES = [
    # (layer text, input shape): each of the convolution's paths, pooling's methods, ...
    (f'type: "Convolution" convolution_param {{ num_output: 6 kernel_size: 5 pad: 2 {CONV_FILLERS} }}',
     (7, 3, 12, 12)),  # batch-last, shifted rows, flipped-kernel data gradient
    (f'type: "Convolution" convolution_param {{ num_output: 4 kernel_size: 3 stride: 2 {CONV_FILLERS} }}',
     (5, 4, 9, 9)),  # col2im data gradient
    (f'type: "Convolution" convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 group: 2 {CONV_FILLERS} }}',
     (5, 4, 26, 26)),  # image-major, groups
    (f'type: "Convolution" convolution_param {{ num_output: 8 kernel_size: 3 {CONV_FILLERS} }}',
     (5, 2, 30, 30)),  # image-major, per-image GEMMs with the bias folded in
    (f'type: "Deconvolution" convolution_param {{ num_output: 3 kernel_size: 4 stride: 2 {CONV_FILLERS} }}',
     (5, 4, 6, 6)),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 }', (6, 5, 13, 13)),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }', (6, 5, 13, 13)),
    ('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 }', (6, 5, 8, 8)),
    ('type: "InnerProduct" inner_product_param { num_output: 7 weight_filler { type: "xavier" } '
     'bias_filler { type: "constant" value: 0.5 } }', (9, 3, 4, 4)),
    ('type: "InnerProduct" inner_product_param { num_output: 5 transpose: true axis: 2 '
     'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.5 } }', (4, 3, 6, 2)),
    ('type: "ReLU" relu_param { negative_slope: 0.1 }', (7, 3, 5, 5)),
    ('type: "PReLU"', (7, 3, 5, 5)),
    ('type: "TanH"', (7, 3, 5, 5)),
]


@pytest.mark.parametrize("text,shape", CASES, ids=[c[0].split('"')[1] + str(i) for i, c in enumerate(CASES)])
def test_layers_give_the_same_results_on_several_threads(monkeypatch, text, shape):
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    if "STOCHASTIC" in text:
        x = np.abs(x)
    monkeypatch.setattr(convolution_engine, "COLUMN_BUFFER_BYTES", 1)  # a chunk per image
    monkeypatch.setattr(pooling_engine, "POOLING_CHUNK_ELEMENTS", 64)  # a chunk per plane
    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "1")
    expected = _run_layer(text, [x])
    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "3")
    monkeypatch.setattr(threads, "MIN_PART_ELEMENTS", 1)
    monkeypatch.setattr(inner_product_module, "MIN_PART_MULTIPLY_ADDS", 1)
    with threads.scope():
        got = _run_layer(text, [x])
    for want_list, got_list in zip(expected, got):
        for want, have in zip(want_list, got_list):
            # Weight gradients are summed per thread first, so allow float32 reordering.
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)


def test_a_net_trains_the_same_on_one_thread_and_on_three(monkeypatch):
    from nvcaffe_py import Net, formats, rng
    from nvcaffe_py.proto import caffe_pb2

    text = '''
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 6 dim: 3 dim: 10 dim: 10 } } }
    layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 6 } } }
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
            convolution_param { num_output: 5 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
    layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
    layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
    layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
            inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
    '''
    data = np.random.default_rng(2).standard_normal((6, 3, 10, 10))
    label = np.array([0, 1, 2, 3, 0, 1])

    def losses_and_grads(thread_count, min_elements):
        monkeypatch.setenv("NVCAFFE_CPU_THREADS", thread_count)
        monkeypatch.setattr(threads, "MIN_PART_ELEMENTS", min_elements)
        monkeypatch.setattr(inner_product_module, "MIN_PART_MULTIPLY_ADDS", min_elements)
        rng.set_random_seed(11)
        net = Net(formats.net_param_from_text(text), caffe_pb2.TRAIN)
        net.blobs["data"].data[...] = data
        net.blobs["label"].data[...] = label
        loss = net.forward_backward()
        return loss, [p.blob.diff.copy() for p in net.learnable_params]

    loss_one, grads_one = losses_and_grads("1", threads.MIN_PART_ELEMENTS)
    loss_three, grads_three = losses_and_grads("3", 1)
    assert loss_three == pytest.approx(loss_one, rel=1e-6)
    for want, have in zip(grads_one, grads_three):
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_threads(monkeypatch):
    import os

    monkeypatch.setenv("NVCAFFE_CPU_THREADS", "2")
    with threads.scope():
        assert threads.run(lambda i: i, range(2)) == [0, 1]  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # the child: the parent's worker thread does not exist here
        import signal

        signal.alarm(20)  # a part left waiting for a thread that is gone ends the child, failed
        try:
            with threads.scope():
                ok = threads.run(lambda i: (i * 2, threading.current_thread().name), range(2))
            ok = [i for i, _ in ok] == [0, 2] and len({name for _, name in ok}) == 2
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
