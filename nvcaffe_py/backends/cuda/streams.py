"""The CUDA streams, and events to order work between them.

- `compute()`: every kernel, memset and device-to-device copy of the layers and solvers, in the
  order the host issues them. It is a blocking stream (flags 0), so the synchronous copies of
  SyncedArray, which run on the legacy default stream, wait for the work queued on it, as Caffe's
  work on the default stream is ordered with its copies.
- `upload()`: the input path's host-to-device copies (the data layers' double buffers). It is
  non-blocking (flags 1): nothing orders it with the compute stream but events, so an upload runs
  while the net computes. `record(stream)` gives an event after the work queued on a stream so far;
  `stream.wait_for_event(event)` makes later work on a stream wait for it.
"""
from . import context, traffic

_state = {"compute": None, "upload": None}
NON_BLOCKING = 1


def _stream(key, flags):
    if _state[key] is None:
        import pycuda.driver as cuda

        context.ensure_active()
        _state[key] = cuda.Stream(flags=flags)
    return _state[key]


def compute():
    return _stream("compute", 0)


def upload():
    return _stream("upload", NON_BLOCKING)


def record(stream):
    """An event recorded now on `stream` (done once the work queued on it so far is done)."""
    import pycuda.driver as cuda

    return cuda.Event().record(stream)


def wait(event):
    """Block the calling host thread until `event` is done (counted as a synchronisation)."""
    traffic.count("sync")
    event.synchronize()


def reset():
    """Forget the streams (they belong to a context that is gone: tests, a forked child)."""
    _state.update(compute=None, upload=None)


context.on_reset(reset)
