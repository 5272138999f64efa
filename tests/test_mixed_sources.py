"""One patient described half by SRs and half by FHIR (same tracking UIDs): one timeline, and the same
assessment as the SR-only series (issue 5)."""

from __future__ import annotations

import pytest

import adapter
from adapter.model import MatchMethod, SourceKind
from adapter.timeline import build_timelines
from fixtures.fhir_generate import make_fhir_series
from fixtures.generate import demo_patients, make_series


def states(result) -> list[dict]:
    return [{k: tp[k] for k in ("date", "state", "recist", "progressing_count", "organ_count")}
            | {"progressing": [(p["reason"], p["from_mm"], p["to_mm"]) for p in tp["progressing"]]}
            for tp in result.to_dict()["timepoints"]]


@pytest.mark.parametrize("shape", ["ig-r5", "mcode-r4"])
@pytest.mark.parametrize("patient", demo_patients(), ids=lambda p: p.patient_id)
def test_half_sr_half_fhir_is_one_timeline_with_the_same_assessment(patient, shape):
    sr_only = [adapter.read_sr(data) for data in make_series(patient)]
    fhir = [r for bundle in make_fhir_series(patient, shapes=(shape,)) for r in adapter.read_fhir(bundle)]
    assert len(fhir) == len(sr_only)
    mixed = [sr_only[0], fhir[1], sr_only[2]] if len(sr_only) == 3 else sr_only[:1] + fhir[1:]
    assert {r.source_kind for r in mixed} == {SourceKind.DICOM_SR, SourceKind.FHIR}

    (timeline,) = build_timelines(mixed)
    (clean,) = build_timelines(sr_only)
    assert len(timeline.time_points) == len(clean.time_points)
    assert len(timeline.lesions) == len(clean.lesions)
    assert {o.match for lesion in timeline.lesions for o in lesion.observations[1:] if o} <= {
        MatchMethod.TRACKING_UID, MatchMethod.FIRST_SEEN}

    (from_mixed,) = adapter.assess(mixed)
    (from_sr,) = adapter.assess(sr_only)
    assert states(from_mixed) == states(from_sr)


def test_demo_states_are_the_expected_ones():
    oligo, poly = demo_patients()
    (first,) = adapter.assess([adapter.read_sr(d) for d in make_series(oligo)])
    (second,) = adapter.assess([adapter.read_sr(d) for d in make_series(poly)])
    assert [tp.state for tp in first.timepoints] == ["baseline", "no-progression", "oligoprogression"]
    assert [tp.state for tp in second.timepoints] == ["baseline", "no-progression", "polyprogression"]
