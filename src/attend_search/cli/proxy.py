"""``attend-search proxy fit``: fit the ensemble's weights to networks the user trained.

    proxy fit TRAINED.csv --out FIT.yaml      a study then names ``ensemble@FIT.yaml``
    proxy fit STUDY --out FIT.yaml            the accuracies ``refine`` measured in STUDY

PyTorch and the proxies are imported inside the command.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from ..errors import AttendSearchError
from .common import check_output_file, positive, study_arguments


def cmd_fit(args: argparse.Namespace) -> None:
    from ..evaluators.estimate_fit import (
        ENSEMBLE_SCALES,
        ENSEMBLE_WEIGHTS,
        FitError,
        check_trained,
        fit_ensemble,
    )
    from ..evaluators.graph.trace import torch_threads
    from ..evaluators.proxies import zero_cost_all

    check_output_file(args.out, "fit")
    rows, accuracies = _trained(args)
    try:
        check_trained(accuracies)
    except FitError as exc:
        raise exc.located(args.trained) from None
    scaled = []
    with torch_threads(args.threads):
        for i, (spec, where) in enumerate(rows, 1):
            try:
                scores = zero_cost_all(spec, proxies=["ensemble"], seed=args.seed, signals=True)
            except AttendSearchError as exc:
                raise FitError(str(exc), path="spec", source=where) from None
            scaled.append(
                {k: scores[f"ensemble.{k}"] / scale for k, scale in ENSEMBLE_SCALES.items()}
            )
            if sys.stderr.isatty():
                print(f"\rscored {i}/{len(rows)} networks", end="", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    fit = fit_ensemble(
        scaled,
        accuracies,
        ENSEMBLE_WEIGHTS,
        provenance={
            "trained": str(args.trained),
            "seed": args.seed,
            "date": datetime.date.today().isoformat(),
        },
    )
    try:
        fit.save(args.out)
    except OSError as exc:
        raise FitError(f"cannot write the fit: {exc.strerror}", source=args.out) from None
    weights = ", ".join(f"{k} {w:+.3f}" for k, w in fit.weights.items())
    print(
        f"fitted on {fit.networks} networks: weights {weights}\n"
        f"leave-one-out Spearman with their accuracy: fitted {fit.spearman['fitted']:.3f}, "
        f"built-in ensemble {fit.spearman['built-in']:.3f}\n"
        f"wrote {args.out}; a study names it as the metric ensemble@{args.out}"
    )


def _trained(args: argparse.Namespace) -> tuple[list, list[float]]:
    """The networks to fit, each ``(spec, where)``, and their accuracies: a CSV's rows, or
    the trials a study's ``refine`` measured (their first rung's top-1, as ``refine --csv``
    writes them)."""
    from ..evaluators.estimate_fit import FitError
    from ..search_space.spec_table import number, read_spec_table

    path = Path(args.trained)
    if path.suffix.lower() == ".csv":  # else a study: its name, folder or study file
        rows = list(
            read_spec_table(
                path, ("accuracy",), ("trial", "epochs"), FitError, "trained networks file"
            )
        )
        accuracies = [
            number(r["accuracy"], "accuracy", w, FitError, positive=False) for _, r, w in rows
        ]
        return [(spec, where) for spec, _, where in rows], accuracies
    from ..explorer.search import quiet_optuna
    from ..studies import load, place
    from ..studies.refinement import fit_rows, read_refinement
    from ..studies.storage.trial_reader import read_trials

    where = place(args.trained, args.storage, args.root)
    with quiet_optuna():
        config, study = load(where)
    refinement = read_refinement(study)
    if refinement is None:
        raise FitError(
            f"study {config.name} has no measured accuracies: refine it first "
            f"(attend-search refine {args.trained} --data DATA --epochs E)"
        )
    rows = fit_rows(refinement, read_trials(study, params=False), config)
    return [(spec, f"study {config.name}, trial {n}") for n, spec, _ in rows], [
        top1 for *_, top1 in rows
    ]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy", help="fit the accuracy estimate to networks you trained")
    psub = p.add_subparsers(dest="proxy_command", required=True, metavar="SUBCOMMAND")
    s = psub.add_parser(
        "fit",
        help="fit the ensemble's weights to (spec, accuracy) pairs; a study names the file as "
        "ensemble@FILE",
    )
    s.add_argument(
        "trained",
        help="a study refined by attend-search refine (name or directory), or a CSV with "
        "columns spec (a spec JSON path relative to the CSV, a preset, nb201:ARCH or "
        "macro:ARCH) and accuracy (any scale: only the ranking is fitted)",
    )
    s.add_argument("--out", required=True, help="fit YAML to write")
    s.add_argument(
        "--seed", type=int, default=0, help="weights and inputs of the proxies (default 0)"
    )
    s.add_argument("--threads", type=positive(int), default=1, help="PyTorch threads (default 1)")
    study_arguments(s)
    s.set_defaults(func=cmd_fit)
