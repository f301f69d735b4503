"""``show``, ``report`` and ``export`` only read a study; export never overwrites unasked."""

from helpers import cli, dump


def test_show_report_and_export_leave_the_study_as_it_was(workdir):
    cli("run", "tiny_study.yaml", "--budget", 8, cwd=workdir)
    before = dump(workdir)
    cli("show", "tiny", cwd=workdir)
    cli("report", "tiny", "--out", "report.html", cwd=workdir)
    cli("export", "tiny", "--format", "json,csv", "--out", "out", cwd=workdir)
    assert dump(workdir) == before


def test_export_refuses_to_overwrite_unless_forced(workdir):
    cli("run", "tiny_study.yaml", "--budget", 6, cwd=workdir)
    best = ("--top", 1, "--sort", "synflow")  # two objectives: --top needs --sort
    cli("export", "tiny", *best, "--format", "json,csv", "--out", "out", cwd=workdir)
    written = {p: p.stat().st_mtime_ns for p in (workdir / "out").rglob("*")}
    again = cli(
        "export", "tiny", *best, "--format", "json,csv", "--out", "out", cwd=workdir, check=False
    )
    assert again.returncode == 2 and "already exists; --force replaces it" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in (workdir / "out").rglob("*")} == written
    cli("export", "tiny", *best, "--format", "json,csv", "--out", "out", "--force", cwd=workdir)
    assert not [p for p in (workdir / "out").iterdir() if p.name.startswith(".")]
    assert {p.name for p in (workdir / "out").rglob("*")} == {p.name for p in written}
