"""The documentation's examples work: README.md and docs/*.md.

- Every ```python block runs, in order, one namespace per page (a page reads like a
  session), in a temporary working directory.
- A block that needs a board, the LiteRT extra, a trained network or minutes of work is
  marked on the line before its fence with an HTML comment, invisible once rendered::

      <!-- docs-test: skip (why) -->

  A skipped block is still compiled, and each module and name it imports must exist, so a
  renamed module cannot hide in a skipped example.
- Every ``attend-search ...`` command shown (a line of a code block, or an inline code
  span) names existing subcommands, and each ``--flag`` it gives is one that subcommand's
  parser accepts (the parser is read, nothing is run: boards and long runs need no skip).
- Study files shown (```yaml blocks starting ``schema: attend-search/study/v1``) are read by
  the study reader; ``attend_search.x.y`` names in the text exist; relative links and their
  anchors resolve; docs/studies.md lists every field the study reader accepts.

A few seconds in all: the blocks that run build small networks only.
"""

import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest

from attend_search.cli import parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((.+)\)\s*-->")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
INLINE = re.compile(r"`(attend-search [^`]+)`")


def blocks(page: Path) -> list[tuple[int, str, str, str | None]]:
    """(line, language, code, skip reason) of each fenced block of a page."""
    found, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language, start = len(opening.group(1)), opening.group(2), i
        i += 1
        while not FENCE.match(lines[i]):
            i += 1
        code = "\n".join(line[indent:] for line in lines[start + 1 : i])
        skip = SKIP.search(lines[start - 1]) if start else None
        found.append((start + 1, language, code, skip.group(1) if skip else None))
        i += 1
    return found


def commands(page: Path) -> list[tuple[int, str]]:
    """(line, command) of every ``attend-search`` command a page shows."""
    found, in_code = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if FENCE.match(line):
            in_code = not in_code
            continue
        text = line.strip().removeprefix("$ ")
        if (in_code or line.startswith("    ")) and text.startswith("attend-search "):
            found.append((number, text.split(" #")[0]))
        elif not in_code:
            found += [(number, m) for m in INLINE.findall(line)]
    return found


PYTHON = [
    pytest.param(page, id=page.name)
    for page in PAGES
    if any(lang == "python" for _, lang, _, _ in blocks(page))
]
COMMANDS = [
    pytest.param(command, id=f"{page.name}:{line}")
    for page in PAGES
    for line, command in commands(page)
]


def check_imports(code: str) -> None:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)


@pytest.mark.parametrize("page", PYTHON)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for line, language, code, skip in blocks(page):
        if language != "python":
            continue
        compiled = compile(code, f"{page.name}:{line}", "exec")
        if skip:
            check_imports(code)
        else:
            exec(compiled, namespace)


def subcommand_parser(words: list[str]):
    """The parser of the subcommand the words name, and the words after it."""
    current = parser()
    while words:
        actions = [a for a in current._actions if a.choices and hasattr(a.choices, "items")]
        if not actions or words[0] not in actions[0].choices:
            break
        current, words = actions[0].choices[words[0]], words[1:]
    return current, words


def test_commands_found():
    # the collection itself works: the pages show commands of most subcommands
    assert len(COMMANDS) > 50
    shown = {shlex.split(c.values[0])[1] for c in COMMANDS}
    assert {"run", "show", "export", "latency", "train", "evaluate", "worker"} <= shown


@pytest.mark.parametrize("command", COMMANDS)
def test_command_parses(command):
    words = shlex.split(re.sub(r"[][|]", " ", command))[1:]
    if words[0] in ("--help", "--version"):
        return
    sub, rest = subcommand_parser(words)
    assert sub.prog != "attend-search", f"{words[0]!r} is no subcommand"
    accepted = {s for a in sub._actions for s in a.option_strings} | {"--debug"}
    for word in rest:
        if word.startswith("--"):
            assert word.split("=")[0] in accepted, f"{sub.prog} has no option {word}"


STUDY_BLOCKS = [
    pytest.param(code, id=f"{page.name}:{line}")
    for page in PAGES
    for line, language, code, _ in blocks(page)
    if language == "yaml" and code.startswith("schema: attend-search/study/v1")
]


@pytest.mark.parametrize("code", STUDY_BLOCKS)
def test_study_files_shown_are_valid(code):
    import yaml

    from attend_search.studies import read_study

    read_study(yaml.safe_load(code))


DOTTED = re.compile(r"`(attend_search(?:\.\w+)+)")


def test_dotted_names_exist():
    # `attend_search.x.y` in the text names a module, or a name in one
    names = {name for page in PAGES for name in DOTTED.findall(page.read_text())}
    assert names
    for name in sorted(names):
        module, _, attribute = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attribute), f"no {name}"


LINK = re.compile(r"\]\(([^)#\s]+)(?:#([^)]*))?\)")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, as GitHub and MkDocs make them."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).strip().replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    # mkdocs --strict checks docs/ too; this also covers README.md and runs with the tests
    for target, anchor in LINK.findall(page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
        if anchor:
            assert anchor in anchors(page.parent / target), f"{page.name}: no {target}#{anchor}"


def test_the_changelog_links_only_to_the_web():
    # docs/changelog.md includes it: a relative link would point from docs/ and fail there
    relative = [t for t, _ in LINK.findall((ROOT / "CHANGELOG.md").read_text()) if "://" not in t]
    assert not relative


READERS = ["studies/config.py", "constraints/constraint_set.py", "explorer/samplers.py"]
FIELD = re.compile(r'\.(?:str|int|float|bool|raw|sub|items|choice|has)\(\s*"(\w+)"')


def test_study_reference_names_every_field():
    # a field the study reader accepts but docs/studies.md does not list fails here
    source = ROOT / "src" / "attend_search"
    fields = {f for name in READERS for f in FIELD.findall((source / name).read_text())}
    fields |= set(re.findall(r'^    "(\w+)": \("', (source / READERS[1]).read_text(), re.M))
    assert {"presets", "evaluation", "proxy_batch_size", "peak_activation"} <= fields
    reference = (ROOT / "docs" / "studies.md").read_text()
    assert not {f for f in fields if f"`{f}`" not in reference}
