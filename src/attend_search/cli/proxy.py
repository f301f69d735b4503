"""``attend-search proxy fit``: fit the ensemble's weights to networks the user trained.

    proxy fit TRAINED.csv --out FIT.yaml      a study then names ``ensemble@FIT.yaml``

PyTorch and the proxies are imported inside the command.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from ..errors import AttendSearchError
from .common import check_output_file, positive


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
    from ..search_space.spec_table import number, read_spec_table

    check_output_file(args.out, "fit")
    rows = list(
        read_spec_table(Path(args.trained), ("accuracy",), (), FitError, "trained networks file")
    )
    accuracies = [
        number(r["accuracy"], "accuracy", w, FitError, positive=False) for _, r, w in rows
    ]
    try:
        check_trained(accuracies)
    except FitError as exc:
        raise exc.located(args.trained) from None
    scaled = []
    with torch_threads(args.threads):
        for i, (spec, _, where) in enumerate(rows, 1):
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
        help="CSV with columns spec (a spec JSON path relative to the CSV, a preset, "
        "nb201:ARCH or macro:ARCH) and accuracy (any scale: only the ranking is fitted)",
    )
    s.add_argument("--out", required=True, help="fit YAML to write")
    s.add_argument(
        "--seed", type=int, default=0, help="weights and inputs of the proxies (default 0)"
    )
    s.add_argument("--threads", type=positive(int), default=1, help="PyTorch threads (default 1)")
    s.set_defaults(func=cmd_fit)
