"""The one exception type for bad user input (prototxt, weights, shapes, flags).

The CLI prints these as a single line; anything else is a bug and keeps its traceback.
"""


class CaffeError(Exception):
    """A problem with the user's files or arguments, described in one line."""
