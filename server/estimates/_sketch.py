"""A streaming quantile sketch of durations: DDSketch (relative-error buckets), persisted as bytes.

Why DDSketch (the `ddsketch` package, Datadog's reference implementation) rather than a
t-digest or a fixed histogram: its error is *relative* to the quantile (1% here: a true p95 of
2.00 s reads between 1.98 s and 2.02 s), the same at 5 ms and at 5 min, sketches merge exactly
(replicas and restarts add up without loss), and its size grows only with the logarithm of the
range (a few hundred bytes for durations between 1 ms and a minute).

Serialization is ours, not the package's protobuf (whose round trip drops sum, min and max):
a small JSON document of the sparse non-empty buckets, versioned, read back through the
package's public `add(value, weight)` at each bucket's representative value, which maps back to
the same bucket.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping

__all__ = ["RELATIVE_ACCURACY", "DurationSketch", "SketchFormatError"]

RELATIVE_ACCURACY = 0.01
"""The sketch's guarantee: each quantile within 1% of the true value (of the same rank)."""

_FORMAT = 1
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
"""The mapping DDSketch(relative_accuracy=RELATIVE_ACCURACY) uses: value ↔ bucket index."""
_MIN_SECONDS = 1e-6
"""Durations below a microsecond are recorded as a microsecond (a zero has no log bucket)."""
_MAX_BUCKETS = 4096
"""A stored sketch with more buckets than this is refused as corrupt (1% buckets from 1 µs to a
year take about 2,100)."""


class SketchFormatError(ValueError):
    """Stored bytes are not a sketch this module wrote."""


class DurationSketch:
    """Durations in seconds: count, sum, min, max and quantiles within RELATIVE_ACCURACY."""

    def __init__(self) -> None:
        self._sketch = DDSketch(relative_accuracy=RELATIVE_ACCURACY)
        self._buckets: dict[int, float] = {}
        self.count = 0
        """Durations recorded."""
        self.sum = 0.0
        """Their sum in seconds."""
        self.min = math.inf
        self.max = 0.0

    def add(self, seconds: float, weight: int = 1) -> None:
        """Records a duration (non-finite or negative ones are ignored: no clock gives them)."""
        if not math.isfinite(seconds) or seconds < 0 or weight <= 0:
            return
        value = max(seconds, _MIN_SECONDS)
        self._sketch.add(value, weight)
        key = self._key(value)
        self._buckets[key] = self._buckets.get(key, 0.0) + weight
        self.count += weight
        self.sum += seconds * weight
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)

    @staticmethod
    def _key(value: float) -> int:
        # The bucket index of the sketch's own log mapping, so stored buckets are exactly its own.
        return int(_MAPPING.key(value))

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 ≤ q ≤ 1) in seconds, clamped to [min, max]; None when empty."""
        if self.count == 0 or not 0.0 <= q <= 1.0:
            return None
        value = self._sketch.get_quantile_value(q)
        if value is None:
            return None
        return float(min(max(value, self.min), self.max))

    def merge(self, other: DurationSketch) -> None:
        """Adds every duration `other` recorded (exact: the buckets add up)."""
        if other.count == 0:
            return
        self._sketch.merge(other._sketch)
        for key, weight in other._buckets.items():
            self._buckets[key] = self._buckets.get(key, 0.0) + weight
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def to_bytes(self) -> bytes:
        """A compact, versioned encoding (JSON of the sparse buckets)."""
        document = {
            "v": _FORMAT,
            "alpha": RELATIVE_ACCURACY,
            "n": self.count,
            "sum": self.sum,
            "min": self.min if self.count else 0.0,
            "max": self.max,
            "b": [[k, w] for k, w in sorted(self._buckets.items())],
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DurationSketch:
        """Reads what `to_bytes` wrote.

        Raises:
            SketchFormatError: the bytes are not such a sketch.
        """
        try:
            document: Any = json.loads(data)
            if not isinstance(document, dict) or document.get("v") != _FORMAT:
                raise SketchFormatError("not a version-1 duration sketch")
            if document.get("alpha") != RELATIVE_ACCURACY:
                raise SketchFormatError(f"a sketch of accuracy {document.get('alpha')!r}, not {RELATIVE_ACCURACY}")
            buckets = document["b"]
            if not isinstance(buckets, list) or len(buckets) > _MAX_BUCKETS:
                raise SketchFormatError("bad buckets")
            sketch = cls()
            for key, weight in buckets:
                if not isinstance(key, int) or not isinstance(weight, int | float) or not weight > 0:
                    raise SketchFormatError("bad bucket")
                value = _MAPPING.value(key)
                sketch._sketch.add(value, weight)
                sketch._buckets[key] = float(weight)
            sketch.count = int(document["n"])
            sketch.sum = float(document["sum"])
            sketch.min = float(document["min"]) if sketch.count else math.inf
            sketch.max = float(document["max"])
        except SketchFormatError:
            raise
        except (ValueError, KeyError, TypeError) as error:
            raise SketchFormatError(f"unreadable sketch: {error}") from None
        if sketch.count != round(sum(sketch._buckets.values())):
            raise SketchFormatError("the count does not match the buckets")
        return sketch
