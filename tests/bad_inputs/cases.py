"""The bad-input corpus: malformed and hostile files, each with the message it must give.

A case is ``(kind, content, expected)``: ``kind`` says which command reads the file (see
``COMMANDS`` in ``test_bad_input.py``); ``content`` is the whole file (``bytes`` or
``str``), or ``(old, new)`` edits (one, or a list) of the valid file of that kind; ``expected`` is the start of the message after the
file's name: the field path as it appears in the file, then what is wrong.
"""

from pathlib import Path

DATA = Path(__file__).parent.parent / "data"
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)
DEEP = "[" * 50_000 + "]" * 50_000
# a YAML tag that a full loader would run: it would create ./pwned, which the test would see
PYTHON_TAG = '!!python/object/apply:os.system ["touch pwned"]'
NO_CONSTRUCTOR = "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object"

STUDY = [
    ("empty", b"", "<root>: expected a mapping, got NoneType"),
    ("not-utf8", "name: caf\xe9\n".encode("latin-1"), "not UTF-8 text: byte 0xe9 on line 1"),
    ("list", "- name: tiny\n", "<root>: expected a mapping, got list"),
    ("malformed", ("objectives:", "objectives: [\n"), "malformed YAML (line"),
    ("unknown-key", ("sampler:", "samplr:"), "samplr: unknown field"),
    (
        "typo-of-required-key",
        ("name: tiny", "nme: tiny"),
        "nme: unknown field (did you mean 'name'?)",
    ),
    (
        "name-escapes",
        ("name: tiny", "name: ../../etc"),
        "name: '../../etc' is not a valid study name",
    ),
    (
        "name-newline",
        ("name: tiny", 'name: "tiny\\n"'),
        "name: 'tiny\\n' is not a valid study name",
    ),
    (
        "schema",
        ("schema: attend-search/study/v1", "schema: attend-search/study/v9"),
        "schema: unsupported schema",
    ),
    (
        "no-objectives",
        ("objectives:\n", "objectives: []\nx:\n"),
        "objectives: needs at least 1 item(s), got 0",
    ),
    (
        "objectives-a-string",
        ("objectives:\n", "objectives: synflow\nx:\n"),
        "objectives: expected a list, got str",
    ),
    (
        "direction",
        ("direction: maximize", "direction: up"),
        "objectives[0].direction: up is not one of",
    ),
    (
        "objective-twice",
        ("metric: latency.cortex-a72", "metric: synflow"),
        "objectives: an objective metric appears twice",
    ),
    (
        "unknown-metric",
        ("metric: synflow", "metric: accurracy"),
        "objectives[0].metric: unknown metric 'accurracy' (did you mean 'accuracy'?); known:",
    ),
    (
        "unknown-metric-family",
        ("metric: latency.cortex-a72", "metric: latncy.cortex-a72"),
        "objectives[1].metric: unknown metric 'latncy.cortex-a72' (did you mean "
        "'latency.cortex-a72'?)",
    ),
    (
        "sampler-option-of-another",
        ("{name: tpe, n_startup_trials: 5}", "{name: random, population_size: 4}"),
        "sampler.population_size: random has no option 'population_size'",
    ),
    (
        "sampler-option-range",
        ("{name: tpe, n_startup_trials: 5}", "{name: nsga2, mutation_prob: 2}"),
        "sampler.mutation_prob: 2 is outside [0.0, 1.0]",
    ),
    (
        "unknown-sampler",
        ("{name: tpe, n_startup_trials: 5}", "annealing"),
        "sampler: annealing is not one of",
    ),
    (
        "unknown-pruner",
        ("seed: 0", "seed: 0\npruner: sometimes"),
        "pruner: sometimes is not one of",
    ),
    ("negative-seed", ("seed: 0", "seed: -1"), "seed: -1 is below the minimum 0"),
    ("seed-a-string", ("seed: 0", "seed: zero"), "seed: expected an integer, got zero"),
    (
        "negative-budget",
        ("params: {max: 40000}", "params: {max: -5}"),
        "constraints.params.max: -5 is not a positive budget",
    ),
    (
        "zero-budget",
        ("params: {max: 40000}", "params: {max: 0}"),
        "constraints.params.max: 0 is not a positive budget",
    ),
    (
        "infinite-budget",
        ("params: {max: 40000}", "params: {max: 1e400}"),
        "constraints.params.max: expected a finite number",
    ),
    (
        "huge-batch",
        ("proxy_batch_size: 4", "proxy_batch_size: 99999999999999999999"),
        "evaluation.proxy_batch_size: 99999999999999999999 is above the maximum 4096",
    ),
    (
        "latency-device",
        ("params: {max: 40000}", "params: {max: 40000}\n  latency: {device: cortex-m9, max_ms: 5}"),
        "constraints.latency.device: no such device: 'cortex-m9'",
    ),
    (
        "latency-zero",
        (
            "params: {max: 40000}",
            "params: {max: 40000}\n  latency: {device: cortex-a72, max_ms: 0}",
        ),
        "constraints.latency.max_ms: 0 is not a positive budget",
    ),
    (
        "contradicting-constraints",
        ("params: {max: 40000}", "params: {max: 40000}\n  metrics: [{metric: params, min: 50000}]"),
        "constraints.metrics[0].metric: params >= 50000 contradicts params <= 40000",
    ),
    (
        "min-and-max",
        (
            "params: {max: 40000}",
            "params: {max: 40000}\n  metrics: [{metric: synflow, min: 1, max: 2}]",
        ),
        "constraints.metrics[0].max: give exactly one of min or max",
    ),
    (
        "unknown-rule",
        ("condensers_per_stage: false", "condensers_per_stage: false, fast: true"),
        "constraints.rules.fast: unknown rule",
    ),
    (
        "simd-multiple-zero",
        (
            "condensers_per_stage: false",
            "condensers_per_stage: false, simd_channels: {multiple: 0}",
        ),
        "constraints.rules.simd_channels.multiple: 0 is below the minimum 1",
    ),
    (
        "negative-max-depth",
        ("condensers_per_stage: false", "condensers_per_stage: false, max_depth: {max: -3}"),
        "constraints.rules.max_depth.max: -3 is below the minimum 1",
    ),
    (
        "unknown-ruleset",
        ("use: best-practices", "use: worst-practices"),
        "constraints.use: unknown rule set",
    ),
    (
        "proxy-batch-1",
        ("proxy_batch_size: 4", "proxy_batch_size: 1"),
        "evaluation.proxy_batch_size: 1 is below the minimum 2",
    ),
    (
        "threads-huge",
        ("proxy_batch_size: 4", "proxy_batch_size: 4, threads: 99999999999999999999"),
        "evaluation.threads: 99999999999999999999 is above the maximum 256",
    ),
    (
        "epochs-zero",
        ("proxy_batch_size: 4", "proxy_batch_size: 4, training: {epochs: 0}"),
        "evaluation.training.epochs: 0 is below the minimum 1",
    ),
    (
        "training-device",
        ("proxy_batch_size: 4", "proxy_batch_size: 4, training: {device: tpu}"),
        "evaluation.training.device: tpu is not one of cpu, cuda",
    ),
    (
        "presets-not-bool",
        ("seed: 0", "seed: 0\npresets: yes please"),
        "presets: expected true or false",
    ),
    (
        "missing-space",
        ("space: tiny_space.yaml", "space: nowhere.yaml"),
        "space: no such space: 'nowhere.yaml'",
    ),
    (
        "space-a-number",
        ("space: tiny_space.yaml", "space: 7"),
        "space: expected a space name, a path or a mapping",
    ),
    ("billion-laughs", BILLION_LAUGHS, "document too large: more than 100,000 values"),
    ("deeply-nested", DEEP, "YAML nested too deeply"),
    ("too-large", "# padding\n" * 900_000, "too large for a study file"),
    ("python-tag", ("space: tiny_space.yaml", f"space: {PYTHON_TAG}"), NO_CONSTRUCTOR),
]

SPACE = [
    (
        "empty-slots",
        ("slots:\n", "slots: []\n  x:\n"),
        "stages.slots: needs at least 1 item(s), got 0",
    ),
    (
        "zero-width",
        ("width: [16, 24]", "width: [0, 24]"),
        "stages.slots[0].width[0]: 0 is below the minimum 1",
    ),
    (
        "huge-width",
        ("width: [16, 24]", "width: [16, 1000000000000]"),
        "stages.slots[0].width[1]: 1000000000000 is above the maximum 8192",
    ),
    (
        "groups-cannot-divide",
        [
            ("embed_ratio: [0.25, 0.5]}", "embed_ratio: [0.25, 0.5], groups: [8]}"),
            ("width: [16, 24]", "width: [12, 24]"),
        ],
        "micro.attention.groups: groups=8 does not divide the 12 channels",
    ),
    (
        "depth-low-above-high",
        ("depth: {low: 1, high: 2}, width: [16, 24]", "depth: {low: 3, high: 2}, width: [16, 24]"),
        "stages.slots[0].depth.high: 2 is below the minimum 3",
    ),
    (
        "input-too-small",
        ("input_size: [32, 48]", "input_size: [16, 48]"),
        "input_size[0]: 16 is below the minimum 32",
    ),
    ("unknown-micro-key", ("kernel: [3, 5]", "kernal: [3, 5]"), "micro.kernal: unknown field"),
    (
        "repeated-choice",
        ("kernel: [3, 5]", "kernel: [3, 3]"),
        "micro.kernel: choices repeat a value",
    ),
    (
        "stage-count-above-slots",
        ("count: [2, 3]", "count: [2, 4]"),
        "stages.count[1]: 4 is above the maximum 3",
    ),
    ("not-utf8", b"name: \xff\xfe\n", "not UTF-8 text: byte 0xff on line 1"),
]

SPEC = [
    ("kernel", ('"kernel": 3', '"kernel": 4'), "kernel: 4 is not one of 3, 5, 7"),
    (
        "no-stages",
        ('"stages": [', '"stages": [], "x": ['),
        "stages: needs at least 1 item(s), got 0",
    ),
    ("negative-out", ('"out": 32', '"out": -16'), "stem.out: -16 is below the minimum 1"),
    (
        "huge-out",
        ('"out": 32', '"out": 1000000000000'),
        "stem.out: 1000000000000 is above the maximum 8192",
    ),
    ("malformed", ('"stages"', '"stages'), "malformed JSON"),
    ("deeply-nested", DEEP, "JSON nested too deeply"),
    ("no-schema", ('"schema": "attend-search/spec/v1",', ""), "schema: missing required field"),
    ("empty", b"", "malformed JSON"),
]

DEVICE = [
    (
        "negative-bandwidth",
        ("bandwidth_gbs: 5.5", "bandwidth_gbs: -5.5"),
        "memory[1].bandwidth_gbs: -5.5 is not a positive",
    ),
    ("unknown-key", ("threads: 1", "threads: 1\nturbo: true"), "turbo: unknown field"),
    ("empty", b"", "<root>: expected a mapping"),
    ("python-tag", ("threads: 1", f"threads: {PYTHON_TAG}"), NO_CONSTRUCTOR),
]

CSV = [
    (
        "missing-column",
        "spec,ms\nattendnext,3\nmobilenet_v2,4\n",
        "header lacks column 'latency_ms'",
    ),
    (
        "negative-latency",
        "spec,latency_ms\nattendnext,-3\nmobilenet_v2,4\n",
        "latency_ms: expected a positive number",
    ),
    ("not-utf8", b"spec,latency_ms\n\xe9,3\n", "not UTF-8 text: byte 0xe9 on line 2"),
    ("empty", b"", "header lacks column 'spec'"),
]
