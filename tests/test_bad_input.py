"""Every file in the bad-input corpus (``bad_inputs/cases.py``) is refused the same way:
exit code 2, a message naming the file and the field path, no traceback, nothing written.

Each case runs the command line in-process (``main``), in a fresh folder holding only the
file, so anything a command writes is seen.
"""

from importlib import resources

import pytest
from bad_inputs.cases import CSV, DATA, DEVICE, SPACE, SPEC, STUDY

from attend_search.cli import main
from attend_search.search_space import get_preset

DEVICE_TEXT = (
    resources.files("attend_search.evaluators.latency.devices") / "cortex-a72.yaml"
).read_text()
VALID = {
    "study": (DATA / "tiny_study.yaml").read_text(),
    "space": (DATA / "tiny_space.yaml").read_text(),
    "spec": get_preset("attendnext").to_json(),
    "device": DEVICE_TEXT,
    "csv": "spec,latency_ms\n",
}
COMMANDS = {
    "study": ["run", "{file}", "--budget", "1"],
    "space": ["space", "{file}"],
    "spec": ["build", "{file}"],
    "device": ["latency", "predict", "attendnext", "--device", "{file}"],
    "csv": ["latency", "calibrate", "{file}", "--base", "cortex-a72", "--out", "fit.yaml"],
}
CASES = [
    (kind, *case)
    for kind, cases in (
        ("study", STUDY),
        ("space", SPACE),
        ("spec", SPEC),
        ("device", DEVICE),
        ("csv", CSV),
    )
    for case in cases
]


def content(kind, given):
    if isinstance(given, (tuple, list)):
        text = VALID[kind]
        for old, new in [given] if isinstance(given, tuple) else given:
            assert old in text, f"the edit {old!r} no longer matches the valid {kind}"
            text = text.replace(old, new, 1)
        return text.encode()
    return given if isinstance(given, bytes) else given.encode()


def refused(folder, monkeypatch, capsys, kind, file):
    monkeypatch.chdir(folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    code = main([arg.format(file=file) for arg in COMMANDS[kind]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before, "wrote files"
    return err.strip().removeprefix("attend-search: error: ")


@pytest.mark.parametrize(
    "kind, name, given, expected", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_a_bad_file_is_exit_2_naming_file_and_field(
    tmp_path, monkeypatch, capsys, kind, name, given, expected
):
    (tmp_path / "tiny_space.yaml").write_text(VALID["space"])  # what the study names
    file = f"bad-{kind}.{'csv' if kind == 'csv' else 'json' if kind == 'spec' else 'yaml'}"
    (tmp_path / file).write_bytes(content(kind, given))
    message = refused(tmp_path, monkeypatch, capsys, kind, file)
    assert message.startswith(f"{file}"), message
    assert expected in message, message


@pytest.mark.parametrize("kind", sorted(COMMANDS))
def test_a_directory_given_as_a_file_is_exit_2(tmp_path, monkeypatch, capsys, kind):
    (tmp_path / "folder").mkdir()
    message = refused(tmp_path, monkeypatch, capsys, kind, "folder")
    assert message.startswith("folder: is a directory"), message
