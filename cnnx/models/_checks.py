"""Argument checks shared by the model constructors: errors name the constructor and the argument."""
from __future__ import annotations

import numbers

__all__ = ["check_num_classes", "check_choice", "check_bool"]


def check_num_classes(fn: str, num_classes) -> int:
    """``num_classes`` must be an int >= 1 (a bool is not an int here)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"{fn}(): num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"{fn}(): num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


def check_choice(fn: str, name: str, value, choices: tuple):
    """``value`` must be one of ``choices``, and of their type (str, or int for numeric choices)."""
    kind = str if isinstance(choices[0], str) else numbers.Integral
    expected = " or ".join(map(repr, choices))
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{fn}(): {name} must be {expected}, got {value!r} ({type(value).__name__})")
    if value not in choices:
        raise ValueError(f"{fn}(): {name} must be {expected}, got {value!r}")
    return value


def check_bool(fn: str, name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}(): {name} must be True or False, got {value!r}")
    return value
