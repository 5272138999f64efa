"""Fuzzing the FHIR reader: generated Bundles (mCODE R4, HL7 IG R5) and the corpus's FHIR JSON with
values of the wrong type, fields removed, huge arrays, deep nesting and damaged text. Every input ends
in Reports that go on through the pipeline, or an InputError naming the input; never another exception.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

import adapter
from adapter.errors import InputError
from adapter.sources.limits import DEFAULT_LIMITS, ReadLimits
from fixtures.fhir_generate import make_fhir_series
from fixtures.generate import demo_patients
from tests.fuzz_support import check_rejection, check_reports, fuzz_settings

CORPUS_JSON = ("mcode-extraction-framework/disease-status-resource.json",
               "mcode-extraction-framework/minimal-disease-status-resource.json")
LABEL = "fuzzed.json"
WRONG_VALUES = [None, True, 0, -1, 10**30, "", "x" * 10_000, [], {}, [None], {"resourceType": 7}, "1e999",
                1e308, "Patient/", "urn:uuid:", "#", {"value": "abc"}, {"reference": {"reference": None}}]


@cache
def generated() -> tuple[dict, ...]:
    oligo, poly = demo_patients()
    return tuple(make_fhir_series(oligo)[:3] + make_fhir_series(poly, shapes=("mcode-r4",))[:1])


@pytest.fixture(scope="module")
def seeds(corpus) -> tuple[dict, ...]:
    return generated() + tuple(json.loads((corpus / name).read_text()) for name in CORPUS_JSON)


def outcome(source, limits: ReadLimits = DEFAULT_LIMITS) -> str:
    try:
        reports = adapter.read_fhir(source, name=LABEL, limits=limits)
    except InputError as exc:
        return check_rejection(exc, LABEL)
    return check_reports(reports)


def _paths(value, path=()):
    """Every (container, key) in a JSON value, iteratively."""
    found, stack = [], [(value, path)]
    while stack:
        node, where = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            found.append((node, key))
            stack.append((child, where + (key,)))
    return found


def _wrong_type(doc, draw) -> None:
    for _ in range(draw(st.integers(1, 4))):
        node, key = draw(st.sampled_from(_paths(doc)))
        node[key] = draw(st.sampled_from(WRONG_VALUES))


def _drop(doc, draw) -> None:
    for _ in range(draw(st.integers(1, 4))):
        places = [(n, k) for n, k in _paths(doc) if isinstance(n, dict)]
        if places:
            node, key = draw(st.sampled_from(places))
            node.pop(key, None)


def _huge_array(doc, draw) -> None:
    places = [(n, k) for n, k in _paths(doc) if isinstance(n[k], list)] or [(doc, "entry")]
    node, key = draw(st.sampled_from(places))
    items = node[key] if isinstance(node.get(key) if isinstance(node, dict) else node[key], list) else []
    size = draw(st.sampled_from([50, 500]))
    node[key] = (items or [{}]) * (size // max(1, len(items or [{}])))


def _deep(doc, draw) -> None:
    node, key = draw(st.sampled_from(_paths(doc)))
    depth = draw(st.sampled_from([30, 70, 500]))
    value = node[key]
    for _ in range(depth):
        value = draw(st.sampled_from([[value], {"extension": value}, {"valueQuantity": value}]))
    node[key] = value


MUTATIONS = {"wrong-type": _wrong_type, "drop": _drop, "huge-array": _huge_array, "deep": _deep}


@st.composite
def mutated(draw, seeds: tuple[dict, ...]):
    doc = json.loads(json.dumps(draw(st.sampled_from(seeds))))
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=2)):
        MUTATIONS[name](doc, draw)
    text = json.dumps(doc)
    how = draw(st.sampled_from(["json", "json", "truncated", "flipped", "ndjson"]))
    if how == "truncated":
        return text[:draw(st.integers(0, len(text)))].encode()
    if how == "flipped":
        data = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if how == "ndjson":
        entries = doc.get("entry") if isinstance(doc, dict) else None
        lines = [json.dumps(e.get("resource") if isinstance(e, dict) else e) for e in entries] \
            if isinstance(entries, list) else [text]
        return "\n".join(lines).encode()
    return text.encode()


def test_mutated_fhir_ends_in_a_result_or_a_clear_error(seeds):
    seen: dict[str, int] = {}

    @fuzz_settings(100)
    @given(mutated(seeds))
    def run(data):
        result = outcome(data)
        seen[result] = seen.get(result, 0) + 1

    run()
    assert seen.get("read", 0) > 0 and seen.get("rejected", 0) > 0, seen


def test_parsed_objects_with_cycles_and_wrong_types_are_refused_by_name():
    cyclic = {"resourceType": "Bundle", "type": "collection", "entry": []}
    cyclic["entry"].append({"resource": cyclic})
    for source in (cyclic, {"resourceType": "Observation", "valueQuantity": {"value": Decimal("NaN")}},
                   [], {"resourceType": ["Observation"]}):
        with pytest.raises(InputError) as caught:
            adapter.read_fhir(source, name=LABEL)
        check_rejection(caught.value, LABEL)


def test_json_deeper_than_the_limit_is_refused_by_name():
    bundle = json.loads(json.dumps(generated()[0]))
    value = "deep"
    for _ in range(80):
        value = [value]
    bundle["entry"][0]["resource"]["extension"] = value
    with pytest.raises(InputError) as caught:
        adapter.read_fhir(json.dumps(bundle).encode(), name="deep.json")
    assert caught.value.reason == "is JSON nested deeper than 64 levels (the limit max_json_depth)"
    # nesting past Python's own parser (about a thousand levels) is refused the same way, by name
    text = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InputError) as caught:
        adapter.read_fhir(text.encode(), name="very-deep.json")
    assert caught.value.reason == "is JSON nested too deeply to parse (thousands of levels)"


def test_an_array_longer_than_the_limit_is_refused_by_name():
    bundle = json.loads(json.dumps(generated()[0]))
    reports = adapter.read_fhir(bundle, name="bundle.json")
    entries = len(bundle["entry"])
    with pytest.raises(InputError) as caught:
        adapter.read_fhir(bundle, name="bundle.json", limits=ReadLimits(max_json_array_items=entries - 1))
    assert caught.value.reason == (f"has a JSON array of {entries} items; the limit max_json_array_items is "
                                   f"{entries - 1}")
    assert adapter.read_fhir(bundle, name="bundle.json", limits=ReadLimits(max_json_array_items=entries)) == reports
