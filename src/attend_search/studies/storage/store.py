"""Where a study lives: its directory, its Optuna storage, its stored configuration.

Default storage is an SQLite file in ``studies/<name>/study.db``: a standard Optuna
storage, so ``optuna-dashboard sqlite:///studies/<name>/study.db`` opens it. Any Optuna
storage URL works instead (``--storage`` or ``$ATTEND_SEARCH_STORAGE``), PostgreSQL
included, so workers on many machines share one study.

Worker death: trials send a heartbeat; a trial whose worker stopped beating for the grace
period (60 s, or ``$ATTEND_SEARCH_HEARTBEAT_GRACE`` seconds) is marked FAIL by the next
worker that starts a trial, and its parameters are queued again once (Optuna's
``RetryHeartbeatStaleTrialCallback``), so a killed worker loses no architecture and counts
nothing twice.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.exc
import yaml
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from ...errors import AttendSearchError, RunStopped
from ...explorer import Run, open_study
from ...explorer.feasibility import require_feasible
from ...explorer.optuna_adapter import backend_of
from ...files import write_atomic
from ...search_space.fields import join as field_path
from ..config import NAME, StudyConfig, StudyError, read_study
from . import sqlite_lock
from .optuna_storage import Storage, TrialCache, index_trials_by_state
from .refine_table import RefineTable
from .sql_ledger import SqlLedger

STORAGE_ENV = "ATTEND_SEARCH_STORAGE"
GRACE_ENV = "ATTEND_SEARCH_HEARTBEAT_GRACE"  # seconds before a silent worker's trial fails
LOCK_TIMEOUT_ENV = "ATTEND_SEARCH_LOCK_TIMEOUT"  # seconds an SQLite write waits for a lock


def _seconds(env: str, default: int) -> int:
    text = os.environ.get(env, str(default))
    if not text.isdigit() or int(text) < 1:
        raise StudyError(f"${env}: {text!r} is not a whole number of seconds (1 or more)")
    return int(text)


@dataclass(frozen=True)
class StudyPlace:
    name: str
    directory: Path
    url: str


def place(name_or_dir: str, storage: str | None = None, root: str | Path = "studies") -> StudyPlace:
    """Resolve a study argument: a name under ``root``, a study directory, or a study file
    (the study it names, under ``root``)."""
    storage = storage or os.environ.get(STORAGE_ENV) or None
    path = Path(name_or_dir)
    if (path / "study.yaml").is_file() or (path / "study.db").is_file():
        directory, name = path, _stored_name(path / "study.yaml")
    elif path.is_file() and path.suffix in (".yaml", ".yml"):  # not a stray file of that name
        name = _stored_name(path)
        directory = Path(root) / name
    elif NAME.fullmatch(name_or_dir):
        directory, name = Path(root) / name_or_dir, name_or_dir
    elif path.is_dir():
        raise StudyError(
            "is a directory but not a study (no study.yaml or study.db in it)", source=name_or_dir
        )
    else:
        raise StudyError(
            "is neither a study name (letters, digits, _ . -) nor a study directory",
            source=name_or_dir,
        )
    return StudyPlace(name, directory, storage or _default_url(directory))


def _default_url(directory: Path) -> str:
    return f"sqlite:///{(directory / 'study.db').as_posix()}"


def _stored_name(config: Path) -> str:
    """The study named in a study file, or its directory's name where it has none."""
    if not config.is_file():
        return config.parent.name
    try:
        name = yaml.safe_load(config.read_text(encoding="utf-8"))["name"]
    except (yaml.YAMLError, UnicodeDecodeError, TypeError, KeyError):
        name = None
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise StudyError(
            "is not a study file or directory this version wrote (no valid name)",
            source=str(config),
        )
    return name


def storage(url: str, attempts: int = 3) -> RDBStorage:
    """Optuna's RDB storage with heartbeats. Processes that open a fresh database at the same
    moment race to create its tables; the loser retries and finds them made."""
    sqlite = url.startswith("sqlite")
    # a server restarted since a pooled connection was made: checked out, it is replaced
    kwargs = (
        {"connect_args": {"timeout": _seconds(LOCK_TIMEOUT_ENV, 60)}}
        if sqlite
        else {"pool_pre_ping": True}
    )
    grace = _seconds(GRACE_ENV, 60)
    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                store = Storage(
                    url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=max(1, grace // 3),
                    grace_period=grace,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                )
            if sqlite:
                sqlalchemy.event.listen(store.engine, "connect", _write_ahead_log)
                sqlalchemy.event.listen(store.engine, "begin", sqlite_lock.begin)
                store.engine.dispose()  # pooled connections made before the listeners go
            return store
        except sqlalchemy.exc.IntegrityError as exc:
            if attempt == attempts:
                raise _cannot_open(url, exc) from None
            time.sleep(0.5 * attempt)
        except Exception as exc:  # bad URL, server down, missing driver, locked
            raise storage_error(exc, url) or _cannot_open(url, exc) from None
    raise AssertionError("unreachable")


def _write_ahead_log(connection, _record) -> None:
    """SQLite in WAL mode, synced at checkpoints rather than on every commit: a trial writes
    dozens of rows (one per parameter), and a commit that waits for the disk costs
    milliseconds. Readers never block writers. A crash of the machine (not of a worker) may
    lose the last trials, never corrupt the file. WAL needs a local disk, not NFS: studies
    across machines belong on PostgreSQL."""
    connection.isolation_level = None  # transactions begin where SQLAlchemy says
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _cannot_open(url: str, exc: Exception) -> StudyError:
    return StudyError(
        f"cannot open storage {redact(url)}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    )


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@")[0]:
        user = rest.split("@")[0].split(":")[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return scheme + sep + rest


def storage_error(exc: BaseException, url: str | None = None) -> AttendSearchError | None:
    """What a database error means for the user, or None when it is not one: a lock held
    by another process (exit 2) or a lost server (exit 1: stop, and resume later)."""
    while exc is not None and not isinstance(exc, sqlalchemy.exc.OperationalError):
        # Optuna wraps it in StorageInternalError; a lost server in the middle of Optuna's
        # _run_trial surfaces as an UnboundLocalError raised while handling it
        exc = exc.__cause__ or exc.__context__
    if exc is None:
        return None
    text = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
    where = f" {redact(url)}" if url else ""
    if re.search(r"database is locked|database table is locked", text):
        return StudyError(
            f"the storage{where} is locked by another process ({text}); wait "
            f"for it, or set ${LOCK_TIMEOUT_ENV} to wait longer"
        )
    return RunStopped(
        f"lost the connection to the storage{where} ({text}); completed trials "
        f"are kept, an unfinished one is failed on the next start: run the same "
        f"command again when the server is back"
    )


def create(config: StudyConfig, where: StudyPlace) -> Run:
    """Create the study, or reopen it to resume when its configuration is the same; the
    returned run samples from a stream no earlier run of the study used. A new study whose
    constraints no spec meets is refused before anything is written, and a study directory
    this call made is removed again if it fails."""
    made = where.directory  # the outermost folder this call creates, if any
    while not made.parent.exists():
        made = made.parent
    made = None if where.directory.exists() else made
    try:
        return _create(config, where)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


def _create(config: StudyConfig, where: StudyPlace) -> Run:
    where.directory.mkdir(parents=True, exist_ok=True)
    store = TrialCache(storage(where.url))
    if config.name not in {s.study_name for s in store.get_all_studies()}:
        require_feasible(config.search)
    study = optuna.create_study(
        study_name=config.name,
        storage=store,
        load_if_exists=True,
        directions=[o.direction for o in config.search.objectives],
    )
    stored = study.user_attrs.get("config")  # compared before open_study claims a stream:
    if stored is None:  # a refused run writes nothing
        study.set_user_attr("config", config.document)
    elif _canonical(stored) != _canonical(config.document):
        changes = _differences(stored, config.document)
        shown = "; ".join(changes[:_CHANGES_SHOWN]) + (
            f"; {len(changes) - _CHANGES_SHOWN} more" if len(changes) > _CHANGES_SHOWN else ""
        )
        raise StudyError(
            f"study {config.name!r} already exists in {redact(where.url)} with a "
            f"different configuration ({shown}); give the new study another name, or "
            f"restore the stored values to resume it",
            path="name",
        )
    run = _open_run(config, store)
    write_atomic(where.directory / "study.yaml", yaml.safe_dump(config.document, sort_keys=False))
    return run


def load(where: StudyPlace) -> tuple[StudyConfig, optuna.Study]:
    """An existing study and its configuration, as stored with it, for reading."""
    if where.url == _default_url(where.directory) and not (where.directory / "study.db").is_file():
        raise StudyError(
            f"no study named {where.name!r} in {where.directory.parent.resolve()} (no "
            f"{where.directory / 'study.db'}; study names are looked up in --root, default "
            f"studies/ of the current folder; see attend-search run)"
        )
    store = TrialCache(storage(where.url))
    try:
        study = optuna.load_study(study_name=where.name, storage=store)
    except KeyError:
        raise StudyError(f"no study named {where.name!r} in {redact(where.url)}") from None
    return read_study(study.user_attrs["config"]), study


def join(where: StudyPlace) -> tuple[StudyConfig, Run]:
    """An existing study, joined as one more worker on a fresh sampler stream."""
    config, study = load(where)
    return config, _open_run(config, study._storage, create=False)


def _open_run(config: StudyConfig, store: TrialCache, create: bool = True) -> Run:
    """A run or worker on the study, its ledger in the study's database, which gets the
    index runs need (:func:`.optuna_storage.index_trials_by_state`)."""
    rdb = backend_of(store)
    index_trials_by_state(rdb.engine)
    ledger = SqlLedger(rdb.engine, rdb.get_study_id_from_name(config.name))
    return open_study(config.search, store, ledger, create=create)


def refine_table(study: optuna.Study, create: bool = False) -> RefineTable:
    """The study's ``refine`` tables (:mod:`.refine_table`), beside Optuna's in its database;
    ``create`` makes them (``refine``), else a study never refined reads as empty."""
    rdb = backend_of(study._storage)
    return RefineTable(rdb.engine, study._study_id, _seconds(GRACE_ENV, 60), create)


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, default=str)


_CHANGES_SHOWN = 5
_ABSENT = object()


def _differences(stored: Any, given: Any, path: str = "") -> list[str]:
    """What a study file changes of the stored configuration, field by field:
    ``seed: 0 stored, 1 in the file`` (the space is compared inlined, so ``space.…``)."""
    if isinstance(stored, dict) and isinstance(given, dict):
        return [
            change
            for key in dict.fromkeys([*stored, *given])
            for change in _differences(
                stored.get(key, _ABSENT), given.get(key, _ABSENT), field_path(path, key)
            )
        ]
    if isinstance(stored, list) and isinstance(given, list) and len(stored) == len(given):
        return [
            c
            for i, (a, b) in enumerate(zip(stored, given))
            for c in _differences(a, b, field_path(path, i))
        ]
    if _canonical(stored) == _canonical(given):
        return []
    return [f"{path}: {_value(stored)} stored, {_value(given)} in the file"]


def _value(value: Any) -> str:
    return "absent" if value is _ABSENT else _canonical(value)
