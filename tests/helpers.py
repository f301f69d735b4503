"""Running the command line as a user does, for the end-to-end tests."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

DATA = Path(__file__).parent / "data"
# The public dev data, beside the repository (``../shared/data``), as CI has it
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NB201_DEV = SHARED_DATA / "nb201" / "nb201_dev.csv"
MACRO_DEV = SHARED_DATA / "macro" / "macro_dev.csv"
POSTGRES = os.environ.get("ATTEND_SEARCH_TEST_POSTGRES")


def cli(*args, cwd, check=True, env=None):
    out = subprocess.run(
        [sys.executable, "-m", "attend_search.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment(**(env or {})),
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def start(*args, cwd, until, env=None, timeout=180, group=False):
    """The command line in the background, returned once ``until()`` holds (it must not end
    before), for a test that interrupts it there; ``group``: in a process group of its own,
    as a terminal's foreground job, which Ctrl-C signals whole (``os.killpg``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "attend_search.cli", *map(str, args)],
        cwd=cwd,
        env=environment(**(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=group,
    )
    deadline = time.time() + timeout
    while not until():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1]
        time.sleep(0.02)
    return proc


FAULTS = Path(__file__).parent / "faults"
GRACE = 2  # heartbeat grace period (s) for the fault tests; 60 by default


def fault_env(fault=None, mark=None):
    """Environment for a command line with an injected fault (``faults/sitecustomize.py``)."""
    path = os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": path, "ATTEND_SEARCH_HEARTBEAT_GRACE": str(GRACE)}
    if fault:
        env.update(ATTEND_SEARCH_FAULT=fault, ATTEND_SEARCH_FAULT_MARK=str(mark or ""))
    return env


def environment(**extra):
    return {**os.environ, "CI": "true", **extra}


def storage_trials(workdir, name="tiny"):
    study = optuna.load_study(
        study_name=name, storage=f"sqlite:///{workdir}/studies/{name}/study.db"
    )
    return study.get_trials(deepcopy=False)


def dump(workdir, name="tiny"):
    """Every row of the study's database, as SQL: equal dumps, nothing written."""
    db = sqlite3.connect(workdir / "studies" / name / "study.db")
    try:
        return list(db.iterdump())
    finally:
        db.close()


def postgres_trials(name):
    """The trials of study ``name`` on the test PostgreSQL server, its connections closed
    after (a pooled connection left to the garbage collector warns in a later test)."""
    storage = optuna.storages.RDBStorage(POSTGRES)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def needs(path: Path):
    """Skip a test whose data file is missing, except in CI (``$CI``), where it must be there:
    a test that quietly never runs there would prove nothing."""
    return pytest.mark.skipif(
        not path.is_file() and not os.environ.get("CI"), reason=f"{path} is not on this machine"
    )


def cheap_study(**changes):
    """The AttendNeXt space (~1e23 architectures) with cheap objectives: fast trials."""
    study = {
        "name": "cheap",
        "space": "attendnext",
        "constraints": {"use": "best-practices", "params": {"max": 6.0e6}},
        "objectives": [{"metric": "params"}, {"metric": "latency.cortex-a72"}],
        "presets": False,
        **changes,
    }
    from attend_search.studies import read_study

    return read_study(study, DATA)


def assert_walk_is_the_trace(spec) -> None:
    """A spec's walked cost and kernels equal those traced from its built network."""
    from attend_search import build_model, input_shape
    from attend_search.evaluators.cost.analytic import analytic_cost
    from attend_search.evaluators.cost.traced import fvcore_cost, peak_activation_bytes
    from attend_search.evaluators.latency.kernels import extract_kernels

    model, shape = build_model(spec), input_shape(spec)
    assert analytic_cost(spec) == {
        **fvcore_cost(model, shape),
        "peak_activation_bytes": peak_activation_bytes(model, shape),
    }
    assert extract_kernels(spec) == extract_kernels(model, shape)


def assert_synflow_fast_path_is_the_reference(spec) -> None:
    """Synflow of the builder's network takes the float32 fast path, to the float64 value."""
    from attend_search import build_model, input_shape
    from attend_search.evaluators.model_input import seeded
    from attend_search.evaluators.proxies import probe, synaptic_flow

    networks = []
    for _ in range(2):
        with seeded(0):
            networks.append(probe.scratch(build_model(spec), copy=False))
    fast, reference = networks
    assert all(type(m) in synaptic_flow._SCALABLE for m in fast.modules())
    assert synaptic_flow.synflow(fast, input_shape(spec)) == pytest.approx(
        synaptic_flow._synflow_float64(reference, input_shape(spec)), rel=1e-8
    )


# NAS-Bench-201 cells whose none edges leave dead branches, a node of zeros, a cell of zeros
NONE_CELLS = (
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|",
    "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|",
    "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
)


def learned_scales(kernels) -> int:
    """Kernels of the attention's learned scale, a multiply by one before training, which
    both converters drop (a trained network runs it): x * gate reads two maps; * scale one
    and a float."""
    return sum(
        1 for k in kernels if k.name.endswith(".attention") and k.ops == ("mul",) and k.bytes % 8
    )


# the node each onnxruntime kernel runs as (in its optimised graph): by class, else by its
# first op
ORT_NODE = {
    "conv": "Conv",
    "pointwise": "Conv",
    "depthwise": "Conv",
    "grouped": "Conv",
    "linear": "Gemm",
    "max_pool": "MaxPool",
    "avg_pool": "AveragePool",
    "upsample": "Resize",
    "global_pool": "ReduceMean",
    "concat": "Concat",
    "relu": "Relu",
    "relu_": "Relu",
    "add": "Add",
    "mul": "Mul",
    "sigmoid": "Sigmoid",
    "silu_": "QuickGelu",
    "hardsigmoid": "HardSigmoid",
    "native_batch_norm": "BatchNormalization",
    "reorder_input": "ReorderInput",  # x86's blocked layout
    "reorder_output": "ReorderOutput",
}
