"""Reading a request's fields (a form's strings or JSON's values) into checked values; each
problem is a CaffeError naming the field and what it takes."""
import math

from ..errors import CaffeError


def text(fields, name, default=""):
    value = fields.get(name)
    return default if value is None or str(value).strip() == "" else str(value).strip()


def integer(fields, name, default=None, low=None, high=None) -> int:
    value = _number(fields, name, default, int)
    return _in_range(name, value, low, high)


def number(fields, name, default=None, low=None, high=None) -> float:
    value = _number(fields, name, default, float)
    if value is not None and not math.isfinite(value):
        raise CaffeError(f"{name} must be a finite number (got '{fields.get(name)}')")
    return _in_range(name, value, low, high)


def choice(fields, name, choices, default=None) -> str:
    value = text(fields, name, default)
    if value is None:
        raise CaffeError(f"give {name}: one of {', '.join(choices)}")
    if value not in choices:
        raise CaffeError(f"{name} must be one of {', '.join(choices)} (got '{value}')")
    return value


def integers(fields, name) -> list[int]:
    """A list of integers given as '1000,2000' (a form) or [1000, 2000] (JSON)."""
    value = fields.get(name) or []
    parts = value.replace(",", " ").split() if isinstance(value, str) else value
    try:
        return [int(str(part)) for part in parts]
    except ValueError:
        raise CaffeError(f"{name} takes whole numbers separated by commas (got '{value}')") from None


def _number(fields, name, default, kind):
    value = fields.get(name)
    if value is None or str(value).strip() == "":
        if default is None:
            raise CaffeError(f"give {name}")
        return default
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value if not isinstance(value, str) else value.strip())
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise CaffeError(f"{name} must be {what} (got '{value}')") from None


def _in_range(name, value, low, high):
    if low is not None and value < low or high is not None and value > high:
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise CaffeError(f"{name} must be {bounds} (got {value})")
    return value
