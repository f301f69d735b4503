"""Study files: the YAML a researcher writes, read into a :class:`SearchConfig`.

A study is stored *self-contained*: the space is inlined into the document kept in the
Optuna study's attributes, so a worker on another machine needs only the storage URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..constraints import read_constraints
from ..errors import AttendSearchError
from ..explorer import PRUNERS, SAMPLERS, Evaluation, Objective, SearchConfig, Training
from ..explorer.metrics import DIRECTIONS, kind_of
from ..explorer.metrics import check_metric as _check_metric
from ..explorer.samplers import read_choice
from ..search_space.fields import Fields, join, parse_yaml, read_user_file
from ..search_space.space import load_space, read_space

SCHEMA = "attend-search/study/v1"
DEFAULT_STUDY = "default"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # whole names: fullmatch


class StudyError(AttendSearchError):
    """A study file is malformed or names something that does not exist."""


@dataclass(frozen=True)
class StudyConfig:
    search: SearchConfig
    document: dict[str, Any]  # self-contained (space inlined), as stored with the study

    @property
    def name(self) -> str:
        return self.search.name


def load_study_file(path: str | Path | None) -> StudyConfig:
    """A study YAML file; ``None`` for the built-in default study."""
    if path is None:
        text = (resources.files(__package__) / "default.yaml").read_text()
        source, base = "<built-in default study>", Path.cwd()
    else:
        p = Path(path)
        text, source, base = read_user_file(p, StudyError, "study file"), str(p), p.parent
    data = parse_yaml(text, source, StudyError)
    try:
        return read_study(data, base)
    except AttendSearchError as exc:
        raise exc.located(source)


def read_study(data: Any, base: Path | None = None) -> StudyConfig:
    """Parse a study document; a ``space`` given by path is resolved against ``base``."""
    f = Fields(data, "", StudyError)
    schema = f.str("schema", SCHEMA)
    if schema != SCHEMA:
        raise f.fail("schema", f"unsupported schema {schema!r}, expected {SCHEMA!r}")
    name = f.str("name")
    if not NAME.fullmatch(name):
        raise f.fail("name", f"{name!r} is not a valid study name (letters, digits, _ . -)")
    space_ref = f.raw("space", "attendnext")
    space = _read_space(space_ref, base)
    constraints = read_constraints(f.raw("constraints", None))
    objectives = tuple(_read_objective(o) for o in f.items("objectives", min_len=1))
    if len({o.metric for o in objectives}) != len(objectives):
        raise f.fail("objectives", "an objective metric appears twice")
    sampler, options = read_choice(f, "sampler", SAMPLERS, "tpe")
    pruner, pruner_options = read_choice(f, "pruner", PRUNERS, "none")
    evaluation = _read_evaluation(f.sub("evaluation", {}), f.int("seed", 0, lo=0))
    search = SearchConfig(
        name=name,
        space=constraints.narrow(space),
        constraints=constraints,
        objectives=objectives,
        sampler=sampler,
        sampler_options=options,
        pruner=pruner,
        pruner_options=pruner_options,
        seed=evaluation.seed,
        evaluation=evaluation,
        enqueue_presets=f.bool("presets", True),
    )
    for budget in constraints.budgets:
        _metric(budget.metric, budget.where)
    f.done()
    document = {**data, "schema": SCHEMA, "space": space.raw}
    return StudyConfig(search, document)


def _read_space(ref: Any, base: Path | None):
    if isinstance(ref, dict):
        return read_space(ref, "<inline space>")
    if not isinstance(ref, str):
        raise StudyError("expected a space name, a path or a mapping", path="space")
    path = Path(ref)
    if base is not None and not path.is_absolute() and (base / path).is_file():
        path = base / path
    try:
        return load_space(path if path.is_file() else ref)
    except AttendSearchError as exc:
        if exc.source is None:
            exc.path = "space"
        raise


def _metric(metric: str, path: str) -> str:
    try:
        return _check_metric(metric)
    except AttendSearchError as exc:
        # the file and field of a file the metric names (a fit, a device profile), if any
        raise StudyError(str(exc), path=path) from None


def _read_objective(f: Fields) -> Objective:
    metric = _metric(f.str("metric"), join(f.path, "metric"))
    objective = Objective(metric, f.choice("direction", DIRECTIONS, kind_of(metric).direction))
    f.done()
    return objective


def _read_evaluation(f: Fields, seed: int) -> Evaluation:
    t = f.sub("training", {})
    d = Training()
    training = Training(
        dataset=t.str("dataset", d.dataset),
        epochs=t.int("epochs", d.epochs, lo=1, hi=10_000),
        batch_size=t.int("batch_size", d.batch_size, lo=2, hi=65_536),
        input_size=t.int("input_size", d.input_size, lo=8, hi=2048)
        if t.raw("input_size", d.input_size) is not None
        else None,
        device=t.choice("device", ("cpu", "cuda"), d.device),
    )
    t.done()
    evaluation = Evaluation(
        proxy_batch_size=f.int("proxy_batch_size", 16, lo=2, hi=4096),
        seed=seed,
        training=training,
        threads=f.int("threads", 1, lo=1, hi=256),
    )
    f.done()
    return evaluation
