"""A long study on the embedded storage: does a trial cost the same at 10,000 as at 500?

    .venv/bin/python benchmarks/bench_scale.py [--trials 10000] [--jobs 2] [--window 500]
                                                [--repeats 3] [--quick]

Runs `attend-search run` on the AttendNeXt space with cheap objectives only (parameters,
MACs, predicted Cortex-A72 latency; no proxy) and NSGA-II, the sampler for long runs, in a
fresh SQLite study, `--repeats` times. Prints, for each run, the time per trial over the
first and the last `--window` trials (from the trials' time stamps) and their ratio, then
the median ratio, and how long `show` and `report` take on the last study (the median of
three runs of each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml

from attend_search.studies.storage.trial_reader import read_trials

NAME = "scale"
STUDY = {
    "schema": "attend-search/study/v1",
    "name": NAME,
    "space": "attendnext",
    "constraints": {
        "use": "best-practices",
        "params": {"max": 4.0e6},
        "latency": {"device": "cortex-a72", "max_ms": 400},
    },
    "objectives": [{"metric": "params"}, {"metric": "macs"}, {"metric": "latency.cortex-a72"}],
    "sampler": {"name": "nsga2", "population_size": 50},
    "presets": False,
    "seed": 0,
}


def command(folder: Path, *args: str) -> float:
    """Seconds one `attend-search` command takes, as a user would see it."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "attend_search.cli", *args],
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "CI": "true"},
    )
    return time.perf_counter() - start


def ms_per_trial(trials: list[optuna.trial.FrozenTrial]) -> float:
    span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    return span.total_seconds() / len(trials) * 1e3


def run_study(folder: Path, trials: int, jobs: int, window: int) -> tuple[float, float, float]:
    """``(seconds the run took, ms per trial over the first window, over the last)``."""
    (folder / "scale.yaml").write_text(yaml.safe_dump(STUDY))
    seconds = command(folder, "run", "scale.yaml", "--budget", str(trials), "--jobs", str(jobs))
    study = optuna.load_study(
        study_name=NAME, storage=f"sqlite:///{folder}/studies/{NAME}/study.db"
    )
    done = sorted(
        (t for t in read_trials(study, params=False) if t.datetime_complete),
        key=lambda t: t.datetime_complete,
    )
    return seconds, ms_per_trial(done[:window]), ms_per_trial(done[-window:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--window", type=int, default=500, help="trials compared at each end")
    parser.add_argument("--repeats", type=int, default=3, help="studies run, each from scratch")
    parser.add_argument(
        "--quick", action="store_true", help="one study of 600 trials, windows of 100 (CI)"
    )
    args = parser.parse_args()
    if args.quick:
        args.trials, args.window, args.repeats = 600, 100, 1
    print(
        f"{args.trials} trials, --jobs {args.jobs}, NSGA-II, cheap objectives, SQLite; "
        f"ms per trial over the first and the last {args.window} trials"
    )
    ratios = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            seconds, first, last = run_study(folder, args.trials, args.jobs, args.window)
            ratios.append(last / first)
            print(
                f"  run {repeat + 1}: first {first:5.1f}, last {last:5.1f} ({last / first:.2f}x), "
                f"run took {seconds:.0f} s",
                flush=True,
            )
            if repeat == args.repeats - 1:
                show = [command(folder, "show", NAME) for _ in range(3)]
                report = [
                    command(folder, "report", NAME, "--out", str(folder / "report.html"))
                    for _ in range(3)
                ]
                size = (folder / "studies" / NAME / "study.db").stat().st_size
    print(f"  last/first: {statistics.median(ratios):.2f}x (median of {len(ratios)})")
    print(f"  on the last study ({size / 2**20:.0f} MiB):")
    for name, seconds in (("show", show), ("report", report)):
        print(
            f"    {name + ':':7s} {statistics.median(seconds):5.1f} s "
            f"(runs: {', '.join(f'{s:.1f}' for s in seconds)})"
        )


if __name__ == "__main__":
    main()
