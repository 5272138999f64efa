"""Properties of the assessment that must hold for any lesion history (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

import adapter
from fixtures.generate import Lesion
from tests.assess_cases import L, T, patient, reports

SITES = ("liver", "lung", "kidney", "bone", "adrenal gland")


@st.composite
def histories(draw):
    """1-5 non-nodal targets, 1-4 follow-ups; sizes 0-80 mm in 0.5 mm steps, sometimes missing; new lesions."""
    n = draw(st.integers(1, 5))
    size = st.integers(0, 160).map(lambda k: k / 2)
    baseline = [draw(st.integers(20, 160)) / 2 for _ in range(n)]
    scans = [(0, [T(f"T{i}", SITES[i], baseline[i]) for i in range(n)])]
    for k in range(draw(st.integers(1, 4))):
        lesions = []
        for i in range(n):
            value = draw(st.one_of(st.none(), size)) if draw(st.booleans()) else draw(size)
            if value is not None:
                lesions.append(L(f"T{i}", SITES[i], value))
        for j in range(draw(st.integers(0, 3))):
            lesions.append(L(f"New {k}.{j}", ("liver", "lung", "bone")[j], draw(st.integers(10, 60)) / 2))
        scans.append((8 * (k + 1), lesions))
    return scans


def decisions(result):
    return [(tp.state, tp.recist.overall if tp.recist else None, tp.recist.target if tp.recist else None,
             tp.progressing_count, tp.progressing_max) for tp in result.timepoints]


def scaled(scans, factor):
    def scale(lesion: Lesion) -> Lesion:
        long_axis = None if lesion.long_axis is None else lesion.long_axis * factor
        return Lesion(lesion.name, lesion.site, long_axis=long_axis, role=lesion.role)
    return [(w, [scale(x) for x in lesions]) for w, lesions in scans]


NO_ABSOLUTE = dict(pd_abs_increase_mm=0, lesion_abs_increase_mm=0)


@settings(max_examples=60, deadline=None)
@given(histories(), st.sampled_from([2, 3, 0.5, 1.5, 10]))
def test_scaling_every_size_changes_no_decision_without_the_5_mm_rule(scans, factor):
    before = adapter.assess(reports(patient("S", *scans)), **NO_ABSOLUTE)[0]
    after = adapter.assess(reports(patient("S", *scaled(scans, factor))), **NO_ABSOLUTE)[0]
    assert decisions(before) == decisions(after)


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(20, 160), st.booleans())
def test_adding_a_stable_lesion_never_turns_oligo_into_poly(scans, doubled_size, as_target):
    stable_size = doubled_size / 2
    make = (lambda first: T("Stable", "brain", stable_size)) if as_target else \
        (lambda first: L("Stable", "brain", stable_size))
    with_stable = [(w, lesions + [make(k == 0)]) for k, (w, lesions) in enumerate(scans)]
    before = adapter.assess(reports(patient("P", *scans)))[0]
    after = adapter.assess(reports(patient("P", *with_stable)))[0]
    for old, new in zip(before.timepoints, after.timepoints, strict=True):
        assert not (old.state == "oligoprogression" and new.state == "polyprogression")
        # never more progressing lesions (fewer only when a stable lesion rules out a prior CR, so a
        # reappearance no longer counts)
        assert new.progressing_count <= old.progressing_count


@settings(max_examples=40, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_the_order_of_reports_never_changes_the_result(scans, rnd):
    ordered = reports(patient("O", *scans))
    shuffled = list(ordered)
    rnd.shuffle(shuffled)
    assert adapter.assess(shuffled)[0].to_dict() == adapter.assess(ordered)[0].to_dict()


def test_sizes_are_decided_exactly():
    """0.1 + 0.2 style sums never drift: 23.3 + 23.4 + 23.3 = 70 is exactly -30 % of 100."""
    p = patient("X", (0, [T("A", "liver", 33.3), T("B", "lung", 33.4), T("C", "kidney", 33.3)]),
                (8, [L("A", "liver", 23.3), L("B", "lung", 23.4), L("C", "kidney", 23.3)]))
    latest = adapter.assess(reports(p))[0].latest
    assert latest.recist.sum_mm == Decimal("70.0") and latest.recist.target == "PR"
