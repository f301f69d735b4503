"""Every candidate accuracy signal of the dev architectures of one space, cached in a CSV.

For issue 22 (an accuracy estimate that transfers across spaces): the signals are computed
through the toolkit, on the network built from each spec, at ``zero_cost_all``'s settings
(batch 16, seed 0), and written one row per architecture, so that the design study
(``benchmarks/proxy_design.py``) never recomputes them. Resumable: rows already in the CSV are
skipped.

Signals (higher is better for all but where said):
- the proxies of ``zero_cost_all``: synflow, naswot, grad_norm, snip, zico, ensemble and the
  ensemble's signals, on one network (the CSVs in ``measurements/`` were made with the
  ensemble of the time: AZ-NAS's expressivity and progressivity, synflow, log params);
- ``log_macs``, ``log_params``: from ``analytic_cost`` (free, exact);
- ``expr16``, ``prog16``: AZ-NAS's expressivity and progressivity from a forward of all 16
  examples instead of 2;
- ``zen``: Zen-score (Lin et al., ICCV 2021): log of the norm of the change of the pre-pool
  features under a small input perturbation (0.01), plus the sum over batch norms of the log of
  their input's mean batch standard deviation; standard normal weights as in Zen-NAS.
- ``meco``: MeCo (Jiang et al., NeurIPS 2023): per convolution, the smallest eigenvalue of the
  correlation matrix of its output channels on the first example, summed.

Timing (``--timing N``): each signal alone, best of 3, on the first N architectures, network
build included, and written beside the CSV as ``<out>.timing.csv``.

    python benchmarks/proxy_signals.py --space macro --sample 1961 \\
        --out benchmarks/measurements/signals-macro-dev-415.csv
    python benchmarks/proxy_signals.py --space nb201 --sample 1000 \\
        --out benchmarks/measurements/signals-nb201-dev-602.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import time
from pathlib import Path

import torch
from dev_data import MACRO_DEV, NB201_DEV
from torch import nn

from attend_search import Spec, build_model, input_shape, macro_spec, nb201_spec
from attend_search.evaluators.cost.analytic import analytic_cost
from attend_search.evaluators.model_input import seeded
from attend_search.evaluators.proxies import zero_cost_all
from attend_search.evaluators.proxies.activation_codes import code_kernel, naswot
from attend_search.evaluators.proxies.expressivity import entropy_hooks
from attend_search.evaluators.proxies.modules import NORMS
from attend_search.evaluators.proxies.probe import scratch as _scratch
from attend_search.evaluators.proxies.probe import synthetic

BATCH, SEED = 16, 0
SPACES = {"nb201": (NB201_DEV, "arch_str", nb201_spec), "macro": (MACRO_DEV, "arch", macro_spec)}


def inputs(spec: Spec, n: int = BATCH, seed: int = SEED) -> torch.Tensor:
    """The standard normal batch zero_cost_all draws."""
    return synthetic(input_shape(spec), n, spec.num_classes, seed)[0]


def scratch(spec: Spec) -> nn.Module:
    with seeded(SEED):
        return _scratch(build_model(spec), copy=False)


def stage_hooks(model: nn.Module) -> tuple[list[list[float]], list]:
    """The entropies of each stage's blocks, as AZ-NAS groups them."""
    lists, hooks = zip(*(entropy_hooks(stage) for stage in model.stages))
    return list(lists), [h for stage in hooks for h in stage]


def az_nas(stages: list[list[float]]) -> dict[str, float]:
    """AZ-NAS's expressivity (the stages' last entropies, summed) and progressivity (the
    smallest change of entropy from one block to the next)."""
    stages = [e for e in stages if e]
    blocks = [e for stage in stages for e in stage]
    return {
        "expressivity": sum(stage[-1] for stage in stages),
        "progressivity": min((b - a for a, b in zip(blocks, blocks[1:])), default=0.0),
    }


def expr16(spec: Spec) -> dict[str, float]:
    model = scratch(spec)
    stages, hooks = stage_hooks(model)
    with torch.no_grad():
        model(inputs(spec).contiguous(memory_format=torch.channels_last))
    for h in hooks:
        h.remove()
    s = az_nas(stages)
    return {"expr16": s["expressivity"], "prog16": s["progressivity"]}


def zen(spec: Spec) -> dict[str, float]:
    """Zen-score (Zen-NAS's compute_zen_score, one repeat, mixup gamma 0.01)."""
    with seeded(SEED):
        model = _scratch(build_model(spec), copy=False)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.normal_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
    x = inputs(spec)
    generator = torch.Generator().manual_seed(SEED + 1)
    mixed = x + 0.01 * torch.randn(x.shape, generator=generator)
    stds: list[float] = []

    def hook(module, args, out):
        stds.append(float(args[0].detach().var(dim=(0, 2, 3)).mean().sqrt()))

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, NORMS)]
    with torch.no_grad():
        a = model.forward_features(x)
        for h in hooks:
            h.remove()
        b = model.forward_features(mixed)
    delta = float((a - b).abs().mean())  # Zen-NAS: mean |f(x) - f(x')| over all elements
    return {"zen": math.log(max(delta, 1e-300)) + sum(math.log(max(s, 1e-300)) for s in stds)}


def meco(spec: Spec) -> dict[str, float]:
    """MeCo: sum over convolutions of the least eigenvalue of the channel correlation of the
    first example's output (channels of zero variance left at correlation 0)."""
    model = scratch(spec)
    total = [0.0]

    def hook(module, args, out):
        f = out[0].detach().flatten(1).double()
        corr = torch.nan_to_num(torch.corrcoef(f), nan=0.0, posinf=0.0, neginf=0.0)
        total[0] += float(torch.linalg.eigvalsh(corr)[0])

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(inputs(spec, 8))
    for h in hooks:
        h.remove()
    return {"meco": total[0]}


SHARED_BATCHES = (2, 4, 8, 16)


def shared(spec: Spec, batches: tuple[int, ...] = SHARED_BATCHES) -> dict[str, float]:
    """Expressivity, progressivity and naswot from ONE forward of ``n`` examples each, for each
    ``n``: what an estimate that shares the pass would cost; and the MACs of convolutions and
    linear layers, counted by hooks in the same forward (what works for any module)."""
    model = scratch(spec)
    out: dict[str, float] = {}
    for n in batches:
        entropies, hooks = stage_hooks(model)
        kernel, more = code_kernel(model, n)
        macs = [0]

        def count(module, args, y):
            if isinstance(module, nn.Conv2d):
                per = module.in_channels // module.groups * math.prod(module.kernel_size)
                macs[0] += y[0].numel() * per
            else:
                macs[0] += module.in_features * module.out_features

        hooks += more + [
            m.register_forward_hook(count)
            for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))
        ]
        with torch.no_grad():
            model(inputs(spec, n).contiguous(memory_format=torch.channels_last))
        for h in hooks:
            h.remove()
        s = az_nas(entropies)
        out[f"expr{n}"], out[f"prog{n}"] = s["expressivity"], s["progressivity"]
        out[f"naswot{n}"] = naswot(kernel)
        out["log_conv_macs"] = math.log(macs[0])
    return out


def toolkit(spec: Spec) -> dict[str, float]:
    scores = zero_cost_all(spec, batch_size=BATCH, seed=SEED, signals=True)
    return {k.replace("ensemble.", "ens_"): v for k, v in scores.items()}


def cost(spec: Spec) -> dict[str, float]:
    c = analytic_cost(spec)
    return {"log_macs": math.log(c["macs"]), "log_params": math.log(c["params"])}


GROUPS = {
    "toolkit": toolkit,
    "cost": cost,
    "expr16": expr16,
    "zen": zen,
    "meco": meco,
    "shared": shared,
}


def timing(specs: list[Spec]) -> list[dict]:
    """Seconds per architecture of each proxy alone (best of 3), network build included."""
    jobs = {
        f"zero_cost_all[{p}]": (
            lambda s, p=p: zero_cost_all(s, proxies=[p], batch_size=BATCH, seed=SEED)
        )
        for p in ("synflow", "naswot", "grad_norm", "snip", "zico", "ensemble")
    }
    jobs["zero_cost_all[all]"] = toolkit
    jobs.update(
        {
            "analytic_cost": cost,
            "expr16": expr16,
            "zen": zen,
            "meco": meco,
            "build_model": lambda s: build_model(s),
            **{f"shared{n}": (lambda s, n=n: shared(s, (n,))) for n in SHARED_BATCHES},
        }
    )
    rows = []
    for name, fn in jobs.items():
        per = []
        for spec in specs:
            best = math.inf
            for _ in range(3):
                t = time.perf_counter()
                fn(spec)
                best = min(best, time.perf_counter() - t)
            per.append(best)
        rows.append({"signal": name, "mean_ms": 1e3 * sum(per) / len(per)})
        print(f"{name:28s} {rows[-1]['mean_ms']:8.1f} ms", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", choices=SPACES, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--sample", type=int, default=0, help="a random sample (seed 0) of rows, in random order"
    )
    ap.add_argument("--timing", type=int, default=0, help="time each signal on N archs")
    ap.add_argument("--groups", default=",".join(GROUPS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    path, column, make = SPACES[args.space]
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    if args.sample:  # shuffled, so that any prefix of the CSV is a random sample too
        rows = random.Random(0).sample(rows, min(args.sample, len(rows)))
    if args.timing:
        specs = [make(r[column]) for r in rows[: args.timing]]
        out = args.out.with_suffix(".timing.csv")
        out.parent.mkdir(parents=True, exist_ok=True)
        result = timing(specs)
        with out.open("w", newline="") as fh:
            w = csv.DictWriter(fh, ["signal", "mean_ms"])
            w.writeheader()
            w.writerows(result)
        return
    groups = [GROUPS[g] for g in args.groups.split(",")]
    done = set()
    if args.out.exists():
        with args.out.open() as fh:
            done = {r["arch"] for r in csv.DictReader(fh)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer, fh, start = None, None, time.perf_counter()
    todo = [r for r in rows if r[column] not in done]
    for i, row in enumerate(todo):
        spec = make(row[column])
        record = {"arch": row[column], "accuracy": row["cifar10_test_accuracy"]}
        for group in groups:
            record.update(group(spec))
        if writer is None:
            new = not args.out.exists()
            fh = args.out.open("a", newline="")
            writer = csv.DictWriter(fh, list(record))
            if new:
                writer.writeheader()
        writer.writerow(record)
        fh.flush()
        if i % 50 == 0:
            rate = (time.perf_counter() - start) / (i + 1)
            print(f"{i + 1}/{len(todo)} {rate:.2f} s/arch", file=sys.stderr, flush=True)
    if fh:
        fh.close()


if __name__ == "__main__":
    main()
