"""``refine``'s plan and measured accuracies as tables in the study's own database.

- ``attend_search_refine_plans``: one row per study, the plan every ``refine`` process of the
  study follows (the chosen trials, the rungs, the recipe and the data). The first process
  inserts it; the others, on this machine or another, read it back and must ask for the same.
- ``attend_search_refine``: one row per (trial, rung), inserted by the process that claims
  the training of that trial up to that rung's epochs, and completed with the validation
  top-1 and top-5 once measured. The claim is the primary key, as the ledger's
  (:mod:`.sql_ledger`): of two processes inserting it at once exactly one succeeds, on SQLite
  and PostgreSQL alike, so no run is trained twice.

A claim names its owner (``host/pid``) and carries a heartbeat, renewed while it trains. A
claim with no heartbeat for the grace period (``$ATTEND_SEARCH_HEARTBEAT_GRACE``) is taken
over, as the explorer's ledger takes a failed trial's digest over: a killed process blocks
nothing for long. Heartbeats are stamped and compared with the database's clock, never a
client's, so machines whose clocks disagree judge a claim alike. Only the owner finishes or
renews its claim: one whose claim was taken over (its heartbeats did not reach the storage
for the grace period) learns it from a renewal or its finish that changes no row.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import sqlite_lock

_METADATA = sa.MetaData()
PLANS = sa.Table(
    "attend_search_refine_plans",
    _METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("plan", sa.Text, nullable=False),  # JSON
)
RUNGS = sa.Table(
    "attend_search_refine",
    _METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial", sa.Integer, primary_key=True),  # the trial's number
    sa.Column("rung", sa.Integer, primary_key=True),
    sa.Column("epochs", sa.Integer, nullable=False),  # trained to, in all (not this rung's)
    sa.Column("owner", sa.String(300), nullable=False),  # host/pid of who trains or trained it
    sa.Column("beat", sa.Float, nullable=False),  # the database's Unix time at the last heartbeat
    sa.Column("top1", sa.Float, nullable=True),  # None until measured
    sa.Column("top5", sa.Float, nullable=True),
    sa.Column("seconds", sa.Float, nullable=True),  # training time of this rung's epochs
)


@dataclass(frozen=True)
class Rung:
    """One row: a trial trained to ``epochs`` at ``rung``; ``top1`` None while it trains."""

    trial: int
    rung: int
    epochs: int
    owner: str
    beat: float
    top1: float | None
    top5: float | None
    seconds: float | None
    stale: bool = False  # unfinished, and no heartbeat for the grace period when read

    @property
    def done(self) -> bool:
        return self.top1 is not None


def me() -> str:
    """This process as a claim's owner."""
    return f"{socket.gethostname()}/{os.getpid()}"


class RefineTable:
    """The refine tables of one study (``study_id``) in an Optuna RDB storage's database."""

    def __init__(self, engine: sa.Engine, study_id: int, grace: float, create: bool = False):
        """``create`` makes the tables where missing; without it (``show``, ``report``: a
        reader writes nothing) a study never refined reads as empty."""
        self.engine, self.study_id, self.grace = engine, study_id, grace
        if create:
            try:
                _METADATA.create_all(engine, checkfirst=True)
            except sa.exc.DatabaseError:  # PostgreSQL: another process created them meanwhile
                _METADATA.create_all(engine, checkfirst=True)  # checked again: all there
            self.exists = True
        else:  # read-only: on SQLite, no write lock to wait for nor hold up a search with
            with sqlite_lock.reading():
                self.exists = sa.inspect(engine).has_table(PLANS.name)

    def plan(self, proposed: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The study's plan; with ``proposed``, stored first if the study has none yet."""
        if proposed is not None:
            try:
                with self.engine.begin() as db:
                    db.execute(
                        sa.insert(PLANS).values(study_id=self.study_id, plan=json.dumps(proposed))
                    )
            except IntegrityError:
                pass  # another process's plan came first: read it back
        if not self.exists:
            return None
        with sqlite_lock.reading(), self.engine.connect() as db:
            text = db.execute(
                sa.select(PLANS.c.plan).where(PLANS.c.study_id == self.study_id)
            ).scalar_one_or_none()
        return None if text is None else json.loads(text)

    def replace_plan(self, proposed: dict[str, Any]) -> bool:
        """Store ``proposed`` in place of the study's plan, its rows dropped, where no run
        was measured nor is being trained under it (the first run failed, say); False, and
        nothing changed, otherwise."""
        with self.engine.begin() as db:
            busy = db.execute(
                sa.select(sa.func.count())
                .select_from(RUNGS)
                .where(RUNGS.c.study_id == self.study_id)
                .where(RUNGS.c.top1.is_not(None) | ~self._stale())
            ).scalar_one()
            if busy:
                return False
            db.execute(sa.delete(RUNGS).where(RUNGS.c.study_id == self.study_id))
            db.execute(sa.delete(PLANS).where(PLANS.c.study_id == self.study_id))
            db.execute(sa.insert(PLANS).values(study_id=self.study_id, plan=json.dumps(proposed)))
        return True

    def drop(self) -> int:
        """Drop the study's plan and every row (``refine --restart``); returns the measured
        rows dropped."""
        with self.engine.begin() as db:
            measured = db.execute(
                sa.select(sa.func.count())
                .select_from(RUNGS)
                .where(RUNGS.c.study_id == self.study_id, RUNGS.c.top1.is_not(None))
            ).scalar_one()
            db.execute(sa.delete(RUNGS).where(RUNGS.c.study_id == self.study_id))
            db.execute(sa.delete(PLANS).where(PLANS.c.study_id == self.study_id))
        return measured

    def rungs(self) -> list[Rung]:
        """Every row, by rung and trial."""
        if not self.exists:
            return []
        with sqlite_lock.reading(), self.engine.connect() as db:
            rows = db.execute(
                sa.select(RUNGS, (RUNGS.c.top1.is_(None) & self._stale()).label("stale"))
                .where(RUNGS.c.study_id == self.study_id)
                .order_by(RUNGS.c.rung, RUNGS.c.trial)
            ).all()
        return [
            Rung(
                **{k: v for k, v in row._mapping.items() if k != "study_id"}
                | {"stale": bool(row.stale)}
            )
            for row in rows
        ]

    def claim(self, trial: int, rung: int, epochs: int, owner: str) -> bool:
        """Claim the training of ``trial`` to ``epochs`` at ``rung`` for ``owner``: True if
        ours now (new, or taken over from an owner silent for the grace period)."""
        try:
            with self.engine.begin() as db:
                db.execute(
                    sa.insert(RUNGS).values(
                        study_id=self.study_id,
                        trial=trial,
                        rung=rung,
                        epochs=epochs,
                        owner=owner,
                        beat=self._now(),
                    )
                )
            return True
        except IntegrityError:
            pass
        with self.engine.begin() as db:  # one statement: nobody beats or takes it in between
            taken = db.execute(
                sa.update(RUNGS)
                .where(self._key(trial, rung), RUNGS.c.top1.is_(None), self._stale())
                .values(owner=owner, beat=self._now())
            ).rowcount
        return taken == 1

    def beat(self, owner: str, trial: int, rung: int) -> bool:
        """Renew the heartbeat of ``owner``'s claim of ``trial`` at ``rung``: False where it
        is no longer ``owner``'s (taken over) or no longer unfinished."""
        return self._update_owned(owner, trial, rung, beat=self._now())

    def finish(
        self, trial: int, rung: int, owner: str, scores: dict[str, float], seconds: float
    ) -> bool:
        """Record the measured validation top-1 and top-5 of ``owner``'s claimed run: False
        (nothing written) where the claim was taken over, whose result is then discarded."""
        return self._update_owned(
            owner, trial, rung, top1=scores["val_top1"], top5=scores["val_top5"], seconds=seconds
        )

    def _update_owned(self, owner: str, trial: int, rung: int, **values) -> bool:
        """Set ``values`` on the unfinished row only while ``owner`` holds its claim."""
        with self.engine.begin() as db:
            return (
                db.execute(
                    sa.update(RUNGS)
                    .where(self._key(trial, rung), RUNGS.c.owner == owner)
                    .where(RUNGS.c.top1.is_(None))
                    .values(**values)
                ).rowcount
                == 1
            )

    def release(self, owner: str) -> None:
        """Give up ``owner``'s unfinished claims (an interrupted run), for anyone to take."""
        with self.engine.begin() as db:
            db.execute(
                sa.delete(RUNGS)
                .where(RUNGS.c.study_id == self.study_id, RUNGS.c.owner == owner)
                .where(RUNGS.c.top1.is_(None))
            )

    def _key(self, trial: int, rung: int) -> sa.ColumnElement[bool]:
        return (
            (RUNGS.c.study_id == self.study_id) & (RUNGS.c.trial == trial) & (RUNGS.c.rung == rung)
        )

    def _now(self) -> sa.ColumnElement[float]:
        """The database's clock as Unix seconds (SQLite's ``julianday``: milliseconds, UTC;
        PostgreSQL's ``clock_timestamp()``), evaluated in the statement."""
        if self.engine.dialect.name == "sqlite":
            return (sa.func.julianday("now") - 2440587.5) * 86400.0
        return sa.extract("epoch", sa.func.clock_timestamp())

    def _stale(self) -> sa.ColumnElement[bool]:
        """A claim's heartbeat older than the grace period, by the database's clock."""
        return RUNGS.c.beat < self._now() - self.grace
