"""Log lines shaped like Caffe's (glog), on stderr, so that Caffe's log parsers and plots read them:

    I1127 03:36:44.123456 12345 solver.py:243] Iteration 100 (12.3 iter/s, 8.1s/100 iters), loss = 0.123

`info`/`warning`/`error` name the caller's file and line, as glog does. GLOG_minloglevel (0 INFO,
1 WARNING, 2 ERROR) silences lower levels, as it does for pycaffe. `logging_to_dir(dir)` also
writes every line to a file there, as glog's -log_dir does: `<program>.<host>.<user>.log.INFO.
<date>-<time>.<pid>`, with the link `<program>.INFO` to the newest. pycaffe's
`caffe.init_log(level, stderr)` and `caffe.log(message)` are `init_log` and this module itself,
called (see the end of the file). On a terminal, `progress(text)` keeps one live status line under
the log; in a pipe or file it writes nothing.
"""
import contextlib
import getpass
import logging
import os
import socket
import sys
import tempfile
import time
import types

from .errors import CaffeError

_LETTERS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E", logging.CRITICAL: "F"}
_GLOG_LEVELS = {0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR, 3: logging.CRITICAL}
_PROGRESS_INTERVAL_S = 0.1


def number(value) -> str:
    """A float as C++ streams print it by default (6 significant digits), as Caffe's log shows."""
    return f"{float(value):.6g}"


class GlogFormatter(logging.Formatter):
    def format(self, record):
        stamp = time.localtime(record.created)
        micros = int((record.created % 1) * 1e6)
        return (f"{_LETTERS.get(record.levelno, 'I')}{stamp.tm_mon:02d}{stamp.tm_mday:02d} "
                f"{stamp.tm_hour:02d}:{stamp.tm_min:02d}:{stamp.tm_sec:02d}.{micros:06d} "
                f"{record.process:5d} {record.filename}:{record.lineno}] {record.getMessage()}")


class _Progress:
    """The live status line: redrawn in place with a carriage return, erased before log lines."""

    def __init__(self):
        self.shown = False
        self.last = 0.0

    def show(self, text, force=False):
        stream = sys.stderr
        if not _is_terminal(stream):
            return
        now = time.monotonic()
        if not force and now - self.last < _PROGRESS_INTERVAL_S:
            return
        self.last = now
        stream.write("\r" + text + "\x1b[K")
        stream.flush()
        self.shown = True

    def clear(self, stream):
        if self.shown:
            stream.write("\r\x1b[K")
            self.shown = False


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_progress = _Progress()
_progress_listeners = []


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (so redirections and test capture work)."""

    def emit(self, record):
        try:
            stream = sys.stderr
            _progress.clear(stream)
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001  (logging must never break training)
            self.handleError(record)


def _min_level() -> int:
    try:
        return _GLOG_LEVELS.get(int(os.environ.get("GLOG_minloglevel", "0")), logging.CRITICAL)
    except ValueError:
        return logging.INFO


class _FileHandler(logging.FileHandler):
    """glog's log file: a header, then every line at or above the minimum level."""

    def __init__(self, path):
        super().__init__(path, mode="a", encoding="utf-8")  # a second command in the same second adds to it
        now = time.localtime()
        self.stream.write(f"Log file created at: {time.strftime('%Y/%m/%d %H:%M:%S', now)}\n"
                          f"Running on machine: {socket.gethostname()}\n"
                          f"Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n")
        self.stream.flush()


logger = logging.getLogger("nvcaffe_py")
if not logger.handlers:
    logger.addHandler(_StderrHandler())
    logger.handlers[0].setFormatter(GlogFormatter())
    logger.setLevel(_min_level())  # records still propagate, so that logging's own capture sees them
_stderr_handler = logger.handlers[0]


def _open_log_file(directory, program) -> _FileHandler:
    """A new log file in `directory`, attached to the logger, with the link `<program>.INFO` to it."""
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{program}.{socket.gethostname()}.{getpass.getuser()}.log.INFO.{stamp}.{os.getpid()}"
        handler = _FileHandler(os.path.join(directory, name))
        link = os.path.join(directory, f"{program}.INFO")
        temporary_link = f"{link}.{os.getpid()}.tmp"
        os.symlink(name, temporary_link)
        os.replace(temporary_link, link)  # the newest log wins, atomically
    except OSError as exc:
        raise CaffeError(f"cannot write the log to '{directory}': {exc.strerror or exc}") from None
    handler.setFormatter(GlogFormatter())
    logger.addHandler(handler)
    return handler


@contextlib.contextmanager
def logging_to_dir(directory, program="nvcaffe"):
    """Within the block, also write the log to a new file in `directory`, as glog's -log_dir:
    `<program>.<host>.<user>.log.INFO.<date>-<time>.<pid>`, and point `<program>.INFO` at it."""
    handler = _open_log_file(directory, program)
    try:
        yield handler.baseFilename
    finally:
        logger.removeHandler(handler)
        handler.close()


def init_log(level=None, stderr=None):
    """pycaffe's caffe.init_log([level[, stderr]]) (glog's InitGoogleLogging): `level` is glog's
    minloglevel (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL). stderr=True logs to stderr only;
    stderr=False logs to a file in GLOG_log_dir (else the temporary directory, as glog) and shows
    only errors on stderr; left out, a file is written where GLOG_log_dir is set, besides stderr."""
    if level is not None:
        logger.setLevel(_GLOG_LEVELS.get(int(level), logging.CRITICAL))
    directory = os.environ.get("GLOG_log_dir")
    if stderr is False:
        directory = directory or tempfile.gettempdir()
        _stderr_handler.setLevel(logging.ERROR)
    if stderr is not True and directory and not any(isinstance(h, _FileHandler) for h in logger.handlers):
        _open_log_file(directory, _program_name())  # kept for the rest of the process, as glog's


def _program_name() -> str:
    """The running script's name, as glog names its files; 'python' for `python -c` and the REPL."""
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    return name if name and not name.startswith("-") else "python"


def info(message):
    logger.info(message, stacklevel=2)


def warning(message):
    logger.warning(message, stacklevel=2)


def error(message):
    logger.error(message, stacklevel=2)


def progress(text, force=False):
    """Show `text` as the live status line (terminals only; at most ~10 redraws a second)."""
    _progress.show(text, force)


def end_progress():
    _progress.clear(sys.stderr)


def listen_to_progress(callback):
    """Also call callback(done, total) at every step of every ProgressMeter, wherever stderr goes
    (`nvcaffe serve` shows a dataset build's progress this way). Returns a function that stops it."""
    _progress_listeners.append(callback)
    return lambda: _progress_listeners.remove(callback)


def duration(seconds) -> str:
    """A duration for people: 45s, 3m05s, 2h07m."""
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class ProgressMeter:
    """The live status line of a job of `total` steps, with its rate and time left:

        meter = ProgressMeter(2000, "iter")
        meter.show(done, f"Iteration {i}/2000", ", loss = 0.12")
        # Iteration 120/2000 (14.2 iter/s, ETA 2m12s), loss = 0.12
    """

    def __init__(self, total, unit):
        self.total, self.unit = total, unit
        self._start = time.perf_counter()

    def show(self, done, head, tail=""):
        elapsed = time.perf_counter() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = duration((self.total - done) / rate) if rate > 0 else "?"
        progress(f"{head} ({rate:.3g} {self.unit}/s, ETA {eta}){tail}", force=done >= self.total)
        for listener in _progress_listeners:
            listener(done, self.total)


class _CallableModule(types.ModuleType):
    """pycaffe has `caffe.log(message)`, a function, where this package has its log module: calling
    the module logs the message at INFO, so both spellings work (`caffe.log("x")`, `log.info("x")`)."""

    def __call__(self, message):
        logger.info(message, stacklevel=2)


sys.modules[__name__].__class__ = _CallableModule
