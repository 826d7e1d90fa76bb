"""Adaptation methods. Importing this package registers every built-in method in ``METHODS``."""
from medrival.methods.base import METHODS, MethodSpec, Predictions
from medrival.methods import linear_probe, zero_shot  # noqa: F401  (registration side effects)

__all__ = ["METHODS", "MethodSpec", "Predictions"]
