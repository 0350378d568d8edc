"""The sliding-window rate limiter behind every sandbox's 429 and its Retry-After, and the named
endpoint budgets (Zendesk's Update Ticket, incremental exports, ...; Freshdesk's ticket update) built
from it. Endpoint budgets are off unless asked for, so a sandbox behaves as before by default."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass


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

    def reset(self, now: float | None = None) -> int:
        """Seconds until the oldest spend leaves the window (0 when nothing is spent)."""
        if now is None:
            now = time.monotonic()
        with self._lock:
            self._trim(now)
            return max(1, math.ceil(self._spent[0][0] + self.window - now)) if self._spent else 0


@dataclass(frozen=True)
class Limit:
    """One documented endpoint budget: `limit` requests in any `window` seconds."""

    limit: int
    window: float = 60.0


# How a caller switches endpoint limits: off (None/False), the vendor's documented defaults (True), or
# the defaults with some replaced: {name: limit}, {name: (limit, window)} or {name: Limit(...)}.
LimitOption = bool | Mapping[str, "int | tuple[int, float] | Limit"] | None


@dataclass(frozen=True)
class Verdict:
    """What one endpoint budget said about one request, for the 429 and the rate-limit headers."""

    name: str
    admitted: bool
    limit: int
    remaining: int
    retry_after: int  # seconds until a request would be admitted again (0 when admitted)
    reset: int  # seconds until the oldest request in the window leaves it


def resolve_limits(defaults: Mapping[str, Limit], option: LimitOption) -> dict[str, Limit]:
    """The endpoint budgets `option` asks for: none when off, else the defaults with overrides applied."""
    if not option:
        return {}
    limits = dict(defaults)
    if isinstance(option, Mapping):
        for name, value in option.items():
            if name not in defaults:
                raise ValueError(f"unknown endpoint limit {name!r}; known: {', '.join(sorted(defaults))}")
            if isinstance(value, Limit):
                limits[name] = value
            elif isinstance(value, tuple | list):
                limits[name] = Limit(int(value[0]), float(value[1]))
            else:
                limits[name] = Limit(int(value), defaults[name].window)
    return limits


class EndpointLimits:
    """Named endpoint budgets, each a sliding window, or one window per key (per ticket per user).

    Off (no budgets) unless a sandbox is built or reconfigured with them, so every request is admitted
    and nothing is counted. A refused request spends nothing in the budget that refused it; budgets
    checked before it (the account-wide endpoint budget before a per-ticket one) keep the request, as
    a real server counts what it received.
    """

    def __init__(self, limits: Mapping[str, Limit] | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(limits or {})

    def configure(self, limits: Mapping[str, Limit]) -> None:
        """Replace the budgets (and forget what was spent)."""
        with self._lock:
            self.limits = dict(limits)
            self._windows: dict[tuple[str, Hashable], SlidingWindow] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.limits)

    def _window(self, name: str, key: Hashable) -> SlidingWindow:
        with self._lock:
            window = self._windows.get((name, key))
            if window is None:
                limit = self.limits[name]
                window = self._windows[(name, key)] = SlidingWindow(limit.limit, limit.window)
            return window

    def spend(self, name: str, key: Hashable = None, credits: int = 1) -> Verdict | None:
        """Count one request against budget `name` (for `key`); None when that budget is off."""
        if name not in self.limits:
            return None
        window = self._window(name, key)
        now = time.monotonic()
        admitted, remaining, retry_after = window.spend(credits, now)
        return Verdict(name, admitted, window.limit, remaining, retry_after, window.reset(now))

    def check(self, spends: Iterable[tuple[str, Hashable]]) -> tuple[list[Verdict], Verdict | None]:
        """Spend in order until one budget refuses: (every verdict given, the refusal or None)."""
        verdicts: list[Verdict] = []
        for name, key in spends:
            verdict = self.spend(name, key)
            if verdict is None:
                continue
            verdicts.append(verdict)
            if not verdict.admitted:
                return verdicts, verdict
        return verdicts, None
