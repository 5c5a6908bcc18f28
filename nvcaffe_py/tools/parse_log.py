"""parse_log: a training log (ours or Caffe's) as two CSV tables, LOG.train and LOG.test in
OUTPUT_DIR, with the columns and rows that Caffe's tools/extra/parse_log.py writes:

    NumIters,Seconds,LearningRate,<each net output>     e.g. 500.0,12.25,0.01,0.0813

    nvcaffe parse_log LOGFILE OUTPUT_DIR [--delimiter ,] [--verbose]

Its rules, kept so that both give the same files: reading starts after the line with "Solving"
(whose time is second 0) and after the first "Iteration N"; the year comes from the log file's
change time and advances when the month goes back; a row is one iteration's outputs, and is
written once it has as many columns as the first row (so an unfinished last row is left out);
the first row takes the second row's learning rate, which is logged only after it. Numbers are
written as Python's repr writes them; a table without rows is not written.
"""
import csv
import datetime
import io
import os
import re

from .. import formats
from ..errors import CaffeError
from . import run_tool
from .gflags import GflagsParser

ITERATION = re.compile(r"Iteration (\d+)")
TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def line_time(line, year) -> datetime.datetime:
    """The time stamp of a glog line (`I0210 13:39:22.381027 ...`), read field by field as
    parse_log.py reads it; ValueError for other lines."""
    fields = line.split()
    if len(fields) < 2:
        raise ValueError("not a glog line")
    head, clock = fields[0], fields[1]
    hms, _, micro = clock.rpartition(".")
    hour, minute, second = (int(part) for part in hms.split(":"))
    return datetime.datetime(year, int(head[1:3]), int(head[3:]), hour, minute, second, int(micro))


class _Table:
    """The rows of one table (train or test) as parse_log.py builds them."""

    def __init__(self, output):
        self.output = output
        self.rows, self.row = [], None

    def read(self, line, iteration, seconds, rate):
        match = self.output.search(line)
        if match:
            if self.row is None or self.row["NumIters"] != iteration:
                if self.row is not None:
                    self.rows.append(self.row)
                self.row = {"NumIters": iteration, "Seconds": seconds, "LearningRate": rate}
            self.row[match.group(2)] = float(match.group(3))
        if self.row is not None and self.rows and len(self.row) == len(self.rows[0]):
            self.rows.append(self.row)
            self.row = None

    def finished(self):
        if len(self.rows) > 1:
            self.rows[0]["LearningRate"] = self.rows[1]["LearningRate"]
        return self.rows


def parse_log(path):
    """(train rows, test rows) of the log at `path`, each row a dict in column order."""
    year = datetime.datetime.fromtimestamp(os.path.getctime(path)).year
    train, test = _Table(TRAIN_OUTPUT), _Table(TEST_OUTPUT)
    iteration, rate = -1, float("nan")
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            start = _start_time(lines, year, path)
            last = start
            for line in lines:
                found = ITERATION.search(line)
                if found:
                    iteration = float(found.group(1))
                if iteration == -1:
                    continue
                try:
                    when = line_time(line, year)
                    if when.month < last.month:  # the log ran into a new year
                        year += 1
                        when = line_time(line, year)
                except ValueError:  # not a log line (a traceback, a resumed run's banner)
                    continue
                last = when
                seconds = (when - start).total_seconds()
                found = LEARNING_RATE.search(line)
                if found:
                    rate = float(found.group(1))
                train.read(line, iteration, seconds, rate)
                test.read(line, iteration, seconds, rate)
    except OSError as exc:
        raise CaffeError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return train.finished(), test.finished()


def _start_time(lines, year, path):
    """The time of the "Solving" line, reading `lines` up to it; None (and no rows) without one."""
    for number, line in enumerate(lines, 1):
        if "Solving" in line:
            try:
                return line_time(line, year)
            except ValueError:
                raise CaffeError(f"{path}:{number}: the 'Solving' line has no glog time stamp") from None
    return None


def csv_text(rows, delimiter=",") -> str:
    """The rows as parse_log.py's csv.DictWriter writes them (excel dialect: CRLF line ends)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), dialect=csv.excel, delimiter=delimiter)
    writer.writeheader()
    for row in rows:
        extra = set(row) - set(rows[0])
        if extra:
            raise CaffeError(f"the row of iteration {row['NumIters']:g} has outputs the first row lacks: "
                             f"{', '.join(sorted(extra))}")
        writer.writerow(row)
    return out.getvalue()


def save_csv_files(log_path, output_dir, train_rows, test_rows, delimiter=",", verbose=False):
    """OUTPUT_DIR/<log name>.train and .test (each only when it has rows)."""
    for suffix, rows in ((".train", train_rows), (".test", test_rows)):
        filename = os.path.join(output_dir, os.path.basename(log_path) + suffix)
        if not rows:
            if verbose:
                print(f"Not writing {filename}; no lines to write")
            continue
        formats.write_atomic(filename, csv_text(rows, delimiter).encode())
        if verbose:
            print(f"Wrote {filename}")


def build_parser():
    p = GflagsParser("parse_log", "Parse a Caffe training log into two CSV files containing training and "
                                  "testing information.")
    p.add_argument("logfile_path", metavar="LOGFILE", help="the log (nvcaffe's or Caffe's)")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="where to write LOGFILE.train and LOGFILE.test")
    p.add_bool_flag("verbose", help="say which files are written")
    p.add_flag("delimiter", default=",", help="the column delimiter (default ',')")
    return p


def parse_command(args) -> int:
    if not os.path.isdir(args.output_dir):
        raise CaffeError(f"output directory '{args.output_dir}' does not exist")
    train_rows, test_rows = parse_log(args.logfile_path)
    save_csv_files(args.logfile_path, args.output_dir, train_rows, test_rows, args.delimiter, args.verbose)
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), parse_command, argv)
