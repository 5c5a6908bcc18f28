"""argparse with Caffe's gflags spellings: `-flag x`, `--flag x`, `--flag=x`, `-flag=x`, and for
booleans `-flag`, `--flag=true|false`, `--noflag`.

    parser = GflagsParser("convert_imageset", "...")
    parser.add_flag("resize_height", type=int, default=0, help="...")
    parser.add_bool_flag("shuffle", help="...")
    args = parser.parse_args(argv)
"""
import argparse
import difflib
import sys

_TRUE = ("1", "true", "t", "yes", "y")
_FALSE = ("0", "false", "f", "no", "n")


def parse_bool(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def normalize(argv, bool_flags=()) -> list:
    """gflags spellings -> argparse's: single-dash long flags get a second dash, and a boolean
    flag without a value becomes `--flag=true` (`--noflag`: `--flag=false`), so that it never
    takes the next argument as its value."""
    out = []
    for i, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 and not _is_number(arg):
            arg = "-" + arg
        if arg.startswith("--"):
            name, has_value, _ = arg[2:].partition("=")
            if name in bool_flags and not has_value:
                arg = f"--{name}=true"
            elif name.startswith("no") and name[2:] in bool_flags and not has_value:
                arg = f"--{name[2:]}=false"
        out.append(arg)
    return out


class GflagsParser(argparse.ArgumentParser):
    def __init__(self, prog, description, **kwargs):
        super().__init__(prog=f"nvcaffe {prog}", description=description, allow_abbrev=False, **kwargs)
        self._bool_flags = set()

    def add_flag(self, name, **kwargs):
        return self.add_argument(f"--{name}", **kwargs)

    def add_bool_flag(self, name, default=False, help=None):
        self._bool_flags.add(name)
        return self.add_argument(f"--{name}", type=parse_bool, default=default, metavar="BOOL", help=help)

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        # gflags takes flags anywhere, also between positional arguments.
        parsed, unknown = super().parse_known_intermixed_args(normalize(args, self._bool_flags), namespace)
        if unknown:
            self.error(self._unknown_message(unknown))
        return parsed

    def _unknown_message(self, unknown) -> str:
        """What is wrong with the first unknown argument, with the closest flag for a mistyped one."""
        flags = [name[2:] for action in self._actions for name in action.option_strings if name.startswith("--")]
        for arg in unknown:
            if arg.startswith("-") and not _is_number(arg):
                name = arg.lstrip("-").partition("=")[0]
                close = difflib.get_close_matches(name, flags, n=1, cutoff=0.6)
                hint = f"; did you mean -{close[0]}?" if close else f" (flags: {', '.join('-' + f for f in flags)})"
                return f"unknown flag -{name}{hint}"
        return f"unrecognized arguments: {' '.join(unknown)}"
