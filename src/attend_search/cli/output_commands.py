"""Commands that take results out of a study: ``export`` and ``report``.

Their implementations (Optuna, PyTorch, plotly) are imported inside the command functions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AttendSearchError
from .common import check_top, positive, study_arguments

QUANTIZE = ("int8",)  # studies.export.QUANTIZE, written out so that --help needs no PyTorch


def cmd_export(args: argparse.Namespace) -> None:
    from ..explorer.search import quiet_optuna
    from ..studies import load, place
    from ..studies.export.network import TABLE_FORMATS, parse_formats
    from ..studies.export.run import ExportOptions, export_study
    from ..studies.refinement import read_refinement
    from ..studies.storage.trial_reader import read_trials

    check_top(args)
    formats = parse_formats(args.format, args.quantize)
    where = place(args.study, args.storage, args.root)
    with quiet_optuna():
        config, study = load(where)
    trials = read_trials(study, params=any(f in TABLE_FORMATS for f in formats))
    chosen = _chosen(trials, config, args) if set(formats) - set(TABLE_FORMATS) else []
    selection = (
        f"trial {args.trial}"
        if args.trial is not None
        else f"top {args.top}"
        if args.top
        else "pareto"
    )
    options = ExportOptions(
        tuple(formats),
        selection,
        seed=args.seed,
        quantize=args.quantize,
        calibration=args.calibration,
        calibration_images=args.calibration_images,
    )
    lines = export_study(
        config,
        trials,
        chosen,
        Path(args.out),
        options,
        args.force,
        where.directory,
        read_refinement(study),
    )
    for line in lines:
        print(line, flush=True)


def _chosen(trials, config, args):
    from ..studies.results import best, candidates

    objectives = config.search.objectives
    if args.trial is not None:
        match = [t for t in candidates(trials) if t.number == args.trial]
        if not match:
            raise AttendSearchError(
                f"--trial {args.trial}: no feasible, complete trial with that "
                f"number in study {config.name} (see attend-search show)"
            )
        return match
    chosen = best(trials, objectives, top=args.top, sort=args.sort)
    if not chosen:
        raise AttendSearchError(f"study {config.name} has no feasible trial to export yet")
    return chosen


def cmd_report(args: argparse.Namespace) -> None:
    from ..explorer.search import quiet_optuna
    from ..studies import load, place
    from ..studies.export.folders import last_export
    from ..studies.report import write_report

    where = place(args.study, args.storage, args.root)
    with quiet_optuna():
        config, study = load(where)
    exports = Path(args.exports) if args.exports else last_export(where.directory)
    write_report(study, config, Path(args.out), exports or Path("exports"))
    print(f"{args.out}: report of study {config.name}")


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("export", help="export the best architectures (spec, ONNX, torch.export)")
    s.add_argument("study", help="study name, directory or study file")
    choice = s.add_mutually_exclusive_group()
    choice.add_argument("--pareto", action="store_true", help="the Pareto set (default)")
    choice.add_argument("--trial", type=int, help="one trial by number")
    choice.add_argument(
        "--top",
        type=positive(int),
        metavar="K",
        help="the top K by the objective (several objectives: with --sort)",
    )
    s.add_argument(
        "--sort",
        metavar="METRIC",
        help="with --top on a study of several "
        "objectives: the objective to rank by (required there)",
    )
    s.add_argument(
        "--format",
        default="json,onnx,pt2",
        help="comma-separated: json, onnx, pt2, tflite (per architecture; tflite "
        "needs the extra 'litert'); csv, parquet (the trials table) "
        "(default json,onnx,pt2)",
    )
    s.add_argument("--out", default="exports", help="output folder (default exports)")
    s.add_argument(
        "--force",
        action="store_true",
        help="replace files an earlier export wrote, remove its stale folders",
    )
    s.add_argument(
        "--seed",
        type=int,
        default=0,
        help="torch.manual_seed of the exported (untrained) weights (default 0)",
    )
    s.add_argument(
        "--quantize", choices=QUANTIZE, help="also write int8 files of the onnx and tflite formats"
    )
    s.add_argument(
        "--calibration", help="images for int8 calibration: digits, a .npz file or an image folder"
    )
    s.add_argument(
        "--calibration-images",
        type=positive(int),
        default=64,
        help="calibration images drawn from its training part (default 64)",
    )
    study_arguments(s)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("report", help="write a self-contained HTML report of a study")
    s.add_argument("study", help="study name, directory or study file")
    s.add_argument("--out", default="report.html", help="HTML file (default report.html)")
    s.add_argument(
        "--exports",
        help="the folder `export` wrote the Pareto set to, linked from the report's table "
        "(default: where the study's last export went, else exports)",
    )
    study_arguments(s)
    s.set_defaults(func=cmd_report)
