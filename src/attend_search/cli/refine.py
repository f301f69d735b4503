"""``attend-search refine``: train a study's best trials with successive halving.

    refine STUDY --data DATA --epochs E [--top K [--sort METRIC] | --pareto] [--jobs N]
        [--threads T] [--restart]

PyTorch, Optuna and the trainer are imported inside the command.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from contextlib import nullcontext
from dataclasses import asdict

from ..errors import AttendSearchError
from .common import check_output_file, check_top, positive, study_arguments
from .train import data_of, recipe_of, training_arguments


def cmd_refine(args: argparse.Namespace) -> None:
    from ..evaluators.graph.trace import torch_threads
    from ..evaluators.training.loop import device_of
    from ..explorer.search import quiet_optuna
    from ..studies import load, place
    from ..studies.refine_run import refine
    from ..studies.refinement import Plan, choose, read_refinement, rung_epochs, write_fit_csv
    from ..studies.storage.store import redact, refine_table
    from ..studies.storage.trial_reader import read_trials
    from ..studies.workers import supervise
    from .study_commands import print_refinement

    check_top(args)
    if args.csv:
        check_output_file(args.csv, "CSV of measured accuracies")
    recipe = recipe_of(args)
    rungs = rung_epochs(args.epochs, args.min_epochs, args.reduction_factor)
    device = device_of(args.device)  # refused before anything is written
    cpu = device.type == "cpu"
    if args.amp and device.type != "cuda":
        raise AttendSearchError("--amp: mixed precision is for --device cuda")
    where = place(args.study, args.storage, args.root)
    with quiet_optuna():
        config, study = load(where)
    trials = read_trials(study, params=False)
    chosen, selection = choose(trials, config, args.top, args.sort)
    data = data_of(args) if args.jobs == 1 else None  # the processes load it, not the parent
    threads = args.threads or max(1, _cores() // args.jobs)
    proposed = Plan.from_json(
        Plan(
            trials=tuple(t.number for t in chosen),
            rungs=rungs,
            reduction_factor=args.reduction_factor,
            selection=selection,
            data={"data": args.data, "val": args.val, "val_fraction": args.val_fraction},
            recipe=asdict(recipe),
            choice={"top": args.top, "sort": args.sort},
        ).to_json()
    )
    table = refine_table(study, create=True)
    if args.restart and not args.spawned:
        measured = table.drop()
        shutil.rmtree(where.directory / "refine", ignore_errors=True)
        print(
            f"--restart: dropped the refinement of study {config.name} ({measured} measured "
            f"runs) and its run folders in {where.directory / 'refine'}"
        )
    plan = Plan.from_json(table.plan(proposed.to_json()))
    if plan != proposed and not args.spawned and table.replace_plan(proposed.to_json()):
        print(f"study {config.name}: its refinement had measured nothing; begun anew with these")
        plan = proposed
    _check_same(plan, proposed, config.name)
    if plan.trials != proposed.trials and not args.spawned:
        print(
            f"going on with the {len(plan.trials)} trials chosen when the refinement began; "
            f"chosen now: {', '.join(map(str, proposed.trials))} (--restart begins anew)"
        )
    argv = [w for w in args.argv if w != "--restart"]  # resumed, it must not begin again
    args.resume = shlex.join(
        ["attend-search", *(w.replace(args.storage, redact(args.storage)) for w in argv)]
        if args.storage
        else ["attend-search", *argv]
    )
    args.kept = (
        "finished rungs are kept in the study, and each unfinished run goes on from its last epoch"
    )
    if not args.spawned:
        print(
            f"refining {len(plan.trials)} trials of study {config.name} ({plan.selection}) "
            f"on {data.name if data else args.data}: rungs of {', '.join(map(str, plan.rungs))} "
            f"epochs, the best 1/{plan.reduction_factor} of each going on"
            + _processes(args.jobs, threads if cpu else None)
        )
    if args.jobs > 1:
        child = [sys.executable, "-m", "attend_search.cli", *args.argv]
        supervise([[*child, "--jobs", "1", "--threads", str(threads), "--spawned"]] * args.jobs)
    else:
        with torch_threads(threads) if cpu else nullcontext():
            refine(
                study,
                config,
                where.directory,
                table,
                plan,
                data,
                report=lambda line: print(line, flush=True),
                device=args.device,
                amp=args.amp,
                channels_last=args.channels_last,
            )
    if args.spawned:
        return
    refinement = read_refinement(study)
    print_refinement(refinement, read_trials(study, params=False), config)
    if args.csv:
        rows = write_fit_csv(
            args.csv, refinement, read_trials(study, params=False), config, where.directory
        )
        print(f"{args.csv}: {rows} networks' spec and measured top-1, for attend-search proxy fit")


def _processes(jobs: int, threads: int | None) -> str:
    """The header's account of the processes and, on the CPU, their threads."""
    per = "" if threads is None else f"{threads} PyTorch thread{'s' * (threads != 1)}"
    if jobs == 1:
        return f"; {per}" if per else ""
    return f"; {jobs} processes" + (f", {per} each" if per else "")


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _check_same(plan, proposed, study: str) -> None:
    """A study has one refinement: a later ``refine`` must ask for the stored settings."""
    stored, asked = plan.settings(), proposed.settings()
    changes = [
        f"{key}{'.' + part if part else ''}: {was} stored, {now} asked"
        for key in stored
        for part, was, now in _parts(stored[key], asked[key])
        if was != now
    ]
    if changes:
        raise AttendSearchError(
            f"study {study} is being refined with other settings ({'; '.join(changes)}); "
            f"give the same options to go on with it, or --restart to drop it and begin anew"
        )


def _parts(stored, asked) -> list[tuple[str, object, object]]:
    """A setting's values to compare, a dict's (the recipe, the data) key by key."""
    if isinstance(stored, dict) and isinstance(asked, dict):
        return [(k, stored.get(k), asked.get(k)) for k in dict.fromkeys([*stored, *asked])]
    return [("", stored, asked)]


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "refine",
        help="train a study's best trials with successive halving; measured accuracy "
        "goes into the study",
    )
    s.add_argument("study", help="study name, directory or study file")
    choice = s.add_mutually_exclusive_group()
    choice.add_argument(
        "--pareto",
        action="store_true",
        help="the feasible Pareto set (default; a study of one objective: its best 10)",
    )
    choice.add_argument(
        "--top",
        type=positive(int),
        metavar="K",
        help="the K best feasible trials by --sort (default: the study's accuracy estimate)",
    )
    s.add_argument("--sort", metavar="METRIC", help="with --top: the objective to rank by")
    halving = s.add_argument_group("successive halving")
    halving.add_argument(
        "--min-epochs",
        type=positive(int),
        default=3,
        help="fewest epochs of a rung: the first rung's (3)",
    )
    halving.add_argument(
        "--reduction-factor",
        type=positive(int),
        default=3,
        help="each rung trains this many times the epochs of the one before, for the best "
        "1/this of its trials (3)",
    )
    halving.add_argument(
        "--csv",
        metavar="OUT.csv",
        help="also write the measured accuracies as a CSV (spec, accuracy) for proxy fit",
    )
    run = training_arguments(s, epochs_default=None)
    run.add_argument("--jobs", type=positive(int), default=1, help="training processes (1)")
    run.add_argument(
        "--threads",
        type=positive(int),
        help="PyTorch threads of each process on the CPU (default: the cores / --jobs, at least 1)",
    )
    run.add_argument("--spawned", action="store_true", help=argparse.SUPPRESS)
    s.add_argument(
        "--restart",
        action="store_true",
        help="drop the study's refinement (plan, measured runs, the runs in its refine/ "
        "folder) and begin anew",
    )
    study_arguments(s)
    s.set_defaults(func=cmd_refine)
