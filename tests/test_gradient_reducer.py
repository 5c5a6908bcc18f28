"""The GradientReducer's bucket plan: a parameter's bucket starts after the backward of the lowest
layer holding it (a shared parameter waits for every layer sharing it), small ones together; the
Solver callbacks it hangs on."""
from google.protobuf import text_format

import nvcaffe_py as caffe
from nvcaffe_py.proto import caffe_pb2
from nvcaffe_py.scaleout.gradient_reducer import bucket_plan
from solver_helpers import workdir, write_solver  # noqa: F401  (workdir: the fixture)

NET = """
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 } } }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "shared" } param { name: "shared_b" }
        inner_product_param { num_output: 4 } }
layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" inner_product_param { num_output: 4 } }
layer { name: "c" type: "InnerProduct" bottom: "b" top: "c" param { name: "shared" } param { name: "shared_b" }
        inner_product_param { num_output: 4 } }
layer { name: "d" type: "InnerProduct" bottom: "c" top: "d" inner_product_param { num_output: 300 } }
"""


def test_buckets_follow_the_backward_and_wait_for_shared_parameters():
    net = caffe.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), caffe.TRAIN)
    index = net.layer_index
    blobs = {name: net.layer_dict[name].blobs for name in ("a", "b", "d")}
    # d's weights (300 x 4 floats) are a bucket of their own at bytes=4096; b's wait with d's bias
    # until a, where the shared parameters (also c's) are final too.
    plan = bucket_plan(net, bucket_bytes=4096)
    assert plan == {index("d"): [[blobs["d"][1], blobs["d"][0]]],
                    index("a"): [[blobs["b"][1], blobs["b"][0], blobs["a"][1], blobs["a"][0]]]}
    # One byte per bucket: every layer's parameters alone, c's (shared) at a.
    plan = bucket_plan(net, bucket_bytes=1)
    assert plan == {index("d"): [[blobs["d"][1], blobs["d"][0]]], index("b"): [[blobs["b"][1], blobs["b"][0]]],
                    index("a"): [[blobs["a"][1], blobs["a"][0]]]}


def test_solver_callbacks_run_around_every_iteration(workdir):  # noqa: F811
    solver = caffe.get_solver(write_solver(workdir, "s.prototxt", 'type: "SGD"', max_iter=3))
    calls = []
    solver.add_callback(lambda: calls.append("start"), lambda: calls.append(f"ready {solver.iter}"))
    solver.step(2)
    assert calls == ["start", "ready 0", "start", "ready 1"]
