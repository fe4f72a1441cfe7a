"""The credits ledger: a free daily allowance per user (reset at 00:00 UTC), spent first, then granted credits.

A job holds credits when it is accepted (`hold`); on completion it is charged for what it produced and the
rest of its hold comes back (`settle`, once per job however often it is called). A hold is checked and
written in one write-locked transaction, so however many submissions race for the last credits, the holds
never exceed the balance and the balance never goes below zero. Time comes from the caller (`now`), so the
daily reset can be tested.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import bindparam, func, select

from boothline.errors import StageError
from boothline.service.accounts import find_user
from boothline.service.store import Hold, Store, User


@dataclass(frozen=True)
class Balance:
    available: int  # what new jobs may hold now
    held: int  # set aside for jobs not yet finished
    daily_left: int  # of today's free allowance (before holds)
    granted: int  # granted credits left (before holds)
    resets_at: datetime  # when the daily allowance is next full again

    def as_dict(self) -> dict:
        return {**asdict(self), "resets_at": self.resets_at.isoformat()}


class InsufficientCredits(StageError):
    def __init__(self, needed: int, balance: Balance):
        self.needed, self.balance = needed, balance
        super().__init__(f"this job needs {needed} credits; {balance.available} are available "
                         f"({balance.held} held by running jobs), the daily allowance resets at "
                         f"{balance.resets_at.isoformat()}")


def next_reset(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(timezone.utc).date() + timedelta(days=1), time(), timezone.utc)


def _roll_day(user: User, now: datetime) -> None:
    today = now.astimezone(timezone.utc).date().isoformat()
    if user.daily_day != today:
        user.daily_day, user.daily_used = today, 0


def _held(user_id):
    return select(func.coalesce(func.sum(Hold.amount), 0)).where(Hold.user_id == user_id, Hold.charged.is_(None))


# `/v1/me` is polled: its read is one statement, built once.
BALANCE_READ = select(User.daily_credits, User.daily_used, User.daily_day, User.granted_credits,
                      _held(User.id).scalar_subquery()).where(User.id == bindparam("user_id"))


def _tally(daily_credits: int, daily_used: int, daily_day: str | None, granted: int, held: int,
           now: datetime) -> Balance:
    today = now.astimezone(timezone.utc).date().isoformat()
    daily_left = daily_credits - (daily_used if daily_day == today else 0)
    return Balance(daily_left + granted - held, held, daily_left, granted, next_reset(now))


def _balance(session, user: User, now: datetime) -> Balance:
    held = session.scalar(_held(user.id))
    return _tally(user.daily_credits, user.daily_used, user.daily_day, user.granted_credits, held, now)


def balance(store: Store, user_id: int, now: datetime) -> Balance:
    with store.reading() as session:
        return _tally(*session.execute(BALANCE_READ, {"user_id": user_id}).one(), now)


def hold(store: Store, user_id: int, job_id: str, amount: int, now: datetime) -> Balance:
    """Set `amount` credits aside for `job_id`, or raise InsufficientCredits (nothing is written then)."""
    with store.writing() as session:
        user = session.scalar(select(User).where(User.id == user_id).with_for_update())
        current = _balance(session, user, now)
        if amount > current.available:
            raise InsufficientCredits(amount, current)
        session.add(Hold(user_id=user_id, job_id=job_id, amount=amount, created_at=now))
        session.flush()
        return _balance(session, user, now)


def settle(store: Store, job_id: str, used: int, now: datetime) -> Balance:
    """Charge `job_id` for `used` credits (at most its hold) and release the rest; a second call changes nothing."""
    with store.writing() as session:
        held = session.scalar(select(Hold).where(Hold.job_id == job_id).with_for_update())
        user = session.get(User, held.user_id)
        if held.charged is None:
            charge = max(0, min(used, held.amount))
            _roll_day(user, now)
            from_daily = min(charge, user.daily_credits - user.daily_used)
            user.daily_used += from_daily
            user.granted_credits -= charge - from_daily
            held.charged, held.settled_at = charge, now
            session.flush()
        return _balance(session, user, now)


def grant(store: Store, name: str, credits: int) -> int:
    """Add `credits` to user `name`'s granted credits (negative takes them back, down to 0); the new total."""
    with store.writing() as session:
        user = find_user(session, name)
        user.granted_credits = max(0, user.granted_credits + credits)
        return user.granted_credits
