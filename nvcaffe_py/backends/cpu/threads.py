"""The CPU layers' work spread over the cores: a layer splits its batch (or its chunks) into
parts and `run` does the parts at once, one per thread.

NumPy's element-wise work (im2col copies, pooling, activations) runs on one core, and only
OpenBLAS's GEMMs use the others. Calling those from several threads does not mix with
OpenBLAS's own threads: after each multi-threaded GEMM its idle workers spin on the other
cores for a while, taking them from our threads. So the parts run on threads only inside a
`scope` block (every Net pass is one), where BLAS runs single-threaded throughout and the
parallelism is ours: a thread per core, each doing its part's copies and GEMMs, which together
run as fast as OpenBLAS's two threads on the whole product (measured per training iteration on 2 cores: CIFAR10-quick ~106 -> ~90 ms,
AlexNet 2.6 -> 2.1 s). Waking a thread costs ~90 us here and the parts' NumPy calls contend for
the GIL, so layers split only work big enough to pay for that.

NVCAFFE_CPU_THREADS sets the number of threads (default: the cores this process may use);
1 turns all of this off. Results do not depend on the thread count except where a layer sums
its parts' partial results (weight gradients), which it does in a fixed order.
"""
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ...errors import CaffeError
from ...log import logger
from .tuning import MIN_PART_ELEMENTS



def thread_count():
    """The number of threads the layers' work is split for: inside a `scope` block the count read
    when the outermost block began (a pass asks for it at every layer, and the affinity query is
    a system call), else NVCAFFE_CPU_THREADS or the cores this process may use."""
    return _scope_count or _read_thread_count()


def _read_thread_count():
    value = os.environ.get("NVCAFFE_CPU_THREADS")
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise CaffeError(f"NVCAFFE_CPU_THREADS must be a whole number, got {value!r}") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_lock = threading.Lock()
_executor = None
_executor_key = None  # (threads, pid): a forked child needs its own pool, the parent's threads are gone
_blas = None
_blas_depth = 0
_blas_limit = None
_threaded_blocks = 0  # open scope blocks that run parts on threads, in any thread
_scope_depth = 0  # open scope blocks, in any thread
_scope_count = None  # thread_count() while one is open
_process_blas_limit = None  # limit_blas_threads's, kept for the rest of the process
_local = threading.local()


def _pool(threads):
    global _executor, _executor_key
    with _lock:
        key = (threads, os.getpid())
        if _executor_key != key:
            if _executor is not None and _executor_key[1] == key[1]:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(threads - 1, thread_name_prefix="nvcaffe-cpu")
            _executor_key = key
        return _executor


def _blas_controller():
    """threadpoolctl's handle on the BLAS libraries NumPy loaded (OpenBLAS, MKL, BLIS, ...), or
    False when threadpoolctl is missing (a source checkout run without installing, say)."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            logger.warning("threadpoolctl is not installed: the CPU layers run on one thread "
                           "(pip install threadpoolctl)")
            _blas = False
        else:
            _blas = ThreadpoolController().select(user_api="blas")
    return _blas


def limit_blas_threads(count):
    """BLAS on at most `count` threads from now on, outside scope blocks too: several processes
    sharing a machine's cores (the ranks of a data-parallel run) must not each start a BLAS thread
    per core. A scope block still narrows it to one, then returns to this."""
    global _process_blas_limit
    controller = _blas_controller()
    if controller:
        _process_blas_limit = controller.limit(limits=count)


def _limit_blas_to_one():
    """The first of nested single-threaded-BLAS blocks sets every BLAS library not on one thread
    already to one, remembering its count (callers hold _lock)."""
    global _blas_depth, _blas_limit
    _blas_depth += 1
    if _blas_depth == 1:
        controller = _blas_controller()
        _blas_limit = []
        for library in controller.lib_controllers if controller else ():
            count = library.get_num_threads()
            if count is not None and count != 1:
                library.set_num_threads(1)
                _blas_limit.append((library, count))


def _restore_blas():
    """The last of nested single-threaded-BLAS blocks sets the counts back (callers hold _lock)."""
    global _blas_depth, _blas_limit
    _blas_depth -= 1
    if _blas_depth == 0:
        for library, count in _blas_limit:
            library.set_num_threads(count)
        _blas_limit = None


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS on one thread inside the block (nested blocks and threads share one limit). Only the
    libraries not on one thread already are set, and set back after (every pass does this)."""
    with _lock:
        _limit_blas_to_one()
    try:
        yield
    finally:
        with _lock:
            _restore_blas()


class scope:
    """Inside the block `run` spreads the layers' parts over threads, and BLAS stays
    single-threaded throughout, so that no spinning OpenBLAS worker competes with them (a no-op
    with one thread). Outside any such block `run` does its parts in turn. The thread count is
    read once, when the outermost block begins. (A class, not a generator: every Net pass opens
    one, and at batch 1 a pass is ~100 us.)"""

    __slots__ = ("_threaded",)

    def __enter__(self):
        global _threaded_blocks, _scope_depth, _scope_count
        with _lock:
            if _scope_depth == 0:
                _scope_count = _read_thread_count()
            _scope_depth += 1
            self._threaded = _scope_count != 1 and bool(_blas_controller())
            if self._threaded:
                _limit_blas_to_one()
                _threaded_blocks += 1
        return self

    def __exit__(self, *exc):
        global _threaded_blocks, _scope_depth, _scope_count
        with _lock:
            if self._threaded:
                _threaded_blocks -= 1
                _restore_blas()
            _scope_depth -= 1
            if _scope_depth == 0:
                _scope_count = None


def parts(total, elements_per_item=1, min_elements=None):
    """range(total) as up to thread_count() near-equal contiguous slices, none with fewer than
    min_elements (default MIN_PART_ELEMENTS) elements, items having elements_per_item each;
    at least one slice when total > 0."""
    if total <= 0:
        return []
    if min_elements is None:
        min_elements = MIN_PART_ELEMENTS
    count = min(thread_count(), total, max(1, total * elements_per_item // max(1, min_elements)))
    size, extra = divmod(total, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + size + (i < extra))
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def groups(items, elements_per_item=None):
    """items as up to thread_count() contiguous near-equal lists, none empty: one per thread;
    with elements_per_item, only as many lists as `parts` allows for that much work."""
    items = list(items)
    if elements_per_item is None:
        return [items[s] for s in parts(len(items), min_elements=1)]
    return [items[s] for s in parts(len(items), elements_per_item)]


def run(fn, items):
    """[fn(item) for item in items], inside a `scope` block done at once on separate
    threads (the calling thread does the first). Runs them in turn outside such a block, when
    there is one item or one thread, or when called from inside a part."""
    items = list(items)
    threads = thread_count()
    if len(items) <= 1 or threads == 1 or not _threaded_blocks or getattr(_local, "inside", False):
        return [fn(item) for item in items]

    def part(item):
        _local.inside = True
        try:
            return fn(item)
        finally:
            _local.inside = False

    futures = [_pool(threads).submit(part, item) for item in items[1:]]
    try:
        first = [part(items[0])]
    finally:
        results = [f.result() for f in futures]
    return first + results


def each(fn, items, elements_per_item=None):
    """fn(item) for every item, the items shared among the threads in contiguous groups (see
    `groups`)."""
    run(lambda group: [fn(item) for item in group], groups(items, elements_per_item))
