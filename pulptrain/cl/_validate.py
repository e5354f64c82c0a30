"""Argument checks shared by the cl modules."""

import numpy as np


def check_int(value, name, minimum):
    """``int(value)`` when value is an integer (not a bool) >= minimum; ValueError naming it otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)
