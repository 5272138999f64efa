"""Damaged FHIR never raises anything but InputError, and never needs the last-resort message."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapter
from adapter.sources.fhir_obs import MALFORMED
from fixtures.fhir_generate import make_fhir_series
from fixtures.generate import demo_patients

FHIR = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
DOCUMENTS = [json.loads(p.read_text()) for p in sorted(FHIR.glob("*.json"))] + make_fhir_series(demo_patients()[0])

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=6),
    st.sampled_from(["Patient/zz", "#a", "urn:uuid:x", "SRT", "mm", "[in_i]", "entered-in-error", "amended"]),
    st.lists(st.none() | st.integers() | st.text(max_size=3), max_size=2),
    st.dictionaries(st.sampled_from(["reference", "coding", "value", "system", "code"]),
                    st.none() | st.integers() | st.text(max_size=3), max_size=2),
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_damaged_element_gives_reports_or_a_plain_input_error(data):
    document = copy.deepcopy(data.draw(st.sampled_from(DOCUMENTS)))
    paths = list(_paths(document))[1:]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        node = document
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = data.draw(JUNK)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        reports = adapter.read_fhir(document)
    except adapter.InputError as exc:
        assert not exc.reason.startswith(MALFORMED), exc.reason
    else:
        assert reports and all(isinstance(r, adapter.Report) for r in reports)
