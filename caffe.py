"""`import caffe` where BVLC's pycaffe is not installed: nvcaffe_py under Caffe's name, so that a
pycaffe script runs unchanged. A real pycaffe wins whenever Python finds it first: on PYTHONPATH
(ahead of site-packages), or as a `caffe/` package beside this file (a package before a module);
this file is then never read, and installing or removing nvcaffe_py never touches pycaffe's files.

While Python imports this module, it replaces itself in sys.modules with nvcaffe_py, and every
loaded nvcaffe_py.X becomes caffe.X too (caffe.proto.caffe_pb2, caffe.io, caffe.net_spec, ...),
so a script's `import caffe.io` finds the module already loaded rather than a second copy of it.
"""
import sys

import nvcaffe_py

for _name, _module in list(sys.modules.items()):
    if _name == "nvcaffe_py" or _name.startswith("nvcaffe_py."):
        sys.modules["caffe" + _name[len("nvcaffe_py"):]] = _module
