"""The command line, run as a user runs it: a subprocess, exit codes, stdout and stderr."""

import json
import re
import subprocess
import sys

from attend_search import get_preset


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "attend_search.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("space", "build", "presets"):
        assert command in out.stdout


def test_build_prints_a_layer_table_with_shapes_and_total(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(get_preset("mobilenet_v2").to_json())
    out = run("build", str(path))
    assert out.returncode == 0, out.stderr
    assert "stages[6].blocks[0]" in out.stdout
    assert "1x320x7x7" in out.stdout
    assert "total: 3,504,872 params (3.505 M), 314.4 M MACs" in out.stdout


def test_space_prints_parameters_and_size():
    out = run("space", "attendnext")
    assert out.returncode == 0, out.stderr
    assert "s2.attention.stages" in out.stdout and "s0.block = condenser" in out.stdout
    assert "size: " in out.stdout and "architectures" in out.stdout


def test_presets_lists_every_preset_with_its_parameters():
    out = run("presets")
    assert out.returncode == 0
    # the walk's figures, in millions: the built network has 5,483,032 parameters
    assert re.search(r"^mobilenet_v3_large +[0-9a-f]{16} +5\.483 +228\.6 +5 +15$", out.stdout, re.M)


def test_bad_spec_exits_2_with_file_and_field_and_no_traceback(tmp_path):
    data = json.loads(get_preset("attendnext").to_json())
    data["stages"][2]["blocks"][0]["kernel"] = 4
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    out = run("build", str(path))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"attend-search: error: {path}: stages[2].blocks[0].kernel: 4 is not one of 3, 5, 7"
    )
    assert "Traceback" not in out.stderr


def test_missing_file_and_bad_yaml_exit_2(tmp_path):
    out = run("build", str(tmp_path / "nope.json"))
    assert out.returncode == 2 and "no such spec file" in out.stderr
    bad = tmp_path / "space.yaml"
    bad.write_text("schema: [\n")
    out = run("space", str(bad))
    assert out.returncode == 2 and "malformed YAML" in out.stderr and "Traceback" not in out.stderr


def test_debug_shows_the_traceback(tmp_path):
    out = run("--debug", "build", str(tmp_path / "nope.json"))
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_evaluate_prints_costs_latency_top_layers_and_proxies():
    out = run("evaluate", "attendnext", "--proxy", "synflow", "--top", "3")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^params \(M\) +3\.243 \(3,243,028\)$", out.stdout, re.M)
    assert re.search(r"^peak activation \(MB\) +3\.\d+$", out.stdout, re.M)
    assert re.search(r"^latency\.cortex-a72 \(ms\) +[\d.]+$", out.stdout, re.M)
    assert re.search(r"^synflow \(log score\) +[\d.]+$", out.stdout, re.M)
    assert "slowest 3 kernels on cortex-a72" in out.stdout
    # the layer naming of `build`, not the module path: stages[3].blocks[1].pw
    assert re.search(
        r"^(stem|head\.\w+|stages\[\d\](\.columns\[\d\])?\.blocks\[\d+\]\S*) ",
        out.stdout.split("slowest")[1].splitlines()[3],
        re.M,
    )


def test_evaluate_ensemble_prints_each_of_its_signals():
    out = run("evaluate", "attendnets", "--proxy", "ensemble", "--top", "1")
    assert out.returncode == 0, out.stderr
    for row in ("ensemble", "ensemble.expressivity", "ensemble.naswot", "ensemble.complexity"):
        assert re.search(rf"^{re.escape(row)}( \(score\))? +-?[\d.]+$", out.stdout, re.M), row
    assert re.search(
        r"^ensemble \(score\): accuracy estimate, not accuracy \(Spearman .* "
        r"NAS-Bench-Macro; unmeasured on attention condenser networks\)$",
        out.stdout,
        re.M,
    )


def test_evaluate_json_matches_the_analytic_cost():
    from attend_search.evaluators.cost.analytic import analytic_cost

    out = run("evaluate", "mobilenet_v2", "--json", "--device", "cortex-a53", "--top", "2")
    data = json.loads(out.stdout)
    assert {k: data[k] for k in ("params", "macs", "peak_activation_bytes")} == analytic_cost(
        get_preset("mobilenet_v2")
    )
    assert data["latency"]["ms"] > 0 and len(data["latency"]["top_layers"]) == 2


def test_evaluate_refuses_an_unknown_proxy_or_device():
    assert run("evaluate", "attendnext", "--proxy", "nope").returncode == 2
    out = run("evaluate", "attendnext", "--device", "cortex-m0")
    assert out.returncode == 2 and "cortex-m0" in out.stderr and "Traceback" not in out.stderr


def test_build_json_and_the_kernel_breakdown_share_one_layer_naming():
    from attend_search.evaluators.cost.analytic import analytic_cost
    from attend_search.evaluators.latency.predict import predict_latency
    from attend_search.search_space.naming import layer_name

    out = run("build", "attendnext", "--json")  # two-column stages: stages[0].columns[1]...
    data = json.loads(out.stdout)
    spec = get_preset("attendnext")
    layers = [layer["name"] for layer in data["layers"]]
    assert "stages[0].columns[1].blocks[0]" in layers and "head.classifier" in layers
    cost = analytic_cost(spec)
    assert sum(layer["params"] for layer in data["layers"]) == cost["params"]
    merges = cost["macs"] - sum(layer["macs"] for layer in data["layers"])
    assert 0 <= merges < 0.01 * cost["macs"]  # only the column merges are in no row
    _, kernels = predict_latency(spec, "cortex-a72", breakdown=True)
    for kernel in kernels:  # every kernel named under a row of `build` (or a stage's merge)
        name = layer_name(kernel.name)
        assert any(name == row or name.startswith(row + ".") for row in layers) or re.fullmatch(
            r"stages\[\d\]", name
        ), name


def test_latency_calibrate_refuses_a_directory_as_its_output_before_measuring(tmp_path):
    (tmp_path / "board.csv").write_text("spec,latency_ms\nmobilenet_v2,30\nattendnets,12\n")
    out = run("latency", "calibrate", "board.csv", "--out", ".", cwd=tmp_path)
    assert out.returncode == 2 and ".: is a directory, expected the profile" in out.stderr
