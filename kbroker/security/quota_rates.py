"""The measurements behind client quotas (``kbroker.security.quotas``) and connection and
replication throttles: Kafka's ``Rate`` over a ``SampledStat`` (``quota.window.num`` samples of
``quota.window.size.seconds``), the token bucket of controller mutation quotas, and the sensor
that holds one (user, client-id) tag pair's usage against its bound."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

Clock = Callable[[], float]  # milliseconds


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


def round_half_up(x: float) -> int:
    """Java's Math.round."""
    return math.floor(x + 0.5)


class _Sample:
    __slots__ = ("value", "event_count", "start_ms", "last_event_ms")

    def __init__(self, now: float) -> None:
        self.value = 0.0
        self.event_count = 0
        self.start_ms = now
        self.last_event_ms = now

    def reset(self, now: float) -> None:
        self.value = 0.0
        self.event_count = 0
        self.start_ms = now
        self.last_event_ms = now


class Rate:
    """Kafka's ``Rate`` (per second) over a ``WindowedSum``: ``samples`` windows of ``window_ms``,
    plus one overlapping sample kept, as Kafka 4.4's SampledStat."""

    __slots__ = ("samples", "window_ms", "_samples", "_current")

    def __init__(self, samples: int, window_ms: float) -> None:
        self.samples = samples
        self.window_ms = window_ms
        self._samples: list[_Sample] = []
        self._current = 0

    def record(self, value: float, now: float) -> None:
        if not self._samples:
            self._samples.append(_Sample(now))
        sample = self._samples[self._current]
        if now - sample.start_ms >= self.window_ms:
            self._current = (self._current + 1) % (self.samples + 1)
            if self._current >= len(self._samples):
                sample = _Sample(now)
                self._samples.append(sample)
            else:
                sample = self._samples[self._current]
                sample.reset(now)
        sample.value += value
        sample.event_count += 1
        sample.last_event_ms = now

    def _purge(self, now: float) -> None:
        expire = self.samples * self.window_ms
        for sample in self._samples:
            if now - sample.last_event_ms >= expire:
                sample.reset(now)

    def window_size(self, now: float) -> float:
        """The time the rate is computed over, in ms (Rate.windowSize)."""
        self._purge(now)
        if not self._samples:
            self._samples.append(_Sample(now))
        oldest = min(s.start_ms for s in self._samples)
        elapsed = now - oldest
        full = int(elapsed // self.window_ms)
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return max(elapsed, 1.0)

    def measure(self, now: float) -> float:
        """The rate per second."""
        return self.rate_and_window(now)[0]

    def rate_and_window(self, now: float) -> tuple[float, float]:
        """The rate per second and the window it is over (ms), in one pass over the samples: what
        Kafka's Rate.measure and Rate.windowSize give at ``now`` (each purges, then sums or finds
        the oldest sample)."""
        expire = self.samples * self.window_ms
        total = 0.0
        oldest = math.inf
        for sample in self._samples:
            if now - sample.last_event_ms >= expire:
                sample.reset(now)
            total += sample.value
            if sample.start_ms < oldest:
                oldest = sample.start_ms
        if not self._samples:
            self._samples.append(_Sample(now))
            oldest = now
        window_ms = self.window_ms
        elapsed = now - oldest
        full = int(elapsed // window_ms)
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * window_ms
        window = max(elapsed, 1.0)
        return total / (window / 1000.0), window


class Avg:
    """Kafka's ``Avg`` over a ``SampledStat``: the mean of the values recorded in the samples still
    live (``samples`` windows of ``window_ms``, the same rotation and expiry as ``Rate``), NaN when
    there are none (Avg.combine with no events)."""

    __slots__ = ("_window",)

    def __init__(self, samples: int, window_ms: float) -> None:
        self._window = Rate(samples, window_ms)

    def record(self, value: float, now: float) -> None:
        self._window.record(value, now)

    def measure(self, now: float) -> float:
        window = self._window
        window._purge(now)
        count = sum(s.event_count for s in window._samples)
        return sum(s.value for s in window._samples) / count if count else math.nan


# The broker's own metrics config, which Kafka's throttle-time sensors use (they are added without a
# MetricConfig of their own): ``metrics.num.samples`` and ``metrics.sample.window.ms`` at their
# defaults, so a throttle-time average covers the last 30-60 s.
METRICS_NUM_SAMPLES = 2
METRICS_SAMPLE_WINDOW_MS = 30_000.0


class TokenBucket:
    """Kafka's ``TokenBucket`` (controller mutations): ``bound`` tokens a second, at most
    ``samples * window`` seconds' worth; recording takes tokens, possibly below zero."""

    __slots__ = ("samples", "window_ms", "tokens", "last_ms")

    def __init__(self, samples: int, window_ms: float) -> None:
        self.samples = samples
        self.window_ms = window_ms
        self.tokens = 0.0
        self.last_ms: float | None = None  # Kafka starts at time 0: the first refill fills the bucket

    def _refill(self, bound: float, now: float) -> None:
        burst = self.samples * (self.window_ms / 1000.0) * bound
        if self.last_ms is None:
            self.tokens = burst
        else:
            self.tokens = min(burst, self.tokens + bound * (now - self.last_ms) / 1000.0)
        self.last_ms = now

    def measure(self, bound: float, now: float) -> float:
        self._refill(bound, now)
        return self.tokens

    def record(self, bound: float, value: float, now: float) -> None:
        self._refill(bound, now)
        burst = self.samples * (self.window_ms / 1000.0) * bound
        self.tokens = min(burst, self.tokens - value)


class Sensor:
    """The usage of one (user, client-id) tag pair against its bound (None: no quota applies)."""

    __slots__ = ("tags", "stat", "bound", "last_record_ms", "throttle_total_ms", "throttle_count", "throttle_time")

    def __init__(self, tags: tuple[str, str], stat: Rate | TokenBucket, bound: float | None, now: float) -> None:
        self.tags = tags
        self.stat = stat
        self.bound = bound
        self.last_record_ms = now
        # Kafka's throttle-time sensor: the mean throttle of the responses throttled in the last
        # 30-60 s (its ``throttle-time`` metric); and, for counters, their sum and count since start
        self.throttle_time = Avg(METRICS_NUM_SAMPLES, METRICS_SAMPLE_WINDOW_MS)
        self.throttle_total_ms = 0
        self.throttle_count = 0
