"""What the explorer stores on a trial: one typed record, the contract ``studies`` reads.

It is kept as a single user attribute (``record``, JSON), so a trial costs one storage write
for it and any Optuna tool (``optuna-dashboard``) still shows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from optuna.trial import FrozenTrial

KEY = "record"


@dataclass(frozen=True)
class TrialRecord:
    spec: dict[str, Any]  # the resolved architecture (Spec.to_dict())
    digest: str
    version: str  # attend-search version that evaluated it
    stream: int  # the sampler stream that proposed it
    metrics: dict[str, float] = field(default_factory=dict)
    violations: dict[str, float] = field(default_factory=dict)  # <= 0: constraint met
    feasible: bool = False
    imputed: tuple[str, ...] = ()  # objectives filled in, not measured
    duplicate_of: int | None = None  # trial whose evaluation was reused
    redraws: int = 0  # proposals drawn again because they repeated an architecture
    preset: str | None = None  # reference architecture it was enqueued as
    error: str | None = None  # why the evaluation failed
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: resolve, cost, ...

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["imputed"] = list(self.imputed)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrialRecord":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["imputed"] = tuple(values.get("imputed", ()))
        return cls(**values)


def record_of(trial: FrozenTrial) -> TrialRecord | None:
    """The trial's record; None for a trial that never got one (waiting, or died early)."""
    data = trial.user_attrs.get(KEY)
    return None if data is None else TrialRecord.from_json(data)
