"""The report a researcher acts on: the Pareto set with metrics and export folders, units on
every axis, the accuracy estimate named, the hypervolume's reference point stated."""

import html
import re

from helpers import DATA, cli


def test_report_lists_the_pareto_set_with_export_folders_units_and_reference_point(workdir):
    cli("run", "tiny_study.yaml", "--budget", "16", cwd=workdir)
    show = cli("show", "tiny", cwd=workdir).stdout
    pareto = [
        int(line.split()[0])
        for line in show.split("Pareto set:")[1].splitlines()[3:]
        if line.strip()
    ]
    exported = cli(
        "export", "tiny", "--trial", pareto[0], "--format", "json", "--out", "ex", cwd=workdir
    ).stdout.split(":")[0]
    cli("report", "tiny", "--out", "out/report.html", "--exports", "ex", cwd=workdir)
    page = html.unescape((workdir / "out" / "report.html").read_text())

    table = page.split("<h2>Pareto set</h2>")[1].split("</table>")[0]
    rows = re.findall(r"<tr><td>(\d+)</td>", table)
    assert [int(n) for n in rows] == pareto  # the same members as `show`
    for header in (
        "synflow (log score)",
        "latency.cortex-a72 (ms)",
        "params (M)",
        "macs (M)",
        "peak activation (MB)",
        "export",
    ):
        assert f"<th>{header}</th>" in table
    # the exported member links its folder, relative to the report; the others say how
    assert f"<a href='../{exported}/'>{exported}</a>" in table
    assert table.count("(not exported yet)") == len(pareto) - 1
    assert (
        f"{len(pareto) - 1} not exported yet: attend-search export tiny --pareto --out ex." in page
    )

    # every axis has its unit; the estimate is named as one, with its measured quality
    titles = re.findall(r'"title":\{"text":"([^"]+)"', page)
    axis_titles = [
        t
        for t in titles  # all but the two figure titles
        if not t.startswith("Hypervolume dominated") and "ms predicted on" not in t
    ]
    assert "synflow (log score), an accuracy estimate" in axis_titles
    for title in axis_titles:
        assert re.search(r"\(.+\)|an accuracy estimate|^trial$", title), title
    assert (
        "synflow (log score): accuracy estimate, not accuracy (Spearman with CIFAR-10 accuracy "
        "on dev data: 0.76 NAS-Bench-201, 0.65 NAS-Bench-Macro; unmeasured on attention "
        "condenser networks)"
    ) in page
    assert page.count("accuracy estimate, not accuracy") == 1  # in the summary, once
    # the tiny space's 13 parameters: the 10 most important drawn, the others counted
    assert re.search(
        r"The 10 parameters most important to any objective; the other 3 \(each at most "
        r"[\d.]+% of an objective's variance\) are left out\.",
        page,
    )
    # the hypervolume's reference point, in the units shown
    assert re.search(
        r"Reference point: synflow \(log score\) [\d.]+, latency\.cortex-a72 \(ms\) "
        r"[\d.]+ \(each objective's worst feasible value, 10% further out\)",
        page,
    )
    assert "hypervolume (log score x ms)" in titles


def test_report_links_the_last_export_wherever_its_out_was(workdir):
    cli("run", "tiny_study.yaml", "--budget", "6", cwd=workdir)
    cli("export", "tiny", "--format", "json", "--out", "exp", cwd=workdir)
    # a table alone, elsewhere, exports no network: the record stays on exp
    cli("export", "tiny", "--format", "csv", "--out", "tables", cwd=workdir)
    cli("report", "tiny", "--out", "out/report.html", cwd=workdir)
    table = (workdir / "out" / "report.html").read_text().split("</table>")[1]
    folders = sorted(p.name for p in (workdir / "exp").iterdir() if p.is_dir())
    assert folders and "not exported yet" not in table
    assert sorted(re.findall(r"<a href='../exp/([^/]+)/'>exp/\1</a>", table)) == folders
    # one trial exported elsewhere is not the front: the record stays on exp
    trial = re.search(r"-trial(\d+)-", folders[0])[1]
    cli("export", "tiny", "--trial", trial, "--format", "json", "--out", "one", cwd=workdir)
    # the study and its exports moved together: the record is relative to the study
    moved = workdir / "moved"
    moved.mkdir()
    for name in ("studies", "exp"):
        (workdir / name).rename(moved / name)
    cli("report", "tiny", "--out", "report.html", cwd=moved)
    table = (moved / "report.html").read_text().split("</table>")[1]
    assert sorted(re.findall(r"<a href='exp/([^/]+)/'>exp/\1</a>", table)) == folders


def test_an_export_whose_record_cannot_be_written_warns_and_keeps_its_files(workdir):
    cli("run", "tiny_study.yaml", "--budget", "4", cwd=workdir)
    (workdir / "studies" / "tiny" / "last-export.json").mkdir()  # unwritable, even by root
    out = cli("export", "tiny", "--format", "json", "--out", "exp", cwd=workdir)
    assert "last-export.json not written" in out.stdout and "--exports exp" in out.stdout
    assert any(p.is_dir() for p in (workdir / "exp").iterdir())


def test_the_feasibility_plot_says_what_each_infeasible_trial_breaks_in_units(workdir):
    """A budget on synflow is known only for trials that met the cheap ones: the others'
    hover names the budget they broke, never the one they were not measured on."""
    from attend_search.studies import load, place, report
    from attend_search.studies.storage.trial_reader import read_trials

    study = (workdir / "tiny_study.yaml").read_text()
    study = study.replace(
        "params: {max: 40000}", "params: {max: 20000}\n  metrics: [{metric: synflow, min: 1}]"
    )
    (workdir / "tiny_study.yaml").write_text(study)
    cli("run", "tiny_study.yaml", "--budget", "12", cwd=workdir)
    config, stored = load(place("tiny", root=workdir / "studies"))
    fig = report._feasibility(read_trials(stored), config)
    (infeasible,) = [t for t in fig.data if t.name == "infeasible"]
    assert infeasible.text and all(
        re.search(r"params [\d.]+ M > 0\.02 M", t) for t in infeasible.text
    )
    assert not [t for t in infeasible.text if "nan" in t]


def test_top_on_two_objectives_needs_sort(workdir):
    early = cli("run", "tiny_study.yaml", "--budget", "6", "--top", "3", cwd=workdir, check=False)
    assert early.returncode == 2 and "needs --sort METRIC" in early.stderr
    assert not (workdir / "studies" / "tiny").exists()  # refused before any trial
    cli("run", "tiny_study.yaml", "--budget", "6", cwd=workdir)
    refused = cli("show", "tiny", "--top", "3", cwd=workdir, check=False)
    assert refused.returncode == 2
    assert (
        "--top on a study of 2 objectives (synflow, latency.cortex-a72) needs --sort METRIC"
        in refused.stderr
    )
    bad = cli("export", "tiny", "--top", "2", "--sort", "params", cwd=workdir, check=False)
    assert bad.returncode == 2 and "'params' is not an objective" in bad.stderr
    fastest = cli("show", "tiny", "--top", "3", "--sort", "latency.cortex-a72", cwd=workdir)
    lines = fastest.stdout.split("best 3 by latency.cortex-a72:")[1].splitlines()[3:]
    latencies = [float(line.split()[3]) for line in lines if line.strip()]
    assert len(latencies) == 3 and latencies == sorted(latencies)


def test_a_report_trains_nothing_and_draws_what_the_study_measures(monkeypatch):
    """Presets are scored only on metrics that need no training; the feasibility plot's axes
    and the latency breakdown's device are the study's own, from the metrics table."""
    from attend_search.evaluators.training import short
    from attend_search.studies import read_study, report

    def no_training(*args, **kwargs):
        raise AssertionError("the report trained a network")

    monkeypatch.setattr(short, "train_eval", no_training)
    study = {
        "name": "trained",
        "space": "attendnext",
        "objectives": [{"metric": "accuracy"}, {"metric": "latency.cortex-a76"}],
        "constraints": {"use": "none", "macs": {"max": 3.0e8}},
    }
    config = read_study(study, DATA)
    assert report._preset_points(config, ["accuracy", "latency.cortex-a76"]) == {}
    points = report._preset_points(config, ["params", "latency.cortex-a76"])
    assert points and all(
        set(p.values) >= {"params", "latency.cortex-a76"} for p in points.values()
    )
    assert report._cheap_axes(config) == ("latency.cortex-a76", "macs")


def test_presets_that_break_the_rules_are_hollow_stars_named_so_inside_padded_axes():
    from attend_search.studies import read_study, report

    study = {
        "name": "presets",
        "space": "attendnext",
        "objectives": [{"metric": "macs"}, {"metric": "latency.cortex-a72"}],
        "constraints": {"use": "best-practices", "params": {"max": 4.0e6}},
    }
    fig, caption = report._pareto_figure([], [], read_study(study, DATA))
    stars = {t.text[0]: t for t in fig.data if t.text}
    # attendnext keeps every rule and the budget; mobilenet_v2 breaks rules (no AADS, no
    # condenser) and mobilenet_v3_large the budget as well (5.48 M parameters)
    assert stars["attendnext"].marker.symbol == "star"
    assert stars["attendnext"].name == "attendnext"
    assert stars["mobilenet_v2"].marker.symbol == "star-open"
    assert stars["mobilenet_v2"].name.startswith("mobilenet_v2 (breaks: aads_downsampling, ")
    v3 = stars["mobilenet_v3_large"]
    assert v3.name.endswith("params <= 4 M)")
    assert "params 5.483 M > 4 M" in v3.hovertext[0]
    assert "hollow one breaks them" in caption and "Stars: the built-in presets" in caption
    for axis, values in (
        ("xaxis", [t.x[0] for t in stars.values()]),
        ("yaxis", [t.y[0] for t in stars.values()]),
    ):
        lo, hi = fig.layout[axis].range
        margin = 0.05 * (max(values) - min(values))
        assert lo < min(values) - margin and max(values) + margin < hi


def test_the_kernel_breakdown_gives_each_bar_its_own_label():
    """attendnets' first gate has two multiplications in one module: two bars, two lines."""
    from attend_search.search_space import get_preset
    from attend_search.studies import report

    fig = report._breakdown(get_preset("attendnets", num_classes=10), "cortex-a72")
    labels = list(fig.data[0].y)
    assert len(labels) == len(set(labels)) == 25
    assert "stages[0].blocks[0].attention (elementwise) #2" in labels
    assert set(fig.data[0].text) <= {"compute-bound", "DRAM-bound", "L2-bound", "L1-bound"}
