"""Space files: loading, refusals, and the advertised size against a brute-force count."""

import pytest
import yaml

from attend_search import SpaceError, load_space
from attend_search.search_space.space import read_space

TINY = """
schema: attend-search/space/v1
name: tiny
input_size: [32, 64]
num_classes: 10
stem: {out: [8, 16], downsample: [conv, aads]}
stages:
  count: [1, 2]
  slots:
    - {stride: [1, 2], depth: {low: 1, high: 2}, width: 16}
    - {stride: 2, depth: 1, width: [16, 32], micro: {block: condenser}}
micro:
  block: [condenser, inverted_residual, depthwise_separable]
  columns: [1, 2]
  merge: [add, concat]
  expand_ratio: [2, 4]
  se_ratio: [0, 0.25]
  se_gate: [sigmoid, hardsigmoid]
  attention: {stages: [1, 2], groups: [1, 2]}
head: {channels: [0, 32], act: [relu, hswish]}
"""


class Exhaustive:
    """Replays a prefix of decisions, then takes the first option and notes the branching."""

    def __init__(self, prefix):
        self.prefix, self.trail, self.params = list(prefix), [], {}

    def _pick(self, name, options):
        i = self.prefix[len(self.trail)] if len(self.trail) < len(self.prefix) else 0
        self.trail.append((i, len(options)))
        self.params[name] = options[i]
        return options[i]

    def choose(self, name, choices):
        return self._pick(name, list(choices))

    def integer(self, name, low, high, step):
        return self._pick(name, list(range(low, high + 1, step)))


def enumerate_space(space):
    """Every assignment by depth-first search over the define-by-run decisions."""
    specs, names, stack = [], set(), [[]]
    while stack:
        chooser = Exhaustive(stack.pop())
        specs.append(space.resolve(chooser))
        names |= set(chooser.params)
        trail = chooser.trail
        for k in range(len(chooser.prefix), len(trail)):  # branch at every new decision
            for alt in range(1, trail[k][1]):
                stack.append([t[0] for t in trail[:k]] + [alt])
    return specs, names


def test_size_equals_brute_force_count_and_parameters_cover_what_is_asked():
    space = read_space(yaml.safe_load(TINY))
    specs, names = enumerate_space(space)
    assert len(specs) == space.size
    listed = {p.name for p in space.parameters() if not p.dim.fixed}
    assert names == listed
    # distinct assignments give distinct networks in this space
    assert len({s.digest for s in specs}) == len(specs)


def test_builtin_space_loads_and_reports_its_size():
    space = load_space("attendnext")
    assert space.name == "attendnext"
    assert space.size > 10**20


def write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (("kernel: [3, 5]", "kernel: [3, 4]"), "micro.kernel[1]: 4 is not one of 3, 5, 7"),
        (
            ("groups: [1, 2]", "groups: [1, 3]"),
            "micro.attention.groups[1]: 3 is not one of 1, 2, 4, 8",
        ),
        (
            ("width: 16}", "width: 12, micro: {attention: {groups: 8}}}"),
            "stages.slots[0].micro.attention.groups: groups=8 does not divide the 12 channels that "
            "can enter a condenser of stage 0",
        ),
        (
            ("block: [condenser,", "block: [transformer,"),
            "micro.block[0]: transformer is not one of condenser, depthwise_separable, inverted_residual, cell, "
            "resnet_basic, macro",
        ),
        (
            ("schema: attend-search/space/v1", "schema: v9"),
            "schema: unsupported schema 'v9', expected 'attend-search/space/v1'",
        ),
        (
            ("depth: {low: 1, high: 2}", "depth: {low: 3, high: 2}"),
            "stages.slots[0].depth.high: 2 is below the minimum 3",
        ),
        (("count: [1, 2]", "count: [1, 3]"), "stages.count[1]: 3 is above the maximum 2"),
        (("num_classes: 10\n", ""), "num_classes: missing required field"),
        (("head: {", "head: {colour: red, "), "head.colour: unknown field"),
    ],
)
def test_bad_space_files_are_refused_with_file_and_field(tmp_path, edit, message):
    text = TINY.replace("micro:\n", "micro:\n  kernel: [3, 5]\n")
    assert edit[0] in text
    path = write(tmp_path, text.replace(edit[0], edit[1]))
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert str(info.value) == f"{path}: {message}"


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "schema: [unclosed\nname: x\n")
    with pytest.raises(SpaceError, match=r"space.yaml: malformed YAML \(line \d+, column \d+\)"):
        load_space(path)


def test_unknown_space_lists_the_builtin_ones():
    with pytest.raises(
        SpaceError,
        match="neither a built-in space \\(attendnext, nas-bench-201, nas-bench-macro\\) nor a file",
    ):
        load_space("no-such-space")


def test_params_for_recovers_sampled_specs_and_presets_in_the_space(space):
    from attend_search import get_preset
    from attend_search.search_space.space import RandomChooser

    for seed in range(100):
        chooser = RandomChooser(seed)
        spec = space.resolve(chooser)
        params = space.params_for(spec)
        assert params is not None, seed
        replayed = space.resolve(RandomChooserFrom(params))
        assert replayed.digest == spec.digest
    assert space.params_for(get_preset("attendnext")) is not None
    assert space.params_for(get_preset("mobilenet_v2")) is None  # 7 stages, ReLU6: outside


class RandomChooserFrom:
    """Answers from a dict, like an Optuna trial with enqueued parameters."""

    def __init__(self, params):
        self.params = params

    def choose(self, name, choices):
        assert self.params[name] in choices
        return self.params[name]

    def integer(self, name, low, high, step):
        return self.params[name]
