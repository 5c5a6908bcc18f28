"""Log lines shaped like Caffe's (glog), on stderr, so that Caffe's log parsers and plots read them:

    I1127 03:36:44.123456 12345 solver.py:243] Iteration 100 (12.3 iter/s, 8.1s/100 iters), loss = 0.123

`info`/`warning`/`error` name the caller's file and line, as glog does. GLOG_minloglevel (0 INFO,
1 WARNING, 2 ERROR) silences lower levels, as it does for pycaffe. On a terminal, `progress(text)`
keeps one live status line under the log; in a pipe or file it writes nothing.
"""
import logging
import os
import sys
import time

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


logger = logging.getLogger("nvcaffe_py")
if not logger.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(GlogFormatter())
    logger.addHandler(_handler)
    logger.setLevel(_min_level())  # records still propagate, so that logging's own capture sees them


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
