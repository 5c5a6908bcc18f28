"""OpenCV and h5py, imported on first use.

`import nvcaffe_py` loads every layer module, and OpenCV adds about 17 MB and h5py about 13 MB to
a process's resident memory (measured: 43 and 39 MB against NumPy's 26) although only image
decoding and HDF5 files need them. A deploy net fed arrays, the usual inference process, loads
neither; the first image or HDF5 file read loads the library as an ordinary import would.
"""
import importlib
import threading

_lock = threading.Lock()  # the prefetch threads may be the first to touch a library


class LazyModule:
    """Stands for the module `name`: the first attribute read imports it."""

    def __init__(self, name):
        self._name = name
        self._module = None

    def __getattr__(self, attribute):
        module = self._module
        if module is None:
            with _lock:
                if self._module is None:
                    self._module = importlib.import_module(self._name)
                module = self._module
        return getattr(module, attribute)

    def __repr__(self):
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazily imported module '{self._name}' ({state})>"


cv2 = LazyModule("cv2")
h5py = LazyModule("h5py")
