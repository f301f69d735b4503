"""The command line starts at once: help, mistakes and the commands that only read specs and
spaces never import PyTorch, Optuna or the evaluators (about 2 s of imports)."""

import subprocess
import sys

import pytest
from helpers import environment

HEAVY = ("torch", "optuna", "onnxruntime", "plotly", "pandas", "sqlalchemy")

# run the CLI in-process, then report which heavy modules it imported
PROBE = """
import sys
from attend_search.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("IMPORTED", *sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def probe(*args):
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        env=environment(),
    )
    imported = out.stderr.rsplit("IMPORTED", 1)[1].split()
    return out, imported


@pytest.mark.parametrize(
    "args, code",
    [
        (["--help"], 0),
        (["nosuch"], 2),
        (["run"], 2),
        (["show", "x", "--top", "zero"], 2),
        (["presets"], 0),
        (["space"], 0),
        (["space", "nas-bench-201"], 0),
        *[
            ([command, "--help"], 0)
            for command in (
                "run",
                "worker",
                "show",
                "export",
                "report",
                "validate",
                "evaluate",
                "build",
                "latency",
            )
        ],
    ],
)
def test_help_mistakes_presets_and_space_import_no_heavy_library(args, code):
    out, imported = probe(*args)
    assert out.returncode == code, out.stderr
    assert imported == [], f"{args} imported {imported}"


def test_space_prints_both_sizes_and_says_which_is_which():
    out, _ = probe("space")
    assert "9.63e+24 architectures in the space as written" in out.stdout
    assert "4.91e+23 left once the best-practice rules remove the choices they forbid" in out.stdout


def test_a_command_that_needs_torch_still_gets_it():
    out, imported = probe("build", "attendnets")
    assert out.returncode == 0 and "torch" in imported
    assert "total: 942,086 params (0.942 M), 69.1 M MACs" in out.stdout


def test_the_clis_written_out_choices_are_the_evaluators():
    from attend_search.cli import latency, output_commands
    from attend_search.evaluators import runtimes
    from attend_search.evaluators.latency import calibrate
    from attend_search.studies.export import network as export

    assert latency.RUNTIMES == tuple(runtimes.RUNTIMES)
    assert set(latency.FIT_MODES) == set(calibrate.FIT_MODES)
    assert output_commands.QUANTIZE == export.QUANTIZE


def test_reading_a_study_of_cheap_objectives_loads_no_torch(tmp_path):
    """``show`` and ``report`` read the storage and walk specs: no network is built, so no
    PyTorch (about 2 s of a report on 10,000 trials)."""
    study = tmp_path / "cheap.yaml"
    study.write_text(
        "name: cheap\nspace: attendnext\npresets: false\n"
        "objectives: [{metric: params}, {metric: latency.cortex-a72}]\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "attend_search.cli",
            "run",
            str(study),
            "--budget",
            "12",
            "--root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=environment(),
    )
    assert run.returncode == 0, run.stderr
    for args in (["show", "cheap"], ["report", "cheap", "--out", str(tmp_path / "r.html")]):
        out, imported = probe(*args, "--root", str(tmp_path))
        assert out.returncode == 0, out.stderr
        assert "torch" not in imported, f"{args} imported torch"
    assert "Pareto front" in (tmp_path / "r.html").read_text()


def test_the_metric_table_names_every_proxy():
    from attend_search.evaluators.proxies import PROXIES
    from attend_search.explorer.metrics import ZERO_COST

    assert ZERO_COST == tuple(PROXIES)
