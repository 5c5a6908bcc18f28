"""upgrade_solver_proto_text: a solver prototxt with the legacy `solver_type` enum rewritten with
`type`, as Caffe's tool.

    nvcaffe upgrade_solver_proto_text OLD_solver.prototxt NEW_solver.prototxt
"""
from .upgrade_proto import upgrade_main


def main(argv=None) -> int:
    return upgrade_main("upgrade_solver_proto_text", "solver", binary=False, argv=argv)
