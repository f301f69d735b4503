"""A long study on the embedded storage: does a trial cost the same at 10,000 as at 500?

    .venv/bin/python benchmarks/bench_scale.py [--trials 10000] [--jobs 2] [--window 500] [--quick]

Runs `attend-search run` on the AttendNeXt space with cheap objectives only (parameters,
MACs, predicted Cortex-A72 latency; no proxy) and NSGA-II, the sampler for long runs, in a
fresh SQLite study. Then prints the time per trial over the first and the last `--window`
trials (from the trials' time stamps), their ratio, and how long `show` and `report` take
on the finished study (the median of three runs of each).
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

from attend_search.studies.trial_reader import read_trials

NAME = "scale"
STUDY = {"schema": "attend-search/study/v1", "name": NAME, "space": "attendnext",
         "constraints": {"use": "best-practices", "params": {"max": 4.0e6},
                         "latency": {"device": "cortex-a72", "max_ms": 400}},
         "objectives": [{"metric": "params"}, {"metric": "macs"},
                        {"metric": "latency.cortex-a72"}],
         "sampler": {"name": "nsga2", "population_size": 50}, "presets": False, "seed": 0}


def command(folder: Path, *args: str) -> float:
    """Seconds one `attend-search` command takes, as a user would see it."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "attend_search.cli", *args], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "CI": "true"})
    return time.perf_counter() - start


def ms_per_trial(trials: list[optuna.trial.FrozenTrial]) -> float:
    span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    return span.total_seconds() / len(trials) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--window", type=int, default=500, help="trials compared at each end")
    parser.add_argument("--quick", action="store_true", help="600 trials, windows of 100 (CI)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.window = 600, 100
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "scale.yaml").write_text(yaml.safe_dump(STUDY))
        run = command(folder, "run", "scale.yaml", "--budget", str(args.trials),
                      "--jobs", str(args.jobs))
        study = optuna.load_study(study_name=NAME,
                                  storage=f"sqlite:///{folder}/studies/{NAME}/study.db")
        trials = sorted((t for t in read_trials(study, params=False) if t.datetime_complete),
                        key=lambda t: t.datetime_complete)
        first, last = ms_per_trial(trials[:args.window]), ms_per_trial(trials[-args.window:])
        show = [command(folder, "show", NAME) for _ in range(3)]
        report = [command(folder, "report", NAME, "--out", str(folder / "report.html"))
                  for _ in range(3)]
        size = (folder / "studies" / NAME / "study.db").stat().st_size
    print(f"{len(trials)} trials, --jobs {args.jobs}, NSGA-II, cheap objectives, SQLite "
          f"({size / 2**20:.0f} MiB), run took {run:.0f} s")
    print(f"  first {args.window} trials: {first:6.1f} ms per trial")
    print(f"  last {args.window} trials:  {last:6.1f} ms per trial  ({last / first:.2f}x the first)")
    for name, seconds in (("show", show), ("report", report)):
        print(f"  {name + ':':7s} {statistics.median(seconds):5.1f} s "
              f"(runs: {', '.join(f'{s:.1f}' for s in seconds)})")


if __name__ == "__main__":
    main()
