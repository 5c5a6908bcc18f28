"""`import caffe` where BVLC's pycaffe is not installed: nvcaffe_py under Caffe's name, so that a
pycaffe script runs unchanged. A real pycaffe wins whenever Python finds it first: on PYTHONPATH
(ahead of site-packages), or as a `caffe/` package beside this file (a package before a module);
this file is then never read, and installing or removing nvcaffe_py never touches pycaffe's files.
"""
import nvcaffe_py

nvcaffe_py.become_caffe()
