"""OpenCV and h5py load on first use (nvcaffe_py.lazy_import): a process that runs a deploy net on
arrays loads neither, and the first image or HDF5 file loads the library."""
import os
import subprocess
import sys

import numpy as np
import pytest

from nvcaffe_py.lazy_import import LazyModule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_a_deploy_net_fed_arrays_loads_neither_opencv_nor_h5py():
    code = ("import sys, numpy as np, caffe\n"
            "net = caffe.Net('models/resnet56_cifar/deploy.prototxt', caffe.TEST)\n"
            "net.forward(data=np.zeros(net.blobs['data'].data.shape, np.float32))\n"
            "print(sorted(m for m in ('cv2', 'h5py') if m in sys.modules))")
    assert _run(code) == "[]"


def test_the_first_image_read_loads_opencv(tmp_path):
    path = tmp_path / "gray.pgm"
    path.write_bytes(b"P5 5 4 255\n" + bytes([128] * 20))  # a 5x4 gray image, written without OpenCV
    code = ("import sys, caffe\n"
            "before = 'cv2' in sys.modules\n"
            f"image = caffe.io.load_image({str(path)!r})\n"
            "print(before, image.shape, round(float(image[0, 0, 0]), 3), 'cv2' in sys.modules)")
    assert _run(code) == "False (4, 5, 3) 0.502 True"


def test_a_lazy_module_reads_attributes_of_the_real_one():
    numpy_later = LazyModule("numpy")
    assert "not imported yet" in repr(numpy_later)
    assert numpy_later.float32 is np.float32
    assert "imported" in repr(numpy_later) and "not" not in repr(numpy_later)
    with pytest.raises(ModuleNotFoundError):
        LazyModule("no_such_module_here").anything
