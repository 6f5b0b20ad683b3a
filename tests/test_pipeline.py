"""The chain runner: single hits (the tracker's path) and batches give the same outcome and the same counts."""

import pytest

from collector.events import Hit
from collector.pipeline import SAMPLE_EVERY, Chain


def chain() -> Chain:
    def tag(hit):
        hit.country = "DE"

    def drop_bots(hit):
        return "bot_ua" if hit.user_agent == "bot" else None

    def name_it(hit):
        hit.browser = "Firefox"

    return Chain([("tag", tag), ("drop_bots", drop_bots), ("name_it", name_it)])


def hits():
    return [Hit(user_agent="bot" if i % 3 == 0 else "Mozilla") for i in range(3 * SAMPLE_EVERY)]


def test_one_at_a_time_equals_a_batch():
    one, many = chain(), chain()
    singles = hits()
    outcomes = [one.run([hit]) for hit in singles]
    batch = many.run(hits())
    assert [len(o.kept) for o in outcomes] == [0 if i % 3 == 0 else 1 for i in range(len(singles))]
    assert sum(len(o.kept) for o in outcomes) == len(batch.kept) == 2 * SAMPLE_EVERY
    assert [reason for o in outcomes for _, reason in o.dropped] == [r for _, r in batch.dropped]
    assert all(h.browser == "Firefox" and h.country == "DE" for o in outcomes for h in o.kept)
    assert all(h.browser is None and h.country == "DE" for o in outcomes for h, _ in o.dropped)
    # every hit is counted by every step it reached, timed or not; time is kept for single hits too
    assert one.calls == many.calls == {"tag": 3 * SAMPLE_EVERY, "drop_bots": 3 * SAMPLE_EVERY,
                                       "name_it": 2 * SAMPLE_EVERY}
    assert all(seconds > 0 for seconds in one.seconds.values())


def test_an_unknown_drop_reason_is_a_bug_on_both_paths():
    bad = Chain([("oops", lambda hit: "because")])
    with pytest.raises(ValueError, match="unknown drop reason"):
        bad.run([Hit()])
    with pytest.raises(ValueError, match="unknown drop reason"):
        bad.run([Hit(), Hit()])
