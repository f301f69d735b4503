"""The Optuna study driver: one trial = resolve a spec, check it, evaluate it, record it.

Trial life cycle:

1. the space is walked through the trial (``TrialChooser``), giving a spec and its digest;
2. a spec already evaluated in this study (same digest) is not evaluated again: its
   values are reused and the trial records ``duplicate_of``;
3. best-practice rules (structural, on the spec) and budgets on cheap metrics (cost,
   predicted latency) give violation amounts, handed to Optuna (``trial.set_constraint``);
4. only a feasible candidate gets expensive metrics (proxies, short training, which
   reports per epoch to the pruner); an infeasible one returns the worst value seen so far
   for those objectives, marked ``imputed``, so samplers learn it is bad without paying.

Each trial stores its full spec JSON, digest, metrics, violations and the package version
as user attributes: the study storage alone is enough to inspect, report and export.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import __version__
from ..constraints import ConstraintSet
from ..evaluators.forward_trace import torch_threads
from ..search_space import Spec, get_preset, list_presets
from ..search_space.space import Space
from .evaluation import Evaluation
from .objectives import Objective, is_cheap
from .trial_chooser import TrialChooser

SAMPLERS = ("tpe", "nsga2", "random", "gp")
PRUNERS = ("none", "median", "hyperband")


@dataclass(frozen=True)
class SearchConfig:
    name: str
    space: Space
    constraints: ConstraintSet
    objectives: tuple[Objective, ...]
    sampler: str = "tpe"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    pruner: str = "none"
    seed: int = 0
    evaluation: Evaluation = Evaluation()
    enqueue_presets: bool = True

    @property
    def metrics(self) -> list[str]:
        """Every metric the objectives and budgets need, cheap ones first."""
        names = [o.metric for o in self.objectives] + self.constraints.metrics
        return sorted(dict.fromkeys(names), key=lambda m: not is_cheap(m))

    @property
    def constraint_names(self) -> list[str]:
        return list(self.constraints.rules) + [b.name for b in self.constraints.budgets]


class _TrialFailureFilter(logging.Filter):
    """Optuna logs a failed trial with its traceback. Ctrl-C is not a failure worth a
    traceback; other errors keep their one-line message (the trial records it too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            if isinstance(record.exc_info[1], KeyboardInterrupt):
                return False
            record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO; our CLI reports progress its own way."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    handlers, failure_filter = logging.getLogger("optuna").handlers, _TrialFailureFilter()
    for handler in handlers:  # records of optuna's child loggers reach these handlers
        handler.addFilter(failure_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(failure_filter)
        optuna.logging.set_verbosity(before)


def make_sampler(config: SearchConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded; worker ``k`` of a parallel run uses ``seed + k``."""
    seed = config.seed + worker
    options = dict(config.sampler_options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if config.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, **options)
        if config.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, **options)
        if config.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False, **options)
        return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1,
                                              max_resource=config.evaluation.training.epochs)
    return optuna.pruners.NopPruner()


def open_study(config: SearchConfig, storage: str | optuna.storages.BaseStorage,
               worker: int = 0, create: bool = True) -> optuna.Study:
    """Create the study (enqueueing the presets that lie in the space) or load it to resume."""
    directions = [o.direction for o in config.objectives]
    sampler, pruner = make_sampler(config, worker), make_pruner(config)
    if not create:
        return optuna.load_study(study_name=config.name, storage=storage, sampler=sampler,
                                 pruner=pruner)
    study = optuna.create_study(study_name=config.name, storage=storage, sampler=sampler,
                                pruner=pruner, directions=directions, load_if_exists=True)
    if config.enqueue_presets and not study.user_attrs.get("presets_enqueued"):
        study.set_user_attr("presets_enqueued", True)
        for name, spec, params in presets_in_space(config.space):
            if _meets_cheap_constraints(config, spec):
                study.enqueue_trial(params, user_attrs={"preset": name})
    return study


def presets_in_space(space: Space) -> list[tuple[str, Spec, dict[str, Any]]]:
    """``(name, spec, parameters)`` of the presets the space contains, AttendNeXt first: it is
    the reference the search must beat. Presets are taken at 224 pixels when the space has it."""
    sizes = space.input_size.values
    size = 224 if 224 in sizes else sizes[-1]
    out = []
    for name in sorted(list_presets(), key=lambda n: n != "attendnext"):
        spec = get_preset(name, num_classes=space.num_classes, input_size=size)
        params = space.params_for(spec)
        if params is not None:
            out.append((name, spec, params))
    return out


def _meets_cheap_constraints(config: SearchConfig, spec: Spec) -> bool:
    """Rules and the budgets on cost and predicted latency (what is known before training)."""
    cs = config.constraints
    metrics = config.evaluation.cheap(spec, [m for m in cs.metrics if is_cheap(m)])
    violations = {**cs.structural(spec), **_budgets(cs, metrics)}
    return all(v <= 0 for v in violations.values())


class TrialObjective:
    """The callable handed to ``study.optimize``."""

    def __init__(self, config: SearchConfig):
        self.config = config
        self.evaluation = config.evaluation

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        config = self.config
        spec = config.space.resolve(TrialChooser(trial))
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("digest", spec.digest)
        trial.set_user_attr("version", __version__)
        twin = _find_twin(trial.study, spec.digest, trial.number)
        if twin is not None:
            return self._reuse(trial, twin)
        try:
            return self._evaluate(trial, spec)
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:  # recorded, then Optuna marks the trial FAIL and goes on
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise

    def _evaluate(self, trial: optuna.Trial, spec: Spec) -> list[float]:
        config, cs = self.config, self.config.constraints
        metrics = self.evaluation.cheap(spec, [m for m in config.metrics if is_cheap(m)])
        violations = cs.structural(spec)
        violations.update(_budgets(cs, metrics))
        feasible = all(v <= 0 for v in violations.values())
        imputed: list[str] = []
        if feasible:
            self._record(trial, metrics, violations, True, [])  # what a pruned trial keeps
            expensive = [m for m in config.metrics if not is_cheap(m)]
            try:
                metrics.update(self.evaluation.expensive(spec, expensive, self._reporter(trial)))
            except optuna.TrialPruned:
                _constrain(trial, config.constraint_names, violations)
                raise
            violations.update(_budgets(cs, metrics))
            feasible = all(v <= 0 for v in violations.values())
        else:
            for objective in config.objectives:
                if objective.metric not in metrics:
                    metrics[objective.metric] = objective.worst(
                        _observed(trial.study, objective.metric))
                    imputed.append(objective.metric)
        self._record(trial, metrics, violations, feasible, imputed)
        _constrain(trial, config.constraint_names, violations)
        return [metrics[o.metric] for o in config.objectives]

    @staticmethod
    def _record(trial: optuna.Trial, metrics: dict[str, float], violations: dict[str, float],
                feasible: bool, imputed: list[str]) -> None:
        trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
        trial.set_user_attr("violations", violations)
        trial.set_user_attr("feasible", feasible)
        trial.set_user_attr("imputed", imputed)

    def _reporter(self, trial: optuna.Trial):
        """Per-epoch accuracy to Optuna's pruner (single objective only, as Optuna allows)."""
        if len(self.config.objectives) > 1 or self.config.pruner == "none":
            return None

        def report(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")
        return report

    def _reuse(self, trial: optuna.Trial, twin: FrozenTrial) -> list[float]:
        trial.set_user_attr("duplicate_of", twin.number)
        for key in ("metrics", "violations", "feasible", "imputed"):
            trial.set_user_attr(key, twin.user_attrs[key])
        _constrain(trial, self.config.constraint_names, twin.user_attrs["violations"])
        if twin.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"same architecture as pruned trial {twin.number}")
        return list(twin.values)


def _budgets(cs: ConstraintSet, metrics: dict[str, float]) -> dict[str, float]:
    """Violations of the budgets whose metric is known so far."""
    return {b.name: b.violation(metrics[b.metric]) for b in cs.budgets if b.metric in metrics}


def _constrain(trial: optuna.Trial, names: list[str], violations: dict[str, float]) -> None:
    """Hand the violations to Optuna's constrained samplers (<= 0 feasible). A budget on an
    expensive metric that was never evaluated (the rules already failed) counts as met."""
    for name in names:
        trial.set_constraint(name, violations.get(name, 0.0))


def _find_twin(study: optuna.Study, digest: str, number: int) -> FrozenTrial | None:
    """An earlier finished trial of the same architecture, if any."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number != number and t.user_attrs.get("digest") == digest and "metrics" in t.user_attrs:
            return t
    return None


def _observed(study: optuna.Study, metric: str) -> list[float]:
    """Values of ``metric`` actually measured (not imputed) on finished trials."""
    return [t.user_attrs["metrics"][metric]
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if metric in t.user_attrs.get("metrics", {}) and metric not in t.user_attrs["imputed"]]


def optimize(study: optuna.Study, config: SearchConfig, n_trials: int | None = None,
             timeout: float | None = None, progress: bool = False) -> None:
    """Run trials until ``n_trials`` more have finished or ``timeout`` seconds have passed.

    A failing evaluation marks its trial FAIL (error recorded) and the search goes on.
    Ctrl-C marks the running trial FAIL and stops; running again resumes the study.
    """
    with torch_threads(config.evaluation.threads):
        study.optimize(TrialObjective(config), n_trials=n_trials, timeout=timeout,
                       catch=(Exception,), show_progress_bar=progress and n_trials is not None)
