"""``attend-search train``: train an exported spec, a preset or a study's trial, and export it.

torch and the trainer are imported inside the command: other commands start without them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import positive


def cmd_train(args: argparse.Namespace) -> None:
    from ..errors import AttendSearchError
    from ..studies.export.network import FORMATS, QUANTIZE, parse_formats
    from ..studies.training_run import EXPORT, run_training

    spec, source = _spec(args)
    recipe = recipe_of(args)
    formats = tuple(parse_formats(args.format or "json", args.quantize))  # "": spec, weights
    if args.quantize not in (None, *QUANTIZE):
        raise AttendSearchError(
            f"--quantize: {args.quantize!r} is not one of {', '.join(QUANTIZE)}"
        )
    tables = [f for f in formats if f not in FORMATS]
    if tables:
        raise AttendSearchError(
            f"--format: {tables[0]} is a study's trials table; a trained "
            f"network exports as {', '.join(FORMATS)}"
        )
    out = Path(args.out) if args.out else _run_folder(spec, source)
    data = data_of(args)
    try:
        trained = run_training(
            spec,
            data,
            recipe,
            out,
            source=source,
            resume=args.continue_run,
            force=args.force,
            formats=formats,
            device=args.device,
            calibration_images=args.calibration_images if args.quantize else None,
            amp=args.amp,
            channels_last=args.channels_last,
            stop_after=args.stop_after,
            report=_printer(recipe.epochs),
            progress=False if args.no_progress else None,
        )
    except KeyboardInterrupt:
        print(
            f"{out}: the last complete epoch is kept; to go on, run the same command with --resume",
            file=sys.stderr,
        )
        raise
    if trained.finished:
        print(
            f"{out / EXPORT}: trained {spec.name or spec.digest} (digest "
            f"{trained.spec.digest}), top-1 {trained.log[-1]['val_top1']:.4f}"
        )
    else:
        print(
            f"{out}: stopped after epoch {trained.log[-1]['epoch']} of {recipe.epochs}; "
            f"to go on, run the same command with --resume"
        )


def _printer(epochs: int):
    """Prints an epoch's line as it ends, above the progress bar (as a log file wants it)."""
    from tqdm.auto import tqdm

    def report(e: dict[str, float]) -> None:
        tqdm.write(
            f"epoch {e['epoch']:>3}/{epochs}  lr {e['lr']:.3g}  train loss "
            f"{e['train_loss']:.4f}  val loss {e['val_loss']:.4f}  top-1 "
            f"{e['val_top1']:.4f}  top-5 {e['val_top5']:.4f}  {e['seconds']:.1f} s",
            file=sys.stdout,
        )
        sys.stdout.flush()

    return report


def _spec(args: argparse.Namespace):
    """The spec to train and where it came from (for the model card)."""
    from ..errors import AttendSearchError
    from ..search_space import load_spec

    if (args.spec is None) == (args.study is None):
        raise AttendSearchError(
            "give a spec (a spec JSON, an export folder or a preset) or "
            "--study with --trial, not both"
        )
    if args.study is not None:
        if args.trial is None:
            raise AttendSearchError("--study needs --trial N (see attend-search show)")
        from ..explorer.search import quiet_optuna
        from ..studies import place
        from ..studies.training_run import trial_spec

        with quiet_optuna():
            spec = trial_spec(place(args.study, args.storage, args.root), args.trial)
        return spec, f"study {args.study}, trial {args.trial}"
    path = Path(args.spec)
    spec = load_spec(str(path / "spec.json") if path.is_dir() else args.spec)
    if not spec.name:
        spec = spec.renamed(path.parent.name if path.name == "spec.json" else path.stem)
    return spec, args.spec


def _run_folder(spec, source: str) -> Path:
    """``runs/<name>``, for a name that is a plain folder name (as a study's): a spec's name is
    free text from a file, and ``../..`` or an absolute path must not choose where we write."""
    from ..errors import AttendSearchError
    from ..studies.config import NAME

    name = spec.name or spec.digest
    if not NAME.fullmatch(name):
        raise AttendSearchError(
            f"the spec's name {name!r} is not a folder name under runs/ "
            f"(letters, digits, _ . -; 64 at most); give --out",
            source=source,
        )
    return Path("runs") / name


def recipe_of(args: argparse.Namespace):
    """The recipe the options of :func:`training_arguments` give, checked."""
    from ..evaluators.training.recipe import Recipe

    return Recipe(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        momentum=args.momentum,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        augment=args.augment,
        hflip=args.hflip,
        input_size=args.input_size,
        seed=args.seed,
    ).resolved()


def data_of(args: argparse.Namespace):
    """The data set the options of :func:`training_arguments` name."""
    from ..evaluators.training.datasets import load_dataset

    return load_dataset(
        args.data, val_fraction=args.val_fraction, seed=args.seed, validation=args.val
    )


def training_arguments(
    s: argparse.ArgumentParser, epochs_default: int | None
) -> argparse._ArgumentGroup:
    """The data, recipe and device options of the commands that train (``train``,
    ``refine``); ``epochs_default`` None makes ``--epochs`` required. Returns the "run"
    group, for the command's own options."""
    data = s.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        help="digits, digits-hard, a .npz file or a folder of class sub-folders",
    )
    data.add_argument("--val", help="validation set (same kinds); default: a split of --data")
    data.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of --data held out for validation when no --val (0.2)",
    )
    recipe = s.add_argument_group("recipe")
    recipe.add_argument(
        "--epochs",
        type=positive(int),
        default=epochs_default,
        required=epochs_default is None,
        help=f"({epochs_default})" if epochs_default else "epochs of the whole training",
    )
    recipe.add_argument("--batch-size", type=positive(int), default=128, help="(128)")
    recipe.add_argument(
        "--optimizer",
        default="sgd",
        choices=("sgd", "adamw"),
        help="SGD with Nesterov momentum or AdamW (sgd)",
    )
    recipe.add_argument("--lr", type=float, help="peak learning rate (sgd 0.1, adamw 0.002)")
    recipe.add_argument(
        "--weight-decay", type=float, help="on weights, not biases or norms (sgd 5e-5, adamw 0.05)"
    )
    recipe.add_argument("--momentum", type=float, default=0.9, help="(AdamW's beta1) (0.9)")
    recipe.add_argument(
        "--warmup-epochs",
        type=float,
        help="linear warm-up before the cosine (a tenth of the epochs, at most 3)",
    )
    recipe.add_argument("--label-smoothing", type=float, default=0.1, help="(0.1)")
    recipe.add_argument(
        "--augment",
        default="crop",
        choices=("crop", "shift", "none"),
        help="random resized crop, pad-and-crop shift, or none (crop)",
    )
    recipe.add_argument(
        "--hflip",
        type=float,
        default=0.5,
        help="horizontal flip probability; 0 for digits and text (0.5)",
    )
    recipe.add_argument("--input-size", type=positive(int), help="image side (the spec's)")
    recipe.add_argument("--seed", type=int, default=0, help="weights, split, order (0)")
    run = s.add_argument_group("run")
    run.add_argument("--device", default="cpu", help="cpu or cuda (cuda:1, ...) (cpu)")
    run.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        help="float16 mixed precision (default: on for cuda)",
    )
    run.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help="channels-last memory layout (default: on for cuda)",
    )
    return run


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("train", help="train an architecture with a full recipe and export it")
    s.add_argument("spec", nargs="?", help="spec JSON, export folder (with spec.json) or preset")
    s.add_argument("--study", help="train a trial of this study (name or directory) ...")
    s.add_argument("--trial", type=int, help="... this trial (see attend-search show)")
    s.add_argument(
        "--storage", help="the study's Optuna storage URL (default: sqlite in its directory)"
    )
    s.add_argument("--root", default="studies", help="folder of study directories (studies)")
    run = training_arguments(s, epochs_default=30)
    run.add_argument("--out", help="run folder: checkpoint, metrics, export (runs/<name>)")
    run.add_argument(
        "--resume", action="store_true", dest="continue_run", help="continue the run in --out"
    )
    run.add_argument("--force", action="store_true", help="start the run in --out over")
    run.add_argument(
        "--stop-after",
        type=positive(int),
        metavar="N",
        help="stop after N epochs of this invocation (--resume goes on)",
    )
    run.add_argument(
        "--format",
        default="onnx,pt2",
        help="export formats besides spec and weights: onnx, pt2, tflite (tflite "
        "needs the extra 'litert') (onnx,pt2)",
    )
    run.add_argument(
        "--quantize",
        metavar="int8",
        help="also export int8 onnx/tflite, calibrated on training images",
    )
    run.add_argument(
        "--calibration-images",
        type=positive(int),
        default=64,
        help="training images that calibrate int8 (64)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_train)
