"""An in-process token bucket per key (a token id, or a client address when the server is open).

Per server process: N server processes behind a load balancer admit up to N times the rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MAX_KEYS = 10_000  # past this, buckets that have refilled completely are forgotten


class TokenBucket:
    """``burst`` requests at once, refilled continuously at ``burst / period`` per second."""

    def __init__(
        self, burst: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.period = period
        self.rate = burst / period
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Takes one request from ``key``'s bucket: 0.0 if allowed, else seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_KEYS:
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        full = [
            key
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
