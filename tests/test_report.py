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
    assert points and all(set(v) >= {"params", "latency.cortex-a76"} for v in points.values())
    assert report._cheap_axes(config) == ("latency.cortex-a76", "macs")
