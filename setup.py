"""Build step: compile proto/caffe.proto into nvcaffe_py/proto/caffe_pb2.py with grpcio-tools.

The generated module is written into the source tree (and ignored by git) so that both a regular
install and an editable install (`pip install -e .`) find it.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def compile_caffe_proto():
    from grpc_tools import protoc

    out_dir = os.path.join(HERE, "nvcaffe_py", "proto")
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{os.path.join(HERE, 'proto')}",
        f"--python_out={out_dir}",
        os.path.join(HERE, "proto", "caffe.proto"),
    ])
    if status != 0:
        raise RuntimeError("protoc failed to compile proto/caffe.proto")


class BuildPyWithProto(build_py):
    def run(self):
        compile_caffe_proto()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProto})
