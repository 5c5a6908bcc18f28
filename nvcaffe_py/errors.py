"""The one exception type for bad user input (prototxt, weights, shapes, flags).

The CLI prints these as a single line; anything else is a bug and keeps its traceback.
"""


class CaffeError(Exception):
    """A problem with the user's files or arguments, described in one line."""


class InvalidValueError(CaffeError, ValueError):
    """Bad input that pycaffe reports as a ValueError (a BlobProto whose values do not fit its
    shape, a mean that does not fit the net's input): scripts catch it as either."""
