"""`import caffe` in a fresh interpreter (the top-level caffe.py shim): a pycaffe script runs
unchanged where BVLC's pycaffe is not installed, and a real pycaffe, when Python finds it first,
is left alone."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nvcaffe_py

# Where nvcaffe_py and caffe.py sit (the checkout, or site-packages): the child finds both there.
ROOT = str(Path(nvcaffe_py.__file__).resolve().parents[1])

PYCAFFE_SCRIPT = """
import numpy as np
import caffe
from caffe import layers as L, params as P
from caffe.proto import caffe_pb2

caffe.set_mode_cpu()
n = caffe.NetSpec()
n.data = L.Input(shape=dict(dim=[2, 1, 8, 8]))
n.conv = L.Convolution(n.data, kernel_size=3, num_output=4, weight_filler=dict(type="xavier"))
n.pool = L.Pooling(n.conv, kernel_size=2, stride=2, pool=P.Pooling.MAX)
with open("net.prototxt", "w") as f:
    f.write(str(n.to_proto()))
net = caffe.Net("net.prototxt", caffe.TEST)
net.blobs["data"].data[...] = np.ones((2, 1, 8, 8))
out = net.forward()
import nvcaffe_py
assert caffe is nvcaffe_py and caffe_pb2 is nvcaffe_py.proto.caffe_pb2
assert isinstance(caffe.io.Transformer, type)
print("pool", out["pool"].shape)
"""


def run_python(cwd, code, pythonpath):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_pycaffe_script_runs_unchanged(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(PYCAFFE_SCRIPT)
    result = run_python(tmp_path, f"exec(open({str(script)!r}).read())", [ROOT])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pool (2, 4, 3, 3)"


def test_a_real_pycaffe_found_first_is_left_alone(tmp_path):
    real = tmp_path / "pycaffe" / "caffe"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL_PYCAFFE = True\n")
    code = textwrap.dedent("""
        import nvcaffe_py
        import caffe
        assert caffe.REAL_PYCAFFE and caffe is not nvcaffe_py
        print("real")
    """)
    result = run_python(tmp_path, code, [str(tmp_path / "pycaffe"), ROOT])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "real"
