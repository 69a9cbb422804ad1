"""Exact, distributed WSOL evaluation: box accuracy, both protocols, pictures.

Takes model outputs and boxes, nothing else.
"""

from .box_accuracy import BoxAccuracy
from .distributed import all_reduce_counts
from .localization import PROTOCOLS, CounterLayout, LocalizationEvaluator
from .pictures import save_panel, save_threshold_curves
from .scoremaps import localization_box, scoremap
from .table import format_table

__all__ = [
    "BoxAccuracy",
    "LocalizationEvaluator",
    "CounterLayout",
    "PROTOCOLS",
    "all_reduce_counts",
    "format_table",
    "localization_box",
    "save_panel",
    "save_threshold_curves",
    "scoremap",
]
