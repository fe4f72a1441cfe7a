"""The credits ledger: daily allowance first, holds that never overdraw under races, a daily reset."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from boothline.service import credits
from boothline.service.accounts import create_user
from boothline.service.credits import InsufficientCredits
from boothline.service.store import open_store

MORNING = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
NEXT_DAY = datetime(2026, 12, 2, 0, 0, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    return open_store(None, tmp_path / "service")


def test_holds_spend_the_daily_allowance_then_granted_credits(store):
    user = create_user(store, "alice", 10).user_id
    credits.grant(store, "alice", 5)
    assert credits.balance(store, user, MORNING).available == 15
    after = credits.hold(store, user, "job-1", 12, MORNING)
    assert (after.available, after.held) == (3, 12)
    settled = credits.settle(store, "job-1", 12, MORNING)
    assert (settled.available, settled.daily_left, settled.granted, settled.held) == (3, 0, 3, 0)


def test_a_job_is_charged_for_what_it_produced_and_the_rest_comes_back(store):
    user = create_user(store, "bob", 10).user_id
    credits.hold(store, user, "job-1", 8, MORNING)
    assert credits.settle(store, "job-1", 3, MORNING).available == 7
    assert credits.settle(store, "job-1", 8, MORNING).available == 7  # settled once only
    credits.hold(store, user, "job-2", 7, MORNING)
    assert credits.settle(store, "job-2", 0, MORNING).available == 7  # a failed job: the whole hold back


def test_a_hold_beyond_the_balance_is_refused_with_the_balance_and_reset_time(store):
    user = create_user(store, "carol", 4).user_id
    with pytest.raises(InsufficientCredits) as refused:
        credits.hold(store, user, "job-1", 5, MORNING)
    assert refused.value.balance.available == 4
    assert refused.value.balance.resets_at == datetime(2026, 12, 2, tzinfo=timezone.utc)
    assert "needs 5 credits; 4 are available" in str(refused.value)
    assert credits.balance(store, user, MORNING).held == 0  # nothing written


def test_twenty_racing_submissions_for_the_last_five_credits_hold_at_most_five(store):
    user = create_user(store, "dave", 5).user_id

    def submit(i):
        try:
            credits.hold(store, user, f"job-{i}", 1, MORNING)
            return True
        except InsufficientCredits:
            return False

    with ThreadPoolExecutor(20) as pool:
        accepted = sum(pool.map(submit, range(20)))
    assert accepted == 5
    final = credits.balance(store, user, MORNING)
    assert final.available == 0 and final.held == 5


def test_the_daily_allowance_resets_at_midnight_utc(store):
    user = create_user(store, "erin", 10).user_id
    credits.hold(store, user, "job-1", 10, MORNING)
    credits.settle(store, "job-1", 10, MORNING)
    assert credits.balance(store, user, MORNING).available == 0
    assert credits.balance(store, user, NEXT_DAY).available == 10
    credits.hold(store, user, "job-2", 10, NEXT_DAY)
    assert credits.settle(store, "job-2", 10, NEXT_DAY).available == 0
