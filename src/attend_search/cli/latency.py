"""``attend-search latency``: predicted and measured latency, and fitting device profiles.

    latency predict SPEC --device cortex-a72      total and where the time goes
    latency measure SPEC [--out DIR]              this machine, onnxruntime, one thread
    latency devices                               the built-in device profiles
    latency bench --out PROFILE.yaml              measure this machine and fit a profile
    latency bench --kernels --out PROFILE.yaml    time single kernels, learn per-class shapes
    latency calibrate MEASURED.csv --out PROFILE.yaml   fit to measurements made elsewhere

The evaluators (PyTorch, onnxruntime) are imported inside the command functions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import AttendSearchError
from ..evaluators.latency.protocol import PASSES, REPEATS, ROUNDS, WARMUP
from .common import check_output_file, positive, table

# the choices of evaluators.runtimes.RUNTIMES and evaluators.latency.calibrate.FIT_MODES,
# written out
# so that `--help` needs no PyTorch (tests/test_cli_startup.py holds them equal)
RUNTIMES = ("onnxruntime", "torch", "litert")
FIT_MODES = ("full", "prior", "scales", "auto")


def cmd_predict(args: argparse.Namespace) -> None:
    from ..evaluators.latency.devices import load_device
    from ..evaluators.latency.predict import predict_latency, time_by_class
    from ..search_space import load_spec
    from ..search_space.naming import layer_name

    spec = load_spec(args.spec)
    profile = load_device(args.device)
    total, times = predict_latency(spec, profile, breakdown=True)
    print(
        f"{spec.name or args.spec}  digest {spec.digest}  on {profile.name}: "
        f"{total:.2f} ms predicted ({len(times)} kernels)\n"
    )
    rows = [["op class", "ms", "share"]]
    rows += [[c, f"{ms:.2f}", f"{ms / total:.0%}"] for c, ms in time_by_class(times).items()]
    print(table(rows, right={1, 2}))
    rows = [["kernel", "op class", "ms", "MMACs", "KiB", "bound"]]
    rows += [
        [
            layer_name(t.name),
            t.op_class,
            f"{t.ms:.3f}",
            f"{t.macs / 1e6:.2f}",
            f"{t.bytes / 1024:.0f}",
            t.bound,
        ]
        for t in sorted(times, key=lambda t: -t.ms)[: args.top]
    ]
    print(f"\ntop {min(args.top, len(times))} kernels")
    print(table(rows, right={2, 3, 4}))


def cmd_measure(args: argparse.Namespace) -> None:
    from ..evaluators.latency.measure import measure
    from ..search_space import load_spec
    from ..studies.storage.store import write_atomic

    spec = load_spec(args.spec)
    out = Path(args.out or f"latency-{spec.digest[:12]}-{args.runtime}")
    if not out.resolve().parent.is_dir():
        raise AttendSearchError(
            "the folder to write the measurement in does not exist", source=str(out)
        )
    out.mkdir(exist_ok=True)
    m = measure(
        spec,
        runtime=args.runtime,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        rounds=args.rounds,
        keep=out,
    )
    write_atomic(out / "spec.json", spec.to_json())
    write_atomic(out / "measurement.json", json.dumps(_record(spec, m), indent=2) + "\n")
    if m.busy:
        print(
            f"warning: this machine is busy (1-minute load average {m.load_average:.1f} on "
            f"{m.cores} cores): other processes can slow the measurement",
            file=sys.stderr,
        )
    print(
        f"{m.ms:.3f} ms  (the lowest median of {m.rounds} rounds of {m.repeats} runs, the "
        f"highest {m.high_ms:.3f} ms, all runs' {m.median_ms:.3f} ms; {m.runtime}, "
        f"{m.threads} thread(s), {platform.node()})"
    )
    print(
        f"wrote {out}/: measurement.json, spec.json"
        + (f", {m.model_file.name} (the file measured)" if m.model_file else "")
    )


def _record(spec, m) -> dict:
    """What a measurement was, of what, where and how: enough to repeat it on a board."""
    from ..evaluators.model_input import TRAINED_CONSTANT

    return {
        "spec": spec.name or None,
        "digest": spec.digest,
        "ms": round(m.ms, 4),
        "median_ms": round(m.median_ms, 4),
        "interval_ms": [round(m.low_ms, 4), round(m.high_ms, 4)],
        "rounds": m.rounds,
        "repeats": m.repeats,
        "runtime": m.runtime,
        "threads": m.threads,
        "load_average": round(m.load_average, 2),
        "cores": m.cores,
        "busy": m.busy,
        "machine": f"{platform.node()} ({platform.machine()}, {platform.platform()})",
        "model_file": m.model_file.name if m.model_file else None,
        # the spec's constant parameters and statistics, as timed (see as_measured)
        "constants_set_to": TRAINED_CONSTANT,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def cmd_devices(args: argparse.Namespace) -> None:
    from ..evaluators.latency.devices import builtin_devices, load_device

    rows = [["device", "runtime", "peak GMAC/s", "memory", "description"]]
    for name in builtin_devices():
        p = load_device(name)
        memory = ", ".join(f"{m.name} {m.bandwidth_gbs:g} GB/s" for m in p.memory)
        rows.append([name, p.runtime, f"{p.peak_macs_per_s / 1e9:.1f}", memory, p.description])
    print(table(rows, right={2}))


def cmd_bench(args: argparse.Namespace) -> None:
    from ..evaluators.latency.calibrate import calibration_suite
    from ..evaluators.latency.measure import measure_passes
    from ..evaluators.runtimes import MeasurementError
    from ..evaluators.runtimes.onnx import detect_nchwc_block
    from ..search_space.spec import INPUT_SIZES

    _check_fit_options(args)
    if args.samples < 2:
        raise MeasurementError(f"--samples: needs at least 2 networks, got {args.samples}")
    specs = calibration_suite(args.samples)
    if args.input_sizes:
        sizes = sorted(set(args.input_sizes))
        low, high = INPUT_SIZES
        if not low <= sizes[0] <= sizes[-1] <= high:
            raise MeasurementError(
                f"--input-sizes: each between {low} and {high} pixels, as a spec's, "
                f"got {' '.join(map(str, args.input_sizes))}"
            )
        specs = [replace(s, input_size=size) for s in specs for size in sizes]
    if args.kernels:
        if args.passes is not None:
            raise MeasurementError("--passes: kernel profiling times each probe once")
        _bench_kernels(specs, args)
        return
    load = os.getloadavg()[0]
    if load >= 1.0:
        print(
            f"warning: this machine is busy (1-minute load average {load:.1f}): other "
            "processes can slow the measurements",
            file=sys.stderr,
        )
    lows = measure_passes(
        [(spec, None) for spec in specs],
        runtime=args.runtime,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        rounds=args.rounds,
        passes=args.passes or PASSES,
        log=lambda line: print(line, flush=True),
    )
    samples = []
    for n, (spec, low) in enumerate(zip(specs, lows), 1):
        passes = ", ".join(f"{ms:.2f}" for ms in low)
        print(
            f"[{n}/{len(specs)}] {spec.name or 'attendnext sample'} {spec.digest} at "
            f"{spec.input_size} px: {min(low):.2f} ms (the least of {passes})"
        )
        samples.append((spec, None, min(low)))
    machine = (
        f"{platform.node()} ({platform.machine()}, {platform.platform()}), "
        f"{args.runtime}, {args.threads} thread(s)"
    )
    block = detect_nchwc_block() if args.runtime == "onnxruntime" else 0  # this machine's layout
    _fit_and_save(samples, args, machine, threads=args.threads, nchwc_block=block)


def _bench_kernels(specs: list, args: argparse.Namespace) -> None:
    """Time single kernels of the specs' ops and save the base with their corrections."""
    from ..evaluators.latency.devices import load_device
    from ..evaluators.latency.profiling import profile_kernels

    machine = f"{platform.node()} ({platform.machine()}, {platform.platform()})"
    profile = profile_kernels(
        specs,
        load_device(args.base),
        runtime=args.runtime,
        budget_s=args.budget_s,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
        rounds=args.rounds,
        name=args.name or Path(args.out).stem,
        machine=machine,
        log=lambda line: print(line, flush=True),
    )
    profile.save(args.out)
    learned = profile.kernel_profile
    p = learned.provenance
    print(
        f"\ntimed {p['probes']} of {p['candidates']} distinct kernels of {p['networks']} "
        f"networks in {p['seconds']:.0f} s; per inference {learned.offset_ms * 1e3:.1f} us"
    )
    levels = ", ".join(
        f"{m.name} {m.bandwidth_gbs:.0f} GB/s" + (f" to {m.size_kib:g} KiB" if m.size_kib else "")
        for m in profile.memory
    )
    print(f"memory levels: {levels} ({p['memory']})")
    if learned.weight_streams:
        streams = ", ".join(
            f"{b / 2**20:.0f} MiB {b / t / 1e9:.0f} GB/s" for b, t in learned.weight_streams
        )
        print(f"a network's weights, read once an inference: {streams}")
    rows = [["op class", "probes", "leave-one-out error"]]
    rows += [
        [c, str(k.probes), "" if k.loo_error_pct is None else f"{k.loo_error_pct:.1f}%"]
        for c, k in learned.classes.items()
    ]
    print(table(rows, right={1, 2}))
    print(f"wrote {args.out}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from ..evaluators.latency.board_csv import read_measurements

    _check_fit_options(args)
    samples = read_measurements(Path(args.measurements))
    _fit_and_save(
        samples,
        args,
        args.machine or f"measurements from {args.measurements}",
        threads=args.threads,
        nchwc_block=args.nchwc_block,
    )


def _check_fit_options(args: argparse.Namespace) -> None:
    """Fail before minutes of measuring, not after: the base must load, the output folder exist."""
    from ..evaluators.latency.devices import load_device

    load_device(args.base)
    check_output_file(args.out, "profile")


def _fit_and_save(
    samples: list,
    args: argparse.Namespace,
    machine: str,
    threads: int | None,
    nchwc_block: int | None = None,
) -> None:
    """``samples``: ``calibrate.Sample`` tuples; ``nchwc_block``: the measuring machine's
    onnxruntime layout (:func:`calibrate_latency`), where known."""
    from ..evaluators.latency.calibrate import calibrate_latency

    profile = calibrate_latency(
        samples,
        args.base,
        name=args.name or Path(args.out).stem,
        machine=machine,
        threads=threads,
        fit=args.fit,
        runtime=args.runtime,
        nchwc_block=nchwc_block,
    )
    profile.save(args.out)
    _print_fit(profile, args.out)


def _print_fit(profile, out: str) -> None:
    p = profile.provenance
    print(
        f"fitted {profile.name} from {p['base']} on {p['samples']} networks: "
        f"MAPE {p['mape_pct']:.1f}%, max error {p['max_error_pct']:.1f}%, "
        f"Kendall tau {p['kendall_tau']:.3f}"
    )
    if profile.kernel_profile:
        learned = profile.kernel_profile
        print(
            f"kept the base's kernel profile; fitted its scale {learned.scale:.3f} and "
            f"per-inference constant {learned.offset_ms * 1e3:.1f} us"
        )
    if p["unconstrained"]:
        print(
            f"not constrained by these networks (kept near the base): "
            f"{', '.join(p['unconstrained'])}"
        )
    print(f"wrote {out}")


# --------------------------------------------------------------------------- parser
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="predicted and measured latency, device profiles")
    lsub = p.add_subparsers(dest="latency_command", required=True, metavar="SUBCOMMAND")

    s = lsub.add_parser("predict", help="predicted latency of a spec and where the time goes")
    s.add_argument("spec", help="spec JSON file, or a preset name")
    s.add_argument(
        "--device",
        default="cortex-a72",
        help="built-in device (see `latency devices`) or profile YAML",
    )
    s.add_argument("--top", type=positive(int), default=10, help="kernels to list (default 10)")
    s.set_defaults(func=cmd_predict)

    s = lsub.add_parser("measure", help="measure a spec's latency on this machine")
    s.add_argument("spec", help="spec JSON file, or a preset name")
    s.add_argument(
        "--out",
        help="folder for measurement.json, spec.json and the model file "
        "measured (default latency-DIGEST-RUNTIME)",
    )
    _measure_options(s)
    s.set_defaults(func=cmd_measure)

    s = lsub.add_parser("devices", help="list the built-in device profiles")
    s.set_defaults(func=cmd_devices)

    s = lsub.add_parser(
        "bench",
        help="measure this machine on a fixed suite of networks and fit a device profile to it",
    )
    _fit_options(s)
    s.add_argument(
        "--samples",
        type=int,
        default=40,
        help="networks to measure (with --kernels, whose kernels to probe): the presets, "
        "then attendnext samples (default 40)",
    )
    s.add_argument(
        "--kernels",
        action="store_true",
        help="time single kernels of the networks' ops instead, and learn a correction of "
        "the base per op class (docs/latency.md, kernel profiling)",
    )
    s.add_argument(
        "--input-sizes",
        type=positive(int),
        nargs="+",
        metavar="PX",
        help="each network at each of these input sizes (default: its own); with --kernels, "
        "probe the shapes of every size the profile is to predict",
    )
    s.add_argument(
        "--passes",
        type=positive(int),
        help="passes over the networks, each timing every one; a network's latency is its "
        f"least (default {PASSES}; not with --kernels)",
    )
    s.add_argument(
        "--budget-s",
        type=positive(float),
        default=300.0,
        help="with --kernels: seconds of probing, after the memory levels (default 300)",
    )
    _measure_options(s)
    s.set_defaults(func=cmd_bench)

    s = lsub.add_parser("calibrate", help="fit a device profile to latencies measured elsewhere")
    s.add_argument(
        "measurements",
        help="CSV with columns spec (a spec JSON path relative to "
        "the CSV, or a preset name), latency_ms, optional input_size",
    )
    _fit_options(s)
    s.add_argument(
        "--threads", type=positive(int), help="threads the measurements used (default: the base's)"
    )
    s.add_argument(
        "--runtime",
        default="onnxruntime",
        help="the runtime that made the measurements (default onnxruntime)",
    )
    s.add_argument(
        "--nchwc-block",
        type=int,
        choices=(0, 8, 16),
        help="onnxruntime's blocked layout on the measured CPU: 16 on x86 with AVX-512, 8 "
        "with AVX2, 0 on ARM (default: the base's)",
    )
    s.add_argument("--machine", help="where the measurements were made, for the provenance")
    s.set_defaults(func=cmd_calibrate)


def _fit_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--out", required=True, help="profile YAML to write")
    s.add_argument(
        "--base",
        default="cortex-a72",
        help="profile to start from: its datasheet figures are kept (default cortex-a72)",
    )
    s.add_argument("--name", help="name of the fitted profile (default: the output file's stem)")
    s.add_argument(
        "--fit",
        choices=FIT_MODES,
        default="full",
        help="which coefficients the measurements move (default full; docs/latency.md)",
    )


def _measure_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime")
    s.add_argument(
        "--threads",
        type=positive(int),
        default=1,
        help="threads of the runtime and of PyTorch (default 1)",
    )
    s.add_argument(
        "--warmup", type=int, default=WARMUP, help=f"untimed runs first (default {WARMUP})"
    )
    s.add_argument(
        "--repeats",
        type=positive(int),
        default=REPEATS,
        help=f"timed runs per round (default {REPEATS})",
    )
    s.add_argument(
        "--rounds",
        type=positive(int),
        default=ROUNDS,
        help=f"rounds; the lowest median is the latency (default {ROUNDS})",
    )
