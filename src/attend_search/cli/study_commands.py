"""Commands on studies: ``validate``, ``run``, ``worker``, ``show``.

Optuna, PyTorch and the explorer are imported inside the command functions (see the
package docstring): building the parser must stay instant.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..errors import AttendSearchError
from .common import check_top, positive, study_arguments, table

MAX_FAILURES = 5  # failed trials in a row that stop a run


def _progress(args: argparse.Namespace) -> bool:
    """A progress bar: on a terminal, outside CI, unless ``--no-progress``."""
    return sys.stderr.isatty() and not os.environ.get("CI") and not args.no_progress


def cmd_validate(args: argparse.Namespace) -> None:
    from ..explorer.feasibility import require_feasible
    from ..studies import load_study_file

    config = load_study_file(args.study)
    search = config.search
    print(
        f"study {search.name}: space {search.space.name} ({search.space.size:.3g} "
        f"architectures once the rules narrow it; `attend-search space` gives both sizes), "
        f"{len(search.constraints.rules)} rules, "
        f"{len(search.constraints.budgets)} budgets, objectives "
        + ", ".join(f"{o.direction} {o.metric}" for o in search.objectives)
    )
    try:
        result = require_feasible(search, trials=args.tries)
    except AttendSearchError as exc:
        raise exc.located(_source(args.study))
    print(
        f"ok: a feasible spec was found in {result.tried} tries (digest {result.feasible.digest})"
    )


def cmd_run(args: argparse.Namespace) -> None:
    from ..explorer import optimize
    from ..explorer.search import quiet_optuna
    from ..studies import create, load_study_file, parse_budget, place
    from ..studies.results import rank_columns
    from ..studies.storage.trial_reader import finished_count
    from ..studies.workers import run_workers

    check_top(args)
    config = load_study_file(args.study)
    rank_columns(config.search.objectives, args.top, args.sort)  # refused now, not after
    budget = parse_budget(args.budget)
    where = place(config.name, args.storage, args.root)
    args.resume = _resume(args, "run", args.study, jobs=args.jobs)
    with quiet_optuna(tracebacks=args.debug):
        try:
            run = create(config, where)
        except AttendSearchError as exc:
            raise exc.located(_source(args.study)) if exc.path else exc
        study = run.study
        before = finished_count(study)
        if args.jobs == 1:
            optimize(
                run,
                budget.trials,
                budget.seconds,
                progress=_progress(args),
                max_failures=args.max_failures,
                trial_timeout=args.trial_timeout,
            )
        else:
            run_workers(
                config.name,
                where.url,
                args.root,
                budget,
                args.jobs,
                _worker_options(args),
                debug=args.debug,
                finished=(lambda: finished_count(study)) if _progress(args) else None,
            )
    n = finished_count(study) - before
    if budget.trials is None:
        ran = f"{n} trials in {budget}"
    else:
        ran = f"{n} trials" if n == budget.trials else f"{n} of {budget.trials} trials"
    print(f"ran {ran} in study {config.name} [{where.url}]")
    _show(where, top=args.top, sort=args.sort)


def _resume(args: argparse.Namespace, command: str, study: str | None, jobs: int = 1) -> str:
    """The command that goes on with the study where an interrupted one stopped."""
    from ..studies.storage.store import redact

    words = ["attend-search", command, *([study] if study else []), "--budget", "N"]
    if jobs > 1:
        words += ["--jobs", str(jobs)]
    words += _worker_options(args, changed_only=True)
    if args.root != "studies":
        words += ["--root", args.root]
    if args.storage:
        shown = redact(args.storage)
        words += ["--storage", shown]
        if shown != args.storage:  # the password is not printed: the user gives it again
            return shlex.join(words) + "  (with the storage URL's password in place of ***)"
    return shlex.join(words)


def _source(study_file: str | None) -> str:
    return study_file or "<built-in default study>"


def cmd_worker(args: argparse.Namespace) -> None:
    from ..explorer import optimize
    from ..explorer.search import quiet_optuna
    from ..studies import join, parse_budget, place

    budget = parse_budget(args.budget)
    where = place(args.study, args.storage, args.root)
    args.resume = None if args.spawned else _resume(args, "worker", args.study)
    with quiet_optuna(tracebacks=args.debug):
        _, run = join(where)
        optimize(
            run,
            budget.trials,
            budget.seconds,
            progress=_progress(args),
            max_failures=args.max_failures,
            trial_timeout=args.trial_timeout,
        )


def _worker_options(args: argparse.Namespace, changed_only: bool = False) -> list[str]:
    """What ``run --jobs`` passes on to each worker process (``changed_only``: those not
    at their defaults, as a command to resume repeats them)."""
    options = []
    if not changed_only or args.max_failures != MAX_FAILURES:
        options += ["--max-failures", str(args.max_failures)]
    return options + (["--trial-timeout", f"{args.trial_timeout:g}"] if args.trial_timeout else [])


def cmd_show(args: argparse.Namespace) -> None:
    from ..studies import place

    check_top(args)
    _show(place(args.study, args.storage, args.root), top=args.top, sort=args.sort)


def _show(where, top: int | None, sort: str | None) -> None:
    from ..explorer import record_of
    from ..explorer.metrics import COST_METRICS, metric_label, shown
    from ..explorer.search import quiet_optuna
    from ..studies import load
    from ..studies.results import best, counts
    from ..studies.storage.trial_reader import read_trials

    with quiet_optuna():
        config, study = load(where)
    objectives = config.search.objectives
    trials = all_trials = read_trials(study, params=False)
    c = counts(trials)
    print(
        f"study {config.name}: {c.total} trials: {c.complete} complete, {c.infeasible} "
        f"infeasible, {c.pruned} pruned, {c.failed} failed"
        + (f", {c.running} running" if c.running else "")
        + f" ({c.duplicates} duplicates not re-evaluated; {c.redraws} repeated proposals "
        "drawn again)"
    )
    trials = best(trials, objectives, top, sort)
    if not trials:
        print("no feasible trial yet")
        return
    title = (
        "Pareto set"
        if len(objectives) > 1 and top is None
        else f"best {len(trials)}" + (f" by {sort}" if sort else "")
    )
    print(f"{title}:")
    extra = [m for m in COST_METRICS if m not in {o.metric for o in objectives}]
    metrics = [o.metric for o in objectives] + extra
    rows = [["trial", "digest", *map(metric_label, metrics), "preset"]]
    for t in trials:
        r = record_of(t)
        rows.append(
            [
                str(t.number),
                r.digest,
                *[f"{shown(m, r.metrics[m]):.4g}" for m in metrics],
                r.preset or "",
            ]
        )
    print(table(rows, right=set(range(2, len(rows[0]) - 1))))
    from ..studies.refinement import read_refinement

    refinement = read_refinement(study)
    if refinement is not None:
        print_refinement(refinement, all_trials, config)


def print_refinement(refinement, trials, config) -> None:
    """The refined trials (``refine``): each objective beside the top-1 measured at each
    rung, and how well the study's accuracy estimate ranks them."""
    from ..explorer import record_of
    from ..explorer.metrics import metric_label, shown
    from ..studies.refinement import agreement
    from ..studies.results import candidates

    plan = refinement.plan
    data = plan.data["data"]
    print(
        f"refined on {data} ({plan.selection}; successive halving, rungs of "
        f"{', '.join(map(str, plan.rungs))} epochs; validation top-1):"
    )
    records = {t.number: record_of(t) for t in candidates(trials)}
    metrics = [o.metric for o in config.search.objectives]
    rows = [["trial", *map(metric_label, metrics), *(f"top-1 @{e}" for e in plan.rungs)]]
    for number in refinement.reached():
        measured = refinement.top1(number)
        rows.append(
            [
                str(number),
                *[f"{shown(m, records[number].metrics[m]):.4g}" for m in metrics],
                *(f"{measured[r]:.4f}" if r in measured else "-" for r in range(len(plan.rungs))),
            ]
        )
    if len(rows) == 1:
        print("nothing measured yet")
        return
    print(table(rows, right=set(range(len(rows[0])))))
    fit = agreement(refinement, trials, config)
    print(f"estimate {fit}" if fit else "no accuracy estimate among the study's objectives")


def _trial_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the commands that run trials: ``run`` and ``worker``."""
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--max-failures",
        type=positive(int),
        default=MAX_FAILURES,
        metavar="K",
        help=f"stop (exit code 1) after K trials fail in a row (default {MAX_FAILURES})",
    )
    p.add_argument(
        "--trial-timeout",
        type=positive(float),
        metavar="SECONDS",
        help="fail an evaluation that runs longer, and go on",
    )


def _top_arguments(p: argparse.ArgumentParser, top_help: str) -> None:
    p.add_argument("--top", type=positive(int), metavar="K", help=top_help)
    p.add_argument(
        "--sort",
        metavar="METRIC",
        help="with --top on a study of several "
        "objectives: the objective to rank by (required there)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("validate", help="check a study file and that its constraints can be met")
    s.add_argument("study", nargs="?", help="study YAML (default: the built-in default study)")
    s.add_argument(
        "--tries", type=positive(int), default=300, help="candidates tried for feasibility"
    )
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("run", help="run (or resume) a study")
    s.add_argument("study", nargs="?", help="study YAML (default: the built-in default study)")
    s.add_argument("--budget", required=True, help="trials (200) or time (90s, 30m, 2h)")
    s.add_argument("--jobs", type=positive(int), default=1, help="worker processes on this machine")
    _top_arguments(s, "show the top K instead of the Pareto set")
    _trial_arguments(s)
    study_arguments(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("worker", help="join a study (on this or another machine)")
    s.add_argument("study", help="study name, directory or study file")
    s.add_argument("--budget", required=True, help="trials (200) or time (90s, 30m, 2h)")
    # started by `run --jobs`, which says how to resume: an interrupted worker says nothing
    s.add_argument("--spawned", action="store_true", help=argparse.SUPPRESS)
    _trial_arguments(s)
    study_arguments(s)
    s.set_defaults(func=cmd_worker)

    s = sub.add_parser("show", help="best trials (Pareto set) and trial counts of a study")
    s.add_argument("study", help="study name, directory or study file")
    _top_arguments(s, "the top K by the objective, in order")
    study_arguments(s)
    s.set_defaults(func=cmd_show)
