"""Login throttling: at most N failed attempts per 15 minutes per client address and per account.

Counting failures per address stops one client guessing many accounts;
counting per account stops many addresses guessing one. A success clears the
account's count (not the address's, so one valid account cannot reset a
guessing client). Memory is bounded: old entries are pruned as it grows.
"""

from __future__ import annotations

import time
from collections import deque

WINDOW = 15 * 60
MAX_KEYS = 50_000


class LoginThrottle:
    def __init__(self, attempts: int, window: float = WINDOW, clock=time.monotonic):
        self.attempts = max(1, int(attempts))
        self.window = window
        self.clock = clock
        self.failures: dict[str, deque] = {}

    def _recent(self, key: str, now: float) -> deque:
        q = self.failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def wait(self, *keys: str) -> float:
        """0 when an attempt may be made, else seconds until one may."""
        now = self.clock()
        waits = [q[0] + self.window - now for key in keys if len(q := self._recent(key, now)) >= self.attempts]
        return max(waits) if waits else 0.0

    def fail(self, *keys: str) -> None:
        now = self.clock()
        if len(self.failures) > MAX_KEYS:
            self.failures = {k: q for k, q in self.failures.items() if q and q[-1] > now - self.window}
        for key in keys:
            self.failures.setdefault(key, deque()).append(now)

    def clear(self, key: str) -> None:
        self.failures.pop(key, None)
