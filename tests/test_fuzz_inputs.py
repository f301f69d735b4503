"""Property: mutated specs and study files get the library's own error, or work.

Valid documents are mutated (a value replaced by one of another type or size, a key
deleted, an unknown key added, a few times over); whatever comes out, ``Spec.from_json``,
``build_model`` and the study reader may only raise :class:`AttendSearchError`, the error
the command line turns into a message with the field path and exit code 2.
"""

import copy
import json
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attend_search import Spec, build_model, load_space
from attend_search.errors import AttendSearchError
from attend_search.studies import read_study

DATA = Path(__file__).parent / "data"
SPEC = load_space(DATA / "tiny_space.yaml").sample(seed=3).to_dict()
STUDY = yaml.safe_load((DATA / "tiny_study.yaml").read_text())

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 600),
    st.sampled_from([0, -1, 10**15, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 64), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 64), max_size=2),
)


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield prefix + (i,)
            yield from _paths(item, prefix + (i,))


@st.composite
def mutated(draw, document):
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=6))] = draw(VALUES)
        else:
            parent.append(draw(VALUES))
    return doc


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated(SPEC))
def test_a_mutated_spec_builds_or_gets_the_librarys_error(doc):
    try:
        build_model(Spec.from_json(json.dumps(doc)))
    except AttendSearchError:
        pass


@FUZZ
@given(mutated(STUDY))
def test_a_mutated_study_file_reads_or_gets_the_librarys_error(doc):
    try:
        read_study(doc, DATA)
    except AttendSearchError:
        pass
