"""The explorer's ledger (sampler streams, digest claims) as a table in the study's database.

One row per key, unique per study: ``stream:<k>`` for a run's sampler stream, ``digest:<hex>``
for an architecture claimed by a trial. Atomicity comes from the primary key: of two
workers inserting the same key at once, the database lets exactly one succeed, on SQLite
and PostgreSQL alike. A claim is an index lookup, whatever the study's size.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import sqlite_lock

_METADATA = sa.MetaData()
CLAIMS = sa.Table(
    "attend_search_claims",
    _METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("trial_id", sa.Integer, nullable=True),
)


class SqlLedger:
    """:class:`attend_search.explorer.Ledger` in the SQL database of an Optuna RDB storage."""

    def __init__(self, engine: sa.Engine, study_id: int):
        self.engine, self.study_id = engine, study_id
        _METADATA.create_all(engine, checkfirst=True)

    def new_stream(self) -> int:
        with sqlite_lock.reading(), self.engine.connect() as db:
            taken = db.execute(
                sa.select(sa.func.count())
                .select_from(CLAIMS)
                .where(CLAIMS.c.study_id == self.study_id, CLAIMS.c.key.like("stream:%"))
            ).scalar_one()
        stream = taken
        while not self._insert(f"stream:{stream}", None):
            stream += 1
        return stream

    def claim(self, digest: str, trial_id: int) -> int:
        key = f"digest:{digest}"
        if self._insert(key, trial_id):
            return trial_id
        return self._owner(key)

    def take_over(self, digest: str, old: int, new: int) -> int:
        key = f"digest:{digest}"
        with self.engine.begin() as db:
            db.execute(
                sa.update(CLAIMS)
                .where(
                    CLAIMS.c.study_id == self.study_id,
                    CLAIMS.c.key == key,
                    CLAIMS.c.trial_id == old,
                )
                .values(trial_id=new)
            )
        return self._owner(key)

    def _insert(self, key: str, trial_id: int | None) -> bool:
        try:
            with self.engine.begin() as db:
                db.execute(
                    sa.insert(CLAIMS).values(study_id=self.study_id, key=key, trial_id=trial_id)
                )
            return True
        except IntegrityError:
            return False

    def _owner(self, key: str) -> int:
        with sqlite_lock.reading(), self.engine.connect() as db:
            return db.execute(
                sa.select(CLAIMS.c.trial_id).where(
                    CLAIMS.c.study_id == self.study_id, CLAIMS.c.key == key
                )
            ).scalar_one()
