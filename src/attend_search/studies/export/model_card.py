"""The model card of an export folder (``MODEL_CARD.md``): what the network is, where it and
its weights come from, what each file holds, how well the files agree, and how to rebuild it.

Numbers carry their units and one format each: metrics in the units of the metrics table
(``explorer.metrics``: parameters and MACs in millions, memory in MB, latency in ms) to four
significant digits as ``show`` and the report give them, relative errors in scientific notation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ... import __version__
from ...explorer.feasibility import ConstraintState
from ...explorer.metrics import kind_of, metric_title, shown
from ...search_space import Spec
from .verify import CHECK_IMAGES, LATENCY_REPEATS, TOLERANCE, Check, Int8Check


@dataclass(frozen=True)
class Provenance:
    """Where a network and its weights come from, as the card tells it.

    ``weights`` says what the weights are ("untrained: the builder's initialisation",
    "trained 30 epochs on digits"); ``seed`` is the ``torch.manual_seed`` the weights were
    initialised under, where that made them; ``origin`` names the source ("trial 17 of study
    `default`"); ``metrics`` are tabled as recorded there, ``constraints`` as the network
    stands against each (:func:`~attend_search.explorer.feasibility.constraint_states`);
    ``details`` are Markdown lines that follow (how the weights were trained).
    """

    weights: str
    origin: str = ""
    seed: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    constraints: Sequence[ConstraintState] = ()
    details: Sequence[str] = ()


@dataclass(frozen=True)
class CardFacts:
    """What an export measured: files and what they hold, checks, int8 and latency."""

    files: Mapping[str, str]
    weights_sha256: str
    checks: Sequence[Check]
    int8: Sequence[Int8Check] = ()
    calibration: str = ""
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    machine: str = ""


def format_metric(metric: str, value: float) -> tuple[str, str]:
    """``(value, unit)`` as the card and manifest show a metric of the metrics table."""
    return f"{shown(metric, value):,.4g}", kind_of(metric).unit


def model_card(spec: Spec, provenance: Provenance, facts: CardFacts) -> str:
    size = f"{spec.in_channels}x{spec.input_size}x{spec.input_size}"
    lines = [
        f"# {spec.name}",
        "",
        f"{provenance.origin + ', ' if provenance.origin else ''}exported by attend-search "
        f"{__version__}. Spec digest `{spec.digest}`; input N x {size} (float32, pixels in "
        f"[0, 1]); {spec.num_classes} classes.",
        "",
        "## Weights",
        "",
        f"{provenance.weights}.",
    ]
    if provenance.seed is not None:
        lines += [
            f"Initialised under `torch.manual_seed({provenance.seed})`; rebuilding from "
            f"the spec alone gives other weights, so load `weights.safetensors`."
        ]
    lines += ["", f"`weights.safetensors`: SHA-256 `{facts.weights_sha256}`."]
    if provenance.metrics:
        lines += [
            "",
            "## Metrics",
            "",
            *_table(
                ["metric", "value", "unit"],
                [[metric_title(k), *format_metric(k, v)] for k, v in provenance.metrics.items()],
                numbers={1},
            ),
        ]
    if provenance.constraints:
        lines += [
            "",
            "## Constraints",
            "",
            *_table(
                ["constraint", "value", "met"],
                [[c.constraint, c.value, "yes" if c.met else "NO"] for c in provenance.constraints],
                numbers={1},
            ),
        ]
    lines += provenance.details
    lines += ["", "## Files", ""] + [f"- `{name}`: {what}" for name, what in facts.files.items()]
    lines += _verification(facts) + _int8(facts) + _latency(facts)
    lines += [
        "",
        "## Rebuild in Python",
        "",
        "```python",
        "from safetensors.torch import load_model",
        "from attend_search import Spec, build_model",
        "",
        "spec = Spec.from_json(open('spec.json').read())",
        f"model = build_model(spec).eval()  # digest {spec.digest}",
        "load_model(model, 'weights.safetensors')  # the exported weights",
        "```",
        "",
    ]
    return "\n".join(lines)


def _verification(facts: CardFacts) -> list[str]:
    if not facts.checks:
        return []
    return [
        "",
        "## Verification",
        "",
        f"Each file run on {CHECK_IMAGES} fixed images (uniform pixels, seed 0) against the "
        f"PyTorch network rebuilt from `spec.json` and `weights.safetensors`; error = max "
        f"|file - PyTorch| / max |PyTorch logit| (here {facts.checks[0].largest_logit:.3e}); "
        f"an export fails above {TOLERANCE:.0e}.",
        "",
        *_table(
            ["file", "relative error"],
            [[f"`{c.file}`", f"{c.relative_error:.2e}"] for c in facts.checks],
        ),
    ]


def _int8(facts: CardFacts) -> list[str]:
    if not facts.int8:
        return []
    return [
        "",
        "## int8",
        "",
        f"Post-training static quantization (int8 weights per channel, int8 activations), "
        f"calibrated on {facts.calibration}. Top-1 on those same images (calibration data, "
        f"not a held-out test). With untrained weights the top-1 columns mean nothing; "
        f"the last column, how often int8 picks the float network's class, is what shows "
        f"the quantization's damage:",
        "",
        *_table(
            ["file", "top-1 int8", "top-1 float", "drop (points)", "same class as float"],
            [
                [
                    f"`{c.file}`",
                    f"{c.accuracy:.1%}",
                    f"{c.float_accuracy:.1%}",
                    f"{100 * (c.float_accuracy - c.accuracy):.1f}",
                    f"{c.agreement:.1%}",
                ]
                for c in facts.int8
            ],
        ),
    ]


def _latency(facts: CardFacts) -> list[str]:
    if not facts.latency_ms:
        return []
    return [
        "",
        "## Measured latency",
        "",
        f"Batch 1, one thread, median of {LATENCY_REPEATS} runs after 5 warm-up runs, on "
        f"{facts.machine} while exporting (not the target device; other load on the "
        f"machine is not controlled).",
        "",
        *_table(
            ["file", "runtime", "ms"],
            [
                [f"`{name}`", "onnxruntime" if name.endswith(".onnx") else "LiteRT", f"{ms:.2f}"]
                for name, ms in facts.latency_ms.items()
            ],
            numbers={2},
        ),
    ]


def _table(header: list[str], rows: list[list[str]], numbers: set[int] | None = None) -> list[str]:
    """Markdown; the ``numbers`` columns right-aligned (default: all but the first)."""
    numbers = set(range(1, len(header))) if numbers is None else numbers
    rule = "|" + "".join("---:|" if i in numbers else "---|" for i in range(len(header)))
    return [
        "| " + " | ".join(header) + " |",
        rule,
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
