import pytest

from attend_search import get_preset
from attend_search.constraints import ConstraintError, read_constraints


def test_best_practices_hold_for_attendnext_and_fail_for_mobilenet_v2_with_amounts():
    c = read_constraints({})
    assert set(c.structural(get_preset("attendnext")).values()) == {0.0}
    v2 = c.structural(get_preset("mobilenet_v2"))
    assert v2["aads_downsampling"] == 4  # four strided blocks, none anti-aliased
    assert v2["condensers_per_stage"] == 7  # seven stages without a condenser
    assert v2["max_depth"] == 0  # 17 blocks <= 24
    assert v2["width_non_decreasing"] == pytest.approx((32 - 16) / 320)


def test_overrides_disable_and_tighten_rules():
    c = read_constraints({"rules": {"aads_downsampling": False, "max_depth": {"max": 10}}})
    assert "aads_downsampling" not in c.rules
    assert c.structural(get_preset("mobilenet_v2"))["max_depth"] == 7
    assert read_constraints({"use": "none"}).rules == {}


def test_budgets_give_relative_violations_negative_within_budget():
    c = read_constraints(
        {
            "params": {"max": 4.0e6},
            "latency": {"device": "cortex-a72", "max_ms": 80},
            "metrics": [{"metric": "synflow", "min": 10}],
        }
    )
    v = c.budget_violations({"params": 5.0e6, "latency.cortex-a72": 40.0, "synflow": 5.0})
    assert v == {
        "params <= 4e+06": pytest.approx(0.25),
        "latency.cortex-a72 <= 80": -0.5,
        "synflow >= 10": 0.5,
    }
    assert c.metrics == ["params", "latency.cortex-a72", "synflow"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"use": "worst-practices"}, "constraints.use: unknown rule set 'worst-practices'"),
        ({"rules": {"max_width": {}}}, "constraints.rules.max_width: unknown rule"),
        (
            {"rules": {"max_depth": {"maximum": 3}}},
            "constraints.rules.max_depth.maximum: unknown field",
        ),
        ({"params": {"max": "lots"}}, "constraints.params.max: expected a number, got lots"),
        ({"latency": {"max_ms": 5}}, "constraints.latency.device: missing required field"),
        ({"metrics": [{"metric": "synflow"}]}, "constraints.metrics[0].max: give exactly one"),
        ({"flops": {"max": 1}}, "constraints.flops: unknown field"),
    ],
)
def test_bad_constraints_name_the_field(data, message):
    with pytest.raises(ConstraintError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_constraints(data)
