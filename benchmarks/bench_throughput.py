"""Trials per minute of the default study, with one and two worker processes, and where a
trial's time goes.

    .venv/bin/python benchmarks/bench_throughput.py [--trials 300] [--repeats 5] [--quick]

Each run is `attend-search run study.yaml --budget N --jobs J` on the built-in default study,
in a fresh folder (fresh SQLite study), as a user runs it. Throughput is taken from the
trials' own time stamps (first start to last finish: the search, not the process start-up);
the wall time of the command is printed beside it. `--jobs 1` and `--jobs 2` alternate within
each repeat, so their ratio is taken under the same machine load; the medians are printed.

Repeat r runs both settings with study seed r. A trial's cost depends on the architecture the
sampler proposes (infeasible ones skip the proxy; bigger networks take longer), and two
workers never follow one worker's path, so one seed compares two different searches: over
seeds, both settings average over paths alike.

Then one `--jobs 1` run in this process with the storage, the sampler and the evaluators
timed (exclusive time: a storage read inside the sampler counts as storage), so the next
bottleneck is visible.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from functools import wraps
from importlib import resources
from pathlib import Path

import optuna
import yaml

from attend_search.evaluators import proxies as proxies_module
from attend_search.explorer import evaluation as evaluation_module
from attend_search.explorer import optimize, record_of
from attend_search.explorer.search import quiet_optuna
from attend_search.search_space.space import Space
from attend_search.studies import create, load_study_file, place

STUDY = "default"


def timed_run(trials: int, jobs: int, seed: int, folder: Path) -> tuple[float, float, list]:
    """(trials per minute from time stamps, wall seconds of the command, trials)."""
    study = yaml.safe_load((resources.files("attend_search.studies") / "default.yaml").read_text())
    (folder / "study.yaml").write_text(yaml.safe_dump({**study, "seed": seed}))
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "attend_search.cli",
            "run",
            "study.yaml",
            "--budget",
            str(trials),
            "--jobs",
            str(jobs),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "true"},
    )
    if done.returncode != 0:
        raise SystemExit(f"--jobs {jobs} failed (exit {done.returncode}):\n{done.stderr}")
    wall = time.perf_counter() - start
    study = optuna.load_study(
        study_name=STUDY, storage=f"sqlite:///{folder}/studies/{STUDY}/study.db"
    )
    done = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete]
    span = (
        max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    ).total_seconds()
    return len(done) / span * 60, wall, done


class Exclusive:
    """Exclusive wall time per category over nested calls."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[str] = []
        self.last = time.perf_counter()

    def _switch(self) -> None:
        now = time.perf_counter()
        if self.stack:
            self.totals[self.stack[-1]] += now - self.last
        self.last = now

    def wrap(self, category: str, fn):
        @wraps(fn)
        def timed(*args, **kwargs):
            self._switch()
            self.stack.append(category)
            try:
                return fn(*args, **kwargs)
            finally:
                self._switch()
                self.stack.pop()

        return timed


def breakdown(trials: int, folder: Path) -> tuple[dict[str, float], int]:
    """Milliseconds per trial by category, from one in-process `--jobs 1` run."""
    clock = Exclusive()
    config = load_study_file(None)
    patches = [
        (evaluation_module, "analytic_cost", "cost"),
        (evaluation_module, "predict_latency", "latency"),
        (proxies_module, "zero_cost_all", "proxy"),  # imported where first needed
        (Space, "resolve", "spec resolution"),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, category in patches:
        setattr(owner, name, clock.wrap(category, getattr(owner, name)))
    try:
        with quiet_optuna():
            run = create(config, place(STUDY, root=folder / "studies"))
            storage, sampler = run.study._storage, run.study.sampler
            for name in dir(type(storage)):
                if not name.startswith("_") and callable(getattr(storage, name)):
                    setattr(storage, name, clock.wrap("storage", getattr(storage, name)))
            backend = storage._backend  # a trial's parameters go there in one write
            backend.set_trial_params = clock.wrap("storage", backend.set_trial_params)
            for name in (
                "infer_relative_search_space",
                "sample_relative",
                "sample_independent",
                "before_trial",
                "after_trial",
            ):
                setattr(sampler, name, clock.wrap("sampling", getattr(sampler, name)))
            total = clock.wrap("other (Optuna, records, rules)", optimize)
            total(run, n_trials=trials)
            n = len(run.study.get_trials(deepcopy=False))
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    return {k: v / n * 1e3 for k, v in sorted(clock.totals.items(), key=lambda kv: -kv[1])}, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per run (300)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per --jobs setting (5)")
    parser.add_argument("--quick", action="store_true", help="30 trials, one repeat (for CI)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.repeats = 30, 1
    rates: dict[int, list[float]] = {1: [], 2: []}
    walls: dict[int, list[float]] = {1: [], 2: []}
    feasible: dict[int, list[float]] = {1: [], 2: []}
    proxy_ms: dict[int, list[float]] = {1: [], 2: []}
    for seed in range(args.repeats):
        for jobs in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                rate, wall, done = timed_run(args.trials, jobs, seed, Path(folder))
            records = [record_of(t) for t in done]
            rates[jobs].append(rate)
            walls[jobs].append(wall)
            feasible[jobs].append(sum(bool(r.feasible) for r in records) / len(done))
            proxy_ms[jobs].append(
                sum(r.seconds.get("proxy", 0.0) for r in records) / len(done) * 1e3
            )
    print(
        f"default study, {args.trials} trials a run, {args.repeats} run(s) per setting, "
        f"{os.cpu_count()} cores; repeat r on study seed r; median of the runs"
    )
    for jobs in (1, 2):  # the sampler's path, hence the proxy work, differs between runs
        print(
            f"  --jobs {jobs}: {statistics.median(rates[jobs]):6.0f} trials/min "
            f"(command wall time {statistics.median(walls[jobs]):.1f} s; "
            f"{statistics.median(feasible[jobs]):.0%} feasible, proxies "
            f"{statistics.median(proxy_ms[jobs]):.0f} ms a trial; per run: "
            f"{', '.join(f'{r:.0f}' for r in rates[jobs])} trials/min)"
        )
    ratios = [b / a for a, b in zip(rates[1], rates[2])]
    print(
        f"  --jobs 2 / --jobs 1: {statistics.median(ratios):.2f}x "
        f"(per repeat: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    with tempfile.TemporaryDirectory() as folder:
        per_trial, n = breakdown(min(args.trials, 100), Path(folder))
    print(f"\nwhere a trial's time goes (--jobs 1, {n} trials, ms per trial, exclusive):")
    for category, ms in per_trial.items():
        print(f"  {category:32s} {ms:8.1f}")
    print(f"  {'total':32s} {sum(per_trial.values()):8.1f}")


if __name__ == "__main__":
    main()
