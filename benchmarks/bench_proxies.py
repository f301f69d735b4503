"""How well do the zero-cost proxies rank networks of the space? Kendall tau against short training.

Samples specs from a space, adapts them to a small dataset (by default the digits: 10 classes,
small inputs), scores each with every proxy on one real training batch, trains it for a few
epochs, and prints the Kendall tau of every proxy, and of the parameter count, against the
trained validation accuracy. The literature (Abdelfattah et al. 2021; Ning et al. 2021, "Evaluating efficient performance
estimators of neural architectures") finds that most proxies do not beat the parameter count:
the baseline row is there to keep the comparison honest.

    python benchmarks/bench_proxies.py --specs 40 --epochs 2 --minutes 17
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from scipy.stats import kendalltau

from attend_search import build_model, load_space
from attend_search.cli.common import table
from attend_search.evaluators.datasets import adapt_images, load_dataset
from attend_search.evaluators.proxies import PROXIES, zero_cost_all
from attend_search.evaluators.training import train_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="attendnext")
    parser.add_argument("--dataset", default="digits",
                        help="'digits' (easy: most specs saturate), a .npz file or a class folder")
    parser.add_argument("--specs", type=int, default=40, help="specs to sample")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64, help="examples the proxies see")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (more than the idle cores is much slower, not faster)")
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="start no new spec after this long; rank what is done")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset, image_size=args.input_size)
    space = load_space(args.space)
    images = adapt_images(data.x_train[:args.batch_size], 3)     # the specs take RGB
    batch = ((images - images.mean()) / images.std(), data.y_train[:args.batch_size])
    start, rows = time.monotonic(), []
    for seed in range(args.specs):
        if time.monotonic() - start > 60 * args.minutes:
            print(f"time budget spent after {len(rows)} specs", flush=True)
            break
        spec = replace(space.sample(seed), num_classes=data.num_classes, input_size=args.input_size)
        t0 = time.monotonic()
        scores = zero_cost_all(spec, batch=batch, seed=seed)
        t1 = time.monotonic()
        accuracy = train_eval(spec, data, args.epochs, seed=seed, progress=False)
        params = sum(p.numel() for p in build_model(spec).parameters())
        rows.append({"accuracy": accuracy, "params": params, **scores})
        print(f"spec {seed:3d}  acc {accuracy:.3f}  params {params / 1e6:6.2f}M  "
              + "  ".join(f"{k} {v:9.3f}" for k, v in scores.items())
              + f"  (proxies {t1 - t0:.1f}s, training {time.monotonic() - t1:.1f}s)", flush=True)

    accuracies = [r["accuracy"] for r in rows]
    print(f"\n{len(rows)} specs, {args.epochs} epochs on {data.name} at {args.input_size}px; "
          f"validation accuracy {min(accuracies):.3f} .. {max(accuracies):.3f}\n")
    lines = [["predictor", "Kendall tau", "p-value"]]
    for name in ("params", *PROXIES):
        tau, p = kendalltau([r[name] for r in rows], accuracies)
        lines.append([name, f"{tau:+.3f}", f"{p:.3f}"])
    print(table(lines, right={1, 2}))


if __name__ == "__main__":
    main()
