"""The generic runner for enhancer chains.

A step is a function (or an object with `__call__`) that takes one `Hit`,
fills in what it is named for, and returns None — or a drop reason from
`events.DROP_REASONS` to reject the hit. `Chain.run` applies the steps to a
batch in order, stops at the first drop for each hit, and keeps each step's
time under its own name so a slow step shows up in /metrics.

A step may also offer `many(hits) -> [(index, reason), ...]`: the same work
for a whole batch at once (one loop, per-batch lookups), returning the drops in
index order; it must leave every hit exactly as calling the step on each in
turn would (tests/test_batch_fast.py holds each against that). Batches of
more than one hit use it; a single hit always takes `__call__`.

A single hit (the tracker's path) is timed on one run in `SAMPLE_EVERY`, and
that time counted `SAMPLE_EVERY` times: two clock reads per step per request
cost more than most steps do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from collector.events import DROP_REASONS, Hit

Step = Callable[[Hit], "str | None"]
SAMPLE_EVERY = 8


@dataclass
class Outcome:
    kept: list[Hit] = field(default_factory=list)
    dropped: list[tuple[Hit, str]] = field(default_factory=list)


class Chain:
    def __init__(self, steps: Iterable[tuple[str, Step]]):
        self.steps = list(steps)
        self.seconds: dict[str, float] = {name: 0.0 for name, _ in self.steps}
        self.calls: dict[str, int] = {name: 0 for name, _ in self.steps}
        self._singles = 0

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.steps]

    def run(self, hits: list[Hit]) -> Outcome:
        if len(hits) == 1:
            self._singles += 1
            if self._singles % SAMPLE_EVERY:
                return self._run_one(hits[0])
        out = Outcome()
        live = hits
        clock = time.perf_counter
        for name, step in self.steps:
            if not live:
                break
            started = clock()
            many = getattr(step, "many", None) if len(live) > 1 else None
            if many is not None:
                survivors = live
                drops = many(live)
                if drops:
                    gone = set()
                    for index, reason in drops:
                        if reason not in DROP_REASONS:
                            raise ValueError(f"step {name} returned unknown drop reason {reason!r}")
                        out.dropped.append((live[index], reason))
                        gone.add(index)
                    survivors = [hit for index, hit in enumerate(live) if index not in gone]
                self.seconds[name] += clock() - started
                self.calls[name] += len(live)
                live = survivors
                continue
            survivors = []
            for hit in live:
                reason = step(hit)
                if reason is None:
                    survivors.append(hit)
                else:
                    if reason not in DROP_REASONS:
                        raise ValueError(f"step {name} returned unknown drop reason {reason!r}")
                    out.dropped.append((hit, reason))
            self.seconds[name] += (clock() - started) * (SAMPLE_EVERY if len(hits) == 1 else 1)
            self.calls[name] += len(live)
            live = survivors
        out.kept = live if live is not hits else list(live)  # never the caller's own list
        return out

    def _run_one(self, hit: Hit) -> Outcome:
        calls = self.calls
        for name, step in self.steps:
            calls[name] += 1
            reason = step(hit)
            if reason is not None:
                if reason not in DROP_REASONS:
                    raise ValueError(f"step {name} returned unknown drop reason {reason!r}")
                return Outcome([], [(hit, reason)])
        return Outcome([hit], [])
