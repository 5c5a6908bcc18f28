"""What Caffe's three upgrade tools share: read a net or solver definition in an old format, bring
it to the current one (nvcaffe_py.upgrade, as Caffe's upgrade_proto.cpp), write it out. A file
already current is reported and copied, as Caffe's tools do."""
from .. import formats, log, upgrade
from ..proto import caffe_pb2
from . import run_tool, say
from .gflags import GflagsParser

# kind -> (message, needs_upgrade, upgrade)
_KINDS = {
    "net": (caffe_pb2.NetParameter, upgrade.net_needs_upgrade, upgrade.upgrade_net),
    "solver": (caffe_pb2.SolverParameter, upgrade.solver_needs_upgrade, upgrade.upgrade_solver),
}


def upgrade_main(tool, kind, binary, argv) -> int:
    """Run the upgrade tool `tool` for a `kind` ('net' or 'solver') file, text or `binary`."""
    form = "binary" if binary else "text"
    message, needs_upgrade, upgraded = _KINDS[kind]
    parser = GflagsParser(tool, f"Upgrade a {kind} definition ({form} proto) in an old Caffe format to the "
                                f"current one.")
    parser.add_argument("input", metavar="OLD_FILE", help=f"the {kind} definition to upgrade")
    parser.add_argument("output", metavar="NEW_FILE", help="where to write the upgraded definition")

    def run(args):
        read = formats.read_binary if binary else formats.read_text
        param = read(args.input, message())
        if needs_upgrade(param):
            param = upgraded(param, args.input)
        else:
            log.error(f"File already in latest proto format: {args.input}")  # at ERROR, as Caffe's tools
        (formats.write_binary if binary else formats.write_text)(args.output, param)
        say(f"Wrote upgraded {message.DESCRIPTOR.name} {form} proto to {args.output}")
        return 0

    return run_tool(parser, run, argv)
