"""The sliding-window rate limiter behind every sandbox's 429 and its Retry-After."""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class SlidingWindow:
    """Credits spent in the last `window` seconds; per-minute (or per-ten-seconds) limits behave like this.

    A plain request limit is a budget of one credit a request (`admit`).
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._spent: deque[tuple[float, int]] = deque()
        self._total = 0
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - self.window:
            self._total -= self._spent.popleft()[1]

    def spend(self, credits: int, now: float | None = None) -> tuple[bool, int, int]:
        """Spend `credits` if the budget allows: (admitted, remaining, seconds until credits free up)."""
        if now is None:
            now = time.monotonic()
        with self._lock:
            self._trim(now)
            if self._total + credits > self.limit:
                retry_after = max(1, math.ceil(self._spent[0][0] + self.window - now)) if self._spent else 1
                return False, max(0, self.limit - self._total), retry_after
            self._spent.append((now, credits))
            self._total += credits
            return True, self.limit - self._total, 0

    def admit(self, now: float | None = None) -> tuple[bool, int, int]:
        """Take one slot if one is free: (admitted, remaining, seconds until a slot frees)."""
        return self.spend(1, now)

    def remaining(self, now: float | None = None) -> int:
        with self._lock:
            self._trim(time.monotonic() if now is None else now)
            return max(0, self.limit - self._total)
