"""plot: a chart of one or more training logs (ours or Caffe's) as PNG, with the chart types of
Caffe's tools/extra/plot_training_log.py (matplotlib, the optional extra `[plot]`):

    nvcaffe plot CHART_TYPE OUT.png LOG [LOG ...]

    0: Test accuracy  vs. Iters          4: Train learning rate  vs. Iters
    1: Test accuracy  vs. Seconds        5: Train learning rate  vs. Seconds
    2: Test loss  vs. Iters              6: Train loss  vs. Iters
    3: Test loss  vs. Seconds            7: Train loss  vs. Seconds

The numbers come from the logs' parse_log tables: "accuracy" and "loss" are the net outputs of
those names (else the first output whose name contains them), the learning rate and the times are
the tables' own columns. Each log is one line, labelled with its file name (without `.log`).
"""
import io
import os

from .. import formats
from ..errors import CaffeError
from . import run_tool, say
from .gflags import GflagsParser
from .parse_log import parse_log

SEPARATOR = "  vs. "
X_FIELDS = {"Iters": "NumIters", "Seconds": "Seconds"}
# y field -> (table, column or the output it names)
Y_FIELDS = {"Test accuracy": ("test", "accuracy"), "Test loss": ("test", "loss"),
            "Train learning rate": ("train", "LearningRate"), "Train loss": ("train", "loss")}
CHART_TYPES = [f"{y}{SEPARATOR}{x}" for y in sorted(Y_FIELDS) for x in sorted(X_FIELDS)]


def _column(rows, wanted, log_path, table):
    """The values of `wanted` in `rows`: that column, else the first output containing its name."""
    if not rows:
        raise CaffeError(f"{log_path}: no {table} rows (no 'Solving' line, or no {table} net output logged)")
    names = list(rows[0])
    name = wanted if wanted in names else next((n for n in names[3:] if wanted in n), None)
    if name is None:
        raise CaffeError(f"{log_path}: the {table} outputs ({', '.join(names[3:])}) have no '{wanted}'")
    return [row[name] for row in rows]


def chart_data(chart_type, log_path):
    """(x values, y values) of one log for chart type `chart_type` (an index of CHART_TYPES)."""
    y_field, x_field = CHART_TYPES[chart_type].split(SEPARATOR)
    table, wanted = Y_FIELDS[y_field]
    rows = dict(zip(("train", "test"), parse_log(log_path)))[table]
    return _column(rows, X_FIELDS[x_field], log_path, table), _column(rows, wanted, log_path, table)


def plot_chart(chart_type, png_path, log_paths):
    """Draw the chart with matplotlib (without a display) and write it to `png_path`."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CaffeError("plot needs matplotlib: pip install 'nvcaffe_py[plot]'") from None
    y_field, x_field = CHART_TYPES[chart_type].split(SEPARATOR)
    figure = Figure()
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for path in log_paths:
        x, y = chart_data(chart_type, path)
        name = os.path.basename(path)
        axes.plot(x, y, label=name[:-len(".log")] if name.endswith(".log") else name, marker=".", linewidth=0.75)
    axes.legend(loc="upper right" if ("loss" in y_field or "learning rate" in y_field) else "lower right")
    axes.set_title(CHART_TYPES[chart_type])
    axes.set_xlabel(x_field)
    axes.set_ylabel(y_field)
    png = io.BytesIO()
    figure.savefig(png, format="png")
    formats.write_atomic(png_path, png.getvalue())


def build_parser():
    kinds = "; ".join(f"{i}: {kind}" for i, kind in enumerate(CHART_TYPES))
    p = GflagsParser("plot", f"Plot training logs as PNG. Chart types: {kinds}.")
    p.add_argument("chart_type", type=int, metavar="CHART_TYPE", help=f"0 to {len(CHART_TYPES) - 1}")
    p.add_argument("png_path", metavar="OUT.png", help="the chart (PNG)")
    p.add_argument("log_paths", metavar="LOG", nargs="+", help="training logs, one line each")
    return p


def plot_command(args) -> int:
    if not 0 <= args.chart_type < len(CHART_TYPES):
        kinds = ", ".join(f"{i}: {kind}" for i, kind in enumerate(CHART_TYPES))
        raise CaffeError(f"{args.chart_type} is not a chart type ({kinds})")
    if not args.png_path.endswith(".png"):
        raise CaffeError(f"'{args.png_path}': the chart is written as PNG; give a path ending in .png")
    missing = [path for path in args.log_paths if not os.path.isfile(path)]
    if missing:
        raise CaffeError(f"{missing[0]}: no such log file")
    plot_chart(args.chart_type, args.png_path, args.log_paths)
    say(f"Wrote {CHART_TYPES[args.chart_type]} to {args.png_path}")
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), plot_command, argv)
