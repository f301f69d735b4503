"""The Optuna study driver: one trial = resolve a spec, check it, evaluate it, record it.

Trial life cycle:

1. the space is walked through the trial (the sampler's encoding, see :mod:`.samplers`),
   giving a spec and its digest;
2. the digest is claimed in the study's ledger: a proposal that repeats an architecture
   another trial holds (evaluated, or being evaluated right now in any worker) is drawn
   again, up to 20 times, and the trial records how many ``redraws`` it took; a repeat that
   remains is not evaluated again: its result is reused (waited for, if need be) and the
   trial records ``duplicate_of``;
3. best-practice rules (structural, on the spec) and budgets on cheap metrics (cost,
   predicted latency) give violation amounts, handed to Optuna as the trial's constraints;
4. only a feasible candidate gets expensive metrics (proxies, short training, which
   reports per epoch to the pruner); an infeasible one gets the worst value this run has
   seen for those objectives, marked ``imputed``, so samplers learn it is bad without paying.

Each trial stores one :class:`~.record.TrialRecord` (spec, digest, metrics, violations,
feasibility, sampler stream, version): the study storage alone is enough to inspect, report
and export.
"""

from __future__ import annotations

import logging
import math
import re
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import __version__, interrupts
from ..constraints import ConstraintSet
from ..errors import RunStopped
from ..search_space import Spec, get_preset, list_presets
from ..search_space.space import Space
from .deadline import deadline
from .evaluation import Evaluation
from .ledger import Ledger, MemoryLedger, stream_seed
from .metrics import Objective, is_cheap
from .optuna_adapter import (
    CONSTRAINTS_KEY,
    is_enqueued,
    params_written_together,
    save_attrs,
    storage_of,
    trial_id,
)
from .record import KEY, TrialRecord, record_of
from .samplers import SAMPLERS, make_pruner, make_sampler
from .stopwatch import Stopwatch
from .trial_chooser import FullSpaceChooser, TrialChooser


@dataclass(frozen=True)
class SearchConfig:
    name: str
    space: Space
    constraints: ConstraintSet
    objectives: tuple[Objective, ...]
    sampler: str = "tpe"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    pruner: str = "none"
    pruner_options: dict[str, Any] = field(default_factory=dict)
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


@dataclass(frozen=True)
class Run:
    """One run or worker on a study: its sampler stream and the ledger it shares."""

    study: optuna.Study
    config: SearchConfig
    ledger: Ledger
    stream: int


class _TrialFailureFilter(logging.Filter):
    """Optuna logs a failed trial twice: with its traceback, then "Trial N failed with value
    None". Ctrl-C is not a failure worth either (the command says it was interrupted); other
    errors keep their one-line messages (the trial records the error too), and their
    traceback when ``tracebacks`` (``--debug``)."""

    _FAILED = re.compile(r"Trial (\d+) failed")

    def __init__(self, tracebacks: bool):
        super().__init__()
        self.tracebacks = tracebacks
        self.interrupted: set[str] = set()  # numbers of the trials Ctrl-C stopped

    def filter(self, record: logging.LogRecord) -> bool:
        failed = self._FAILED.match(record.getMessage())
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.interrupted.add(failed and failed[1])
            return False
        if failed and failed[1] in self.interrupted:
            return False
        if record.exc_info and not self.tracebacks:
            record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def quiet_optuna(tracebacks: bool = False) -> Iterator[None]:
    """Optuna logs every trial at INFO; our CLI reports progress its own way."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    handlers = logging.getLogger("optuna").handlers
    failure_filter = _TrialFailureFilter(tracebacks)
    for handler in handlers:  # records of optuna's child loggers reach these handlers
        handler.addFilter(failure_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(failure_filter)
        optuna.logging.set_verbosity(before)


def open_study(
    config: SearchConfig,
    storage: str | optuna.storages.BaseStorage,
    ledger: Ledger | None = None,
    create: bool = True,
) -> Run:
    """Create the study (enqueueing the presets that lie in the space) or load it, with a
    sampler on a stream of the ledger that no earlier run of the study has used."""
    ledger = ledger or MemoryLedger()
    stream = ledger.new_stream()
    sampler = make_sampler(config.sampler, config.sampler_options, stream_seed(config.seed, stream))
    pruner = make_pruner(config.pruner, config.pruner_options, config.evaluation.training.epochs)
    if not create:
        study = optuna.load_study(
            study_name=config.name, storage=storage, sampler=sampler, pruner=pruner
        )
        return Run(study, config, ledger, stream)
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        directions=[o.direction for o in config.objectives],
        load_if_exists=True,
    )
    if config.enqueue_presets and not study.user_attrs.get("presets_enqueued"):
        study.set_user_attr("presets_enqueued", True)
        for name, spec, params in presets_in_space(config.space):
            if _meets_cheap_constraints(config, spec):
                study.enqueue_trial(params, user_attrs={"preset": name})
    return Run(study, config, ledger, stream)


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


def cheap_violations(
    config: SearchConfig, spec: Spec, clock: Stopwatch | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """``(cheap metrics, violations)``: the rules and the budgets on cost and predicted
    latency, what is known before any proxy or training."""
    cs = config.constraints
    metrics = config.evaluation.cheap(spec, [m for m in config.metrics if is_cheap(m)], clock)
    return metrics, {**cs.structural(spec), **cs.budget_violations(metrics)}


def _meets_cheap_constraints(config: SearchConfig, spec: Spec) -> bool:
    return all(v <= 0 for v in cheap_violations(config, spec)[1].values())


class TrialObjective:
    """The callable handed to ``study.optimize``. It counts the trials that fail in a row
    and stops the study at ``max_failures``: one failure is a bad candidate, a streak is a
    bug (a broken evaluator, a missing dependency) that would fail every trial left."""

    #: how long a trial waits for another worker evaluating the same architecture
    WAIT_SECONDS = 120.0
    #: proposals drawn again, at most, while they repeat an architecture (then it is reused);
    #: the second half parameter by parameter (:meth:`_propose`)
    MAX_REDRAWS = 20

    def __init__(self, run: Run, max_failures: int = 5, trial_timeout: float | None = None):
        self.config, self.ledger, self.stream = run.config, run.ledger, run.stream
        self.evaluation = run.config.evaluation
        self.full_space = SAMPLERS[run.config.sampler].full_space
        self.worst = _worst_measured(run.study, run.config.objectives)
        self.max_failures, self.trial_timeout = max_failures, trial_timeout
        self.failures_in_a_row, self.last_traceback = 0, ""

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        try:
            values = self._trial(trial)
        except KeyboardInterrupt:
            raise
        except optuna.TrialPruned:
            self.failures_in_a_row = 0
            raise
        except Exception:
            self.failures_in_a_row += 1
            self.last_traceback = traceback.format_exc()
            if self.failures_in_a_row >= self.max_failures:
                trial.study.stop()
            raise
        self.failures_in_a_row = 0
        return values

    def _trial(self, trial: optuna.Trial) -> float | list[float]:
        clock = Stopwatch()
        with clock("resolve"):  # redraws and their claims included
            spec, owner, redraws = self._propose(trial)
        base = TrialRecord(
            spec=spec.to_dict(),
            digest=spec.digest,
            version=__version__,
            stream=self.stream,
            preset=trial.user_attrs.get("preset"),
            redraws=redraws,
        )
        with clock("claim"):
            twin = self._twin(trial, spec.digest, owner)
        if twin is not None:
            return self._reuse(trial, replace(base, seconds=dict(clock.seconds)), twin)
        try:
            with deadline(self.trial_timeout):
                return self._evaluate(trial, spec, base, clock)
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:  # recorded, then Optuna marks the trial FAIL and goes on
            _save(
                trial,
                replace(base, error=f"{type(exc).__name__}: {exc}", seconds=dict(clock.seconds)),
            )
            raise

    def _propose(self, trial: optuna.Trial) -> tuple[Spec, int, int]:
        """``(spec, owner of its digest, redraws)``. A proposal whose architecture another
        trial already holds (evaluated, or being evaluated by any worker) is drawn again, up
        to :attr:`MAX_REDRAWS` times, before its parameters are written: a repeat would cost
        a trial of the budget and teach the sampler nothing. Presets are taken as they are.

        The first half of the redraws ask the sampler's own proposal again; the rest draw
        parameter by parameter. A converged NSGA-II population breeds its own members again
        whatever the draw (10,000 trials on ``bench_search.py --long``: 7.7 redraws a trial
        and 11% repeats left over the last thousand); its independent draws are random, an
        escape from the population that its selection keeps only if it is good."""
        mine, redraws = trial_id(trial), 0
        with params_written_together(trial) as draw:  # the sampler answers each suggestion
            while True:
                chooser = (
                    FullSpaceChooser(trial, self.config.space)
                    if self.full_space
                    else TrialChooser(trial)
                )
                spec = self.config.space.resolve(chooser)
                owner = self.ledger.claim(spec.digest, mine)
                if owner == mine or redraws == self.MAX_REDRAWS or is_enqueued(trial):
                    return spec, owner, redraws
                redraws += 1
                draw.again(independent=redraws > self.MAX_REDRAWS // 2)

    def _twin(self, trial: optuna.Trial, digest: str, owner: int) -> FrozenTrial | None:
        """The finished trial whose result this one reuses, or None: evaluate it here.

        A trial that holds the claim but is still running (another worker) is waited for;
        one that failed, or runs longer than :attr:`WAIT_SECONDS`, loses the claim to us."""
        mine, storage = trial_id(trial), storage_of(trial)
        deadline, pause = time.monotonic() + self.WAIT_SECONDS, 0.05
        while owner != mine:
            other = storage.get_trial(owner)
            if other.state in (TrialState.COMPLETE, TrialState.PRUNED) and record_of(other):
                return other
            if other.state == TrialState.FAIL or time.monotonic() > deadline:
                owner = self.ledger.take_over(digest, owner, mine)
                continue
            interrupts.raise_if_requested()
            time.sleep(pause)
            pause = min(2 * pause, 1.0)
        return None

    def _evaluate(
        self, trial: optuna.Trial, spec: Spec, base: TrialRecord, clock: Stopwatch
    ) -> list[float]:
        config, cs = self.config, self.config.constraints
        metrics, violations = cheap_violations(config, spec, clock)
        feasible = all(v <= 0 for v in violations.values())
        imputed: list[str] = []
        if feasible:
            report = self._reporter(trial)
            expensive = [m for m in config.metrics if not is_cheap(m)]
            try:
                with interrupts.immediate():  # proxies or training: minutes, stop at once
                    metrics.update(self.evaluation.expensive(spec, expensive, report, clock))
            except optuna.TrialPruned:  # a pruned trial keeps what it knew before training
                _save(
                    trial,
                    replace(
                        base,
                        metrics=metrics,
                        violations=violations,
                        feasible=True,
                        seconds=dict(clock.seconds),
                    ),
                    _constraints(config.constraint_names, violations),
                )
                raise
            violations.update(cs.budget_violations(metrics))
            feasible = all(v <= 0 for v in violations.values())
        else:
            for objective in config.objectives:
                if objective.metric not in metrics:
                    metrics[objective.metric] = self.worst.get(objective.metric, 0.0)
                    imputed.append(objective.metric)
        for objective in config.objectives:
            if objective.metric not in imputed:
                value = metrics[objective.metric]
                self.worst[objective.metric] = objective.worst(
                    self.worst.get(objective.metric, value), value
                )
        _save(
            trial,
            replace(
                base,
                metrics={k: float(v) for k, v in metrics.items()},
                violations=violations,
                feasible=feasible,
                imputed=tuple(imputed),
                seconds=dict(clock.seconds),
            ),
            _constraints(config.constraint_names, violations),
        )
        return [metrics[o.metric] for o in config.objectives]

    def _reporter(self, trial: optuna.Trial):
        """Per-epoch accuracy to Optuna's pruner (single objective only, as Optuna allows)."""
        if len(self.config.objectives) > 1 or self.config.pruner == "none":
            return None

        def report(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        return report

    def _reuse(self, trial: optuna.Trial, base: TrialRecord, twin: FrozenTrial) -> list[float]:
        found = record_of(twin)
        _save(
            trial,
            replace(
                found,
                spec=base.spec,
                stream=base.stream,
                preset=base.preset,
                version=base.version,
                seconds=base.seconds,
                duplicate_of=twin.number,
                redraws=base.redraws,
            ),
            _constraints(self.config.constraint_names, found.violations),
        )
        if twin.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"same architecture as pruned trial {twin.number}")
        return list(twin.values)


def _save(
    trial: optuna.Trial, record: TrialRecord, constraints: tuple[float, ...] | None = None
) -> None:
    """The trial's record and, once known, its constraints (:func:`_constraints`), in one
    transaction where the storage offers ``set_trial_attrs``
    (:mod:`attend_search.studies.storage.optuna_storage`; two writes under SQLite's lock
    otherwise)."""
    save_attrs(
        trial,
        {KEY: record.to_json()},
        {} if constraints is None else {CONSTRAINTS_KEY: constraints},
    )


def _constraints(names: list[str], violations: dict[str, float]) -> tuple[float, ...]:
    """The violations as Optuna's constrained samplers take them (<= 0 feasible). A budget on
    an expensive metric that was never evaluated (the rules already failed) counts as met.

    Optuna's list form (system attribute ``constraints``, in the order of ``names``), as
    Optuna's own ``constraints_func`` path writes it: one attribute, where
    ``trial.set_constraint`` costs a read of the whole trial and a write per constraint
    (a third of a cheap trial's time), and the form optuna-dashboard reads. The names are
    in the trial's record."""
    return tuple(float(violations.get(name, 0.0)) for name in names)


def _worst_measured(study: optuna.Study, objectives: tuple[Objective, ...]) -> dict[str, float]:
    """The worst measured (not imputed) value of each objective so far: one scan when a run
    starts; the run then keeps it up to date from what it measures."""
    worst: dict[str, float] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        record = record_of(t)
        if record is None:
            continue
        for o in objectives:
            value = record.metrics.get(o.metric)
            if value is not None and o.metric not in record.imputed and math.isfinite(value):
                worst[o.metric] = o.worst(worst.get(o.metric, value), value)
    return worst


def _stop_if_interrupted(study: optuna.Study, trial: FrozenTrial) -> None:
    """After each trial: an interrupt deferred or swallowed during it stops the search here."""
    interrupts.raise_if_requested()


def optimize(
    run: Run,
    n_trials: int | None = None,
    timeout: float | None = None,
    progress: bool = False,
    max_failures: int = 5,
    trial_timeout: float | None = None,
) -> None:
    """Run trials until ``n_trials`` more have finished or ``timeout`` seconds have passed.

    A failing evaluation (or one past ``trial_timeout`` seconds) marks its trial FAIL, the
    error recorded, and the search goes on; ``max_failures`` failures in a row stop it with
    :class:`RunStopped` carrying the last traceback. Ctrl-C marks the running trial FAIL and
    stops; running again resumes the study.
    """
    objective = TrialObjective(run, max_failures, trial_timeout)
    with interrupts.deferred():
        run.config.evaluation.load(run.config.metrics)
        interrupts.raise_if_requested()
        run.study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            catch=(Exception,),
            callbacks=[_stop_if_interrupted],
            show_progress_bar=progress and n_trials is not None,
        )
    if objective.failures_in_a_row >= max_failures:
        raise RunStopped(
            f"stopped after {objective.failures_in_a_row} trials failed in a row "
            f"(a bug, not a bad candidate?); completed trials are kept. The last "
            f"error:\n{objective.last_traceback.rstrip()}"
        )
