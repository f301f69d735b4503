"""Compute the metrics a study asks for, for one spec.

Cheap metrics come from the spec alone; PyTorch is imported where an expensive metric first
needs a network, so reading a study (``show``, ``report``) never loads it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ..evaluators.cost.analytic import analytic_cost
from ..evaluators.latency.predict import predict_latency
from ..search_space import Spec
from .metrics import by_evaluator, is_cheap, latency_device
from .stopwatch import Stopwatch

if TYPE_CHECKING:
    from ..evaluators.training.datasets import Dataset


@dataclass(frozen=True)
class Training:
    """Short training for the ``accuracy`` metric."""

    dataset: str = "digits"
    epochs: int = 2
    batch_size: int = 64
    input_size: int | None = 32
    device: str = "cpu"


@dataclass(frozen=True)
class Evaluation:
    """How expensive metrics are taken: proxy batch size and seed, the training recipe."""

    proxy_batch_size: int = 16
    seed: int = 0
    training: Training = Training()
    threads: int = 1  # per worker: parallelism comes from --jobs, not from oversubscription

    def cheap(
        self, spec: Spec, metrics: list[str], clock: Stopwatch | None = None
    ) -> dict[str, float]:
        """Costs (always all three: they are free) and any latency predictions asked for."""
        clock = clock or Stopwatch()
        with clock("cost"):
            values: dict[str, float] = dict(analytic_cost(spec))
        with clock("latency"):
            for metric in by_evaluator(metrics, "predict_latency"):
                values[metric] = predict_latency(spec, latency_device(metric))
        return values

    def load(self, metrics: list[str]) -> None:
        """Import what the expensive ``metrics`` need (PyTorch, ~2 s) before a search begins,
        where a Ctrl-C can wait: one that landed inside that import, during the first trial,
        made Python exit by SIGINT (status -2, not 130) after the trial was closed."""
        if not all(map(is_cheap, metrics)):
            from ..evaluators import proxies, training  # noqa: F401

    def expensive(
        self,
        spec: Spec,
        metrics: list[str],
        report: Callable[[int, float], None] | None = None,
        clock: Stopwatch | None = None,
    ) -> dict[str, float]:
        """Proxies on one shared batch, then short training if ``accuracy`` is asked for, on
        ``threads`` threads."""
        proxies = by_evaluator(metrics, "zero_cost")
        trained = by_evaluator(metrics, "train_eval")
        if not proxies and not trained:
            return {}
        from ..evaluators.graph.trace import torch_threads  # PyTorch from here on only
        from ..evaluators.proxies import zero_cost_all
        from ..evaluators.training.short import train_eval

        clock = clock or Stopwatch()
        values = {}
        with torch_threads(self.threads):
            if proxies:
                with clock("proxy"):
                    values = zero_cost_all(
                        spec, proxies=proxies, seed=self.seed, batch_size=self.proxy_batch_size
                    )
            for metric in trained:
                t = self.training
                with clock("training"):
                    values[metric] = train_eval(
                        spec,
                        _dataset(t.dataset),
                        t.epochs,
                        batch_size=t.batch_size,
                        input_size=t.input_size,
                        device=t.device,
                        seed=self.seed,
                        callback=report,
                        progress=False,
                    )
        broken = {name: value for name, value in values.items() if not math.isfinite(value)}
        if broken:  # a singular naswot kernel, synflow of a dead network: not a ranking
            raise ValueError(
                "not a finite value: "
                + ", ".join(f"{name} = {value}" for name, value in broken.items())
            )
        return values


@lru_cache(maxsize=2)
def _dataset(source: str) -> Dataset:
    """Loaded once per process, not once per trial."""
    from ..evaluators.training.datasets import load_dataset

    return load_dataset(source)
