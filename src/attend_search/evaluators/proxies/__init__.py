"""Zero-cost accuracy proxies: score an untrained network from one batch, without training.

Each proxy follows its paper, and the reference code where the paper leaves a choice open:

- ``synflow`` (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
  conserving synaptic flow"): ``log sum |theta * dR/dtheta|`` over the weights of every
  convolution and linear layer, where ``R = sum f(1; |theta|)`` is the output of the network
  with absolute weights on an all-ones input. Batch norm is removed (the identity), as in
  Abdelfattah et al.'s code, and the activations are too: the paper's ``R = 1'(prod |W|)1`` is
  the linearised network, which ReLU reaches by itself on positive inputs but ReLU6 (it
  saturates, zeroing the gradient), hard-swish and SiLU do not. Gates (sigmoid, hard-sigmoid
  of attention condensers and squeeze-excitation) are kept. Returned as a natural **log**,
  because the score grows geometrically with depth (about 1e50 on MobileNetV3 at 224) and
  overflows float32; computed in float64, or for the builder's networks in float32 with exact
  rescaling, to the same value (see :func:`synflow`).
- ``naswot`` (Mellor et al. 2021, "Neural architecture search without training"): the log
  determinant of ``K[i, j]`` = the number of activation units on which inputs ``i`` and ``j``
  have the same binary code (``N_A`` minus the Hamming distance), summed over every ReLU,
  ReLU6, Hardswish and SiLU module. A unit's code is ``output > 0``: for ReLU that is the
  paper's active/inactive code, and each of the four is positive exactly where its input is,
  so the code is the sign pattern of the pre-activation for all of them (ReLU6's upper
  saturation and hard-swish's curved part are not separate codes).
- ``grad_norm`` (Abdelfattah et al. 2021, "Zero-cost proxies for lightweight NAS"): the sum
  over convolution and linear layers of the Euclidean norm of the weight gradient of the
  cross-entropy loss.
- ``snip`` (the same paper, after Lee et al. 2019): ``sum |theta * dL/dtheta|`` over the same
  weights.
- ``zico`` (Li et al. 2023, "ZiCo: zero-shot NAS via inverse coefficient of variation on
  gradients"): the batch is split in two halves; per weight, the mean of ``|g|`` over the
  halves divided by the standard deviation of ``g``; per layer the log of the sum of those
  ratios (weights of zero deviation left out); summed over layers. As the reference code.
- ``ensemble``: three complementary signals from one forward, combined without labels or a
  population, see :func:`ensemble`; ``ensemble@FILE`` combines them with the weights of a fit
  file (``attend-search proxy fit``, :mod:`..estimate_fit`).

Scores are taken with batch norm in training mode (batch statistics, as at the start of
training) and dropout off (it would only add noise), on the network built from a spec, or on
one copy of a module passed in (left unchanged). Batch norm's running statistics, which the
passes update, do not enter a training-mode forward, so the proxies can share that network
and their passes: each score is the one it would have on a fresh copy. Without a ``batch`` of
real data the inputs are standard normal and the labels uniform, both drawn from the seed, so
a seed always gives the same score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

from ...errors import AttendSearchError
from ...search_space import Spec
from ..estimate_fit import ENSEMBLE_SCALES, ENSEMBLE_WEIGHTS, FITTED, combine, load_fit
from ..model_input import Shape, as_model, seeded
from .activation_codes import naswot
from .ensemble import ENSEMBLE_BATCH, ensemble
from .ensemble import signals as ensemble_signals
from .gradients import grad_norm, snip, zico
from .probe import Batch, Probe, check_batch, output_width, scratch, synthetic

__all__ = [
    "ENSEMBLE_SCALES",
    "ENSEMBLE_WEIGHTS",
    "PROXIES",
    "Batch",
    "check_proxy",
    "zero_cost",
    "zero_cost_all",
]


ProxyFn = Callable[[Probe], float]
# One entry a proxy: its score of a probe (a new proxy goes in a module of its family, and here)
PROXIES: dict[str, ProxyFn] = {
    "synflow": Probe.synflow,
    "naswot": lambda probe: naswot(probe.full_batch()[0]),
    "grad_norm": lambda probe: grad_norm(probe.full_batch()[1]),
    "snip": lambda probe: snip(probe.full_batch()[1]),
    "zico": lambda probe: zico(probe.model, *probe.batch),
    "ensemble": ensemble,
}


def check_proxy(name: str) -> str:
    """``name`` if it is a known proxy or names a readable fit file, else an error."""
    _proxy(name)
    return name


def _proxy(name: str) -> ProxyFn:
    """A proxy's function; ``ensemble@FILE``'s reads its fit file, once."""
    if name.startswith(FITTED) and name != FITTED:
        weights = load_fit(name.removeprefix(FITTED)).weights
        return lambda probe: combine(ensemble_signals(probe), weights)
    if name not in PROXIES:
        raise AttendSearchError(
            f"unknown proxy {name!r}; known: {', '.join(PROXIES)}, {FITTED}FILE"
        )
    return PROXIES[name]


def zero_cost(
    model_or_spec: nn.Module | Spec,
    input_shape: Shape | None = None,
    proxy: str = "synflow",
    batch: Batch | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    batch_size: int = 64,
) -> float:
    """One zero-cost proxy score of a spec (built with weights from ``seed``) or a module.

    ``input_shape`` is ``(N, C, H, W)``; only ``(C, H, W)`` is used, as the synthetic batch has
    ``batch_size`` examples. ``batch`` is ``(inputs, targets)`` of real data instead.
    ``num_classes`` (for synthetic labels) defaults to the spec's, or the model's output width.
    Higher is better for every proxy.
    """
    return zero_cost_all(model_or_spec, input_shape, [proxy], batch, seed, num_classes, batch_size)[
        proxy
    ]


def zero_cost_all(
    model_or_spec: nn.Module | Spec,
    input_shape: Shape | None = None,
    proxies: Iterable[str] | None = None,
    batch: Batch | None = None,
    seed: int = 0,
    num_classes: int | None = None,
    batch_size: int = 64,
    signals: bool = False,
) -> dict[str, float]:
    """Several proxies (all by default) of one network, on the same weights and batch.

    They share one scratch network: the model built here from a spec, else one copy of the
    module given (left untouched). Synflow, which rewrites the network, runs last and needs
    no batch; naswot, grad_norm and snip share one forward of the batch; the ensemble (built
    in or fitted) runs its own forward of its first :data:`ENSEMBLE_BATCH` examples. ``signals``:
    with an ensemble, its signals too, as ``ensemble.<signal>``.
    """
    functions = {name: _proxy(name) for name in (PROXIES if proxies is None else proxies)}
    names = list(functions)
    if batch is not None:
        check_batch(batch)
        input_shape = tuple(batch[0].shape)
    elif batch_size < 2:
        raise AttendSearchError(
            f"batch_size must be 2 or more (batch statistics), got {batch_size}"
        )
    with seeded(seed):
        model, shape = as_model(model_or_spec, input_shape)
    model = scratch(model, copy=model is model_or_spec)
    # the ensemble's few examples: the batch's first, else drawn alone (whatever batch_size)
    examples = (
        batch[0][:ENSEMBLE_BATCH]
        if batch is not None
        else synthetic(shape, ENSEMBLE_BATCH, 1, seed)[0]
    )
    if batch is None and any(n != "synflow" and not _is_ensemble(n) for n in names):
        if num_classes is None:
            num_classes = (
                model_or_spec.num_classes
                if isinstance(model_or_spec, Spec)
                else output_width(model, shape)
            )
        batch = synthetic(shape, batch_size, num_classes, seed)
    device = next(model.parameters()).device
    if batch is not None:
        batch = tuple(t.to(device) for t in batch)
    probe = Probe(model, shape, batch, names, examples.to(device))
    # synflow rewrites the network (it linearises it): last
    scores = {name: functions[name](probe) for name in sorted(names, key=lambda n: n == "synflow")}
    extra = (
        {f"ensemble.{k}": v for k, v in ensemble_signals(probe).items()}
        if signals and any(map(_is_ensemble, names))
        else {}
    )
    return {**{name: scores[name] for name in names}, **extra}


def _is_ensemble(name: str) -> bool:
    return name == "ensemble" or name.startswith(FITTED)
