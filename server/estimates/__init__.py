"""Estimates and cost from history: recorded durations per agent operation, the cost model, reports."""

from server.estimates._costs import BUILT_IN_COSTS, MAX_UNIT_COST, CostModel, price_plan
from server.estimates._recorder import (
    DEFAULT_FLUSH_INTERVAL,
    MIN_SAMPLES,
    DurationRecorder,
    DurationStore,
    OperationStats,
)
from server.estimates._sketch import RELATIVE_ACCURACY, DurationSketch, SketchFormatError

__all__ = [
    # Recorded durations
    "DEFAULT_FLUSH_INTERVAL",
    "MIN_SAMPLES",
    "RELATIVE_ACCURACY",
    "DurationRecorder",
    "DurationSketch",
    "DurationStore",
    "OperationStats",
    "SketchFormatError",
    # Cost
    "BUILT_IN_COSTS",
    "MAX_UNIT_COST",
    "CostModel",
    "price_plan",
]
