"""Where a study lives: its directory, its Optuna storage, its stored configuration.

Default storage is an SQLite file in ``studies/<name>/study.db``: a standard Optuna
storage, so ``optuna-dashboard sqlite:///studies/<name>/study.db`` opens it. Any Optuna
storage URL works instead (``--storage`` or ``$ATTEND_SEARCH_STORAGE``), PostgreSQL
included, so workers on many machines share one study.

Worker death: trials send a heartbeat; a trial whose worker stopped beating for
``GRACE_SECONDS`` is marked FAIL by the next worker that starts a trial, and its
parameters are queued again once (Optuna's ``RetryHeartbeatStaleTrialCallback``), so a killed
worker loses no architecture and counts nothing twice.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc
import yaml
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from ..explorer import Run, open_study
from .config import StudyConfig, StudyError, read_study
from .ledger import SqlLedger

HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 60
STORAGE_ENV = "ATTEND_SEARCH_STORAGE"


@dataclass(frozen=True)
class StudyPlace:
    name: str
    directory: Path
    url: str


def place(name_or_dir: str, storage: str | None = None, root: str | Path = "studies") -> StudyPlace:
    """Resolve a study argument: a name under ``root``, or a study directory."""
    storage = storage or os.environ.get(STORAGE_ENV) or None
    path = Path(name_or_dir)
    if (path / "study.yaml").is_file() or (path / "study.db").is_file():
        directory, name = path, _stored_name(path)
    else:
        directory, name = Path(root) / name_or_dir, name_or_dir
    url = storage or f"sqlite:///{(directory / 'study.db').as_posix()}"
    return StudyPlace(name, directory, url)


def _stored_name(directory: Path) -> str:
    config = directory / "study.yaml"
    if config.is_file():
        return yaml.safe_load(config.read_text())["name"]
    return directory.name


def storage(url: str, attempts: int = 3) -> RDBStorage:
    """Optuna's RDB storage with heartbeats. Processes that open a fresh database at the same
    moment race to create its tables; the loser retries and finds them made."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(1, attempts + 1):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                store = RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                   grace_period=GRACE_SECONDS,
                                   heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                       max_retry=1))
            if url.startswith("sqlite"):
                sqlalchemy.event.listen(store.engine, "connect", _write_ahead_log)
                store.engine.dispose()   # pooled connections made before the listener go
            return store
        except sqlalchemy.exc.IntegrityError as exc:
            if attempt == attempts:
                raise _cannot_open(url, exc) from None
            time.sleep(0.5 * attempt)
        except Exception as exc:  # bad URL, server down, missing driver
            raise _cannot_open(url, exc) from None
    raise AssertionError("unreachable")


def _write_ahead_log(connection, _record) -> None:
    """SQLite in WAL mode, synced at checkpoints rather than on every commit: a trial writes
    dozens of rows (one per parameter), and a commit that waits for the disk costs
    milliseconds. Readers never block writers. A crash of the machine (not of a worker) may
    lose the last trials, never corrupt the file. WAL needs a local disk, not NFS: studies
    across machines belong on PostgreSQL."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _cannot_open(url: str, exc: Exception) -> StudyError:
    return StudyError(f"cannot open storage {_redact(url)}: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0]}")


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@")[0]:
        user = rest.split("@")[0].split(":")[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return scheme + sep + rest


def create(config: StudyConfig, where: StudyPlace) -> Run:
    """Create the study, or reopen it to resume when its configuration is the same; the
    returned run samples from a stream no earlier run of the study used."""
    where.directory.mkdir(parents=True, exist_ok=True)
    store = storage(where.url)
    optuna.create_study(study_name=config.name, storage=store, load_if_exists=True,
                        directions=[o.direction for o in config.search.objectives])
    run = open_study(config.search, store, _ledger(store, config.name))
    stored = run.study.user_attrs.get("config")
    if stored is None:
        run.study.set_user_attr("config", config.document)
    elif _canonical(stored) != _canonical(config.document):
        raise StudyError(f"study {config.name!r} already exists in {_redact(where.url)} with a "
                         f"different configuration; give the new study another name", path="name")
    write_atomic(where.directory / "study.yaml", yaml.safe_dump(config.document, sort_keys=False))
    return run


def load(where: StudyPlace) -> tuple[StudyConfig, optuna.Study]:
    """An existing study and its configuration, as stored with it, for reading."""
    store = storage(where.url)
    try:
        study = optuna.load_study(study_name=where.name, storage=store)
    except KeyError:
        raise StudyError(f"no study named {where.name!r} in {_redact(where.url)}") from None
    return read_study(study.user_attrs["config"]), study


def join(where: StudyPlace) -> tuple[StudyConfig, Run]:
    """An existing study, joined as one more worker on a fresh sampler stream."""
    config, study = load(where)
    store = study._storage
    return config, open_study(config.search, store, _ledger(store, config.name), create=False)


def _ledger(store: optuna.storages.BaseStorage, name: str) -> SqlLedger:
    rdb = getattr(store, "_backend", store)         # load_study wraps it in a cache
    return SqlLedger(rdb.engine, rdb.get_study_id_from_name(name))


def _canonical(document: dict) -> str:
    return json.dumps(document, sort_keys=True, default=str)


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers never see half a file."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp.name, 0o666 & ~umask)  # as open() would have made it, not tempfile's 0600
    os.replace(tmp.name, path)
