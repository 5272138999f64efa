"""RECIST and D5 borders (exact 20 %, 30 %, 5 mm), preset limits, the special rules of CLINICAL.md §1 and
§7 (confirmation, equivocal nodes, reappearance, local therapy, coalescence) and bad input."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

import adapter
from adapter.assess import assess_timeline, load_preset
from adapter.assess.recist import grew_enough, shrank_enough
from adapter.model import MeasurementKind
from adapter.timeline import build_timelines
from fixtures.generate import NON_TARGET_PD, NON_TARGET_STABLE, Lesion
from tests.assess_cases import CASES, LONG, L, NT, T, finding, measurement, patient, report, reports, week

D = Decimal
PARAMS = load_preset().parameters


def run(p, **kw):
    (result,) = adapter.assess(reports(p), **kw)
    return result


# --- exact borders -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("current, baseline, pr", [
    ("70", "100", True), ("70.0", "100", True), ("70.01", "100", False), ("71", "100", False),
    ("7", "10", True), ("69.99", "100", True), ("46.9", "67", True), ("47", "67", False)])
def test_partial_response_border_is_exactly_30_percent(current, baseline, pr):
    assert shrank_enough(D(current), D(baseline), PARAMS.pr_decrease_pct) is pr


@pytest.mark.parametrize("current, nadir, pd", [
    ("60", "50", True), ("59.99", "50", False), ("24", "20", False), ("25", "20", True),
    ("30", "25", True), ("29.9", "25", False), ("5", "0", True), ("4.9", "0", False),
    ("102", "85", True), ("101.9", "85", False), ("36", "30", True), ("35.9", "30", False)])
def test_progression_border_is_exactly_20_percent_and_5_mm(current, nadir, pd):
    assert grew_enough(D(current), D(nadir), PARAMS.pd_increase_pct, PARAMS.pd_abs_increase_mm) is pd


@pytest.mark.parametrize("after, response", [(35, "PR"), (35.1, "SD")])
def test_recist_pr_border_through_the_engine(after, response):
    p = patient("B30", (0, [T("A", "liver", 50), T("B", "lung", 50)]),
                (8, [L("A", "liver", after), L("B", "lung", 35)]))
    assert run(p).latest.recist.target == response


@pytest.mark.parametrize("size, progressing", [(30, True), (29.9, False)])
def test_lesion_border_20_percent_and_5_mm(size, progressing):
    """25 -> 30 mm is +20.0 % and +5 mm: progressing; 29.9 is not."""
    p = patient("B20", (0, [T("A", "liver", 25), T("B", "lung", 80)]), (8, [L("A", "liver", 25), L("B", "lung", 80)]),
                (16, [L("A", "liver", size), L("B", "lung", 80)]))
    assert run(p).latest.progressing_count == (1 if progressing else 0)


def test_lesion_needs_5_mm_even_at_high_percent():
    """8 -> 12 mm is +50 % but +4 mm: not progressing (the 5 mm floor)."""
    p = patient("B5", (0, [T("A", "liver", 8), T("B", "lung", 80)]), (8, [L("A", "liver", 12), L("B", "lung", 80)]))
    latest = run(p).latest
    assert latest.progressing_count == 0 and latest.state == "no-progression"


def test_node_must_reach_10_mm_short_axis():
    p = patient("N10", (0, [T("A", "liver", 40), T("N", "lymph node", 20)]),
                (8, [L("A", "liver", 40), L("N", "lymph node", 4)]),
                (16, [L("A", "liver", 40), L("N", "lymph node", 9.9)]),
                (24, [L("A", "liver", 40), L("N", "lymph node", 10)]))
    result = run(p)
    assert [tp.progressing_count for tp in result.timepoints] == [0, 0, 0, 1]


def test_complete_response_with_nodes_below_10_mm():
    """CR: non-nodal targets 0 mm, target nodes < 10 mm SA (sum is not 0)."""
    p = patient("CR", (0, [T("A", "liver", 20), T("N", "lymph node", 16)]),
                (8, [L("A", "liver", 0), L("N", "lymph node", 9)]))
    latest = run(p).latest
    assert (latest.recist.target, latest.recist.overall, latest.recist.sum_mm) == ("CR", "CR", 9)


def test_sticky_pr_can_be_switched_off():
    e2 = next(c for c in CASES if c.id == "E2")
    result = run(e2.patient, sticky_pr=False)
    assert [tp.recist.overall for tp in result.timepoints[1:]] == ["PR", "PR", "SD", "SD", "SD"]


# --- preset limits -----------------------------------------------------------------------------------------

SITES = [("liver", None), ("lung", "left"), ("lung", "right"), ("kidney", "left"), ("bone", None),
         ("adrenal gland", None), ("kidney", "right")]


def with_new_lesions(k: int, pid: str, brain: int = 0):
    new = [Lesion(f"New {n}", site, long_axis=12, laterality=side) for n, (site, side) in enumerate(SITES[:k])]
    new += [Lesion(f"Brain {n}", "brain", long_axis=8) for n in range(brain)]
    return patient(pid, (0, [T("A", "liver", 40)]), (8, [L("A", "liver", 40)]), (16, [L("A", "liver", 40)] + new))


@pytest.mark.parametrize("preset, limit", [("consensus-5", 5), ("weickhardt-2012", 4), ("halt-original", 3),
                                           ("iyengar-2014", 6), ("single-site", 1)])
def test_each_preset_at_its_limit_and_one_above(preset, limit):
    at = run(with_new_lesions(limit, f"at-{preset}"), preset=preset).latest
    above = run(with_new_lesions(limit + 1, f"above-{preset}"), preset=preset).latest
    assert (at.state, at.progressing_count) == ("oligoprogression", limit)
    assert (above.state, above.progressing_count) == ("polyprogression", limit + 1)


def test_cns_lesions_not_counted_under_weickhardt():
    p = with_new_lesions(4, "CNS", brain=3)
    assert run(p, preset="weickhardt-2012").latest.state == "oligoprogression"
    consensus = run(p).latest
    assert (consensus.state, consensus.progressing_count) == ("polyprogression", 7)


def test_organ_count_is_reported_and_can_limit():
    p = with_new_lesions(4, "ORG")  # liver, lung, lung, kidney: 3 organs (paired lungs are one)
    assert run(p).latest.organ_count == 3
    assert run(p, max_progressing_organs=2).latest.state == "polyprogression"


def test_every_assessment_names_its_preset_and_parameters():
    result = run(with_new_lesions(1, "NAMES"), preset="halt-original")
    document = result.to_dict()
    assert document["preset"] == "halt-original"
    assert document["parameters"]["max_progressing"] == 3 and document["parameters"]["cns_counted"] is False
    assert "limit 3 under halt-original" in " ".join(result.latest.reasons)


# --- rules of CLINICAL.md §1 and §7 -----------------------------------------------------------------------

def test_non_target_unequivocal_progression_counts_once_and_is_not_measurable():
    p = patient("NTPD", (0, [T("A", "liver", 40), NT("Bone NT", "bone")]),
                (8, [L("A", "liver", 30), NT("Bone NT", "bone", response=NON_TARGET_STABLE)]),
                (16, [L("A", "liver", 30), NT("Bone NT", "bone", response=NON_TARGET_PD)]))
    latest = run(p).latest
    assert (latest.recist.non_target, latest.recist.overall, latest.state) == ("PD", "PD", "oligoprogression")
    (progressing,) = latest.progressing
    assert (progressing.reason, progressing.non_measurable) == ("non-target", True)


def test_e3_missing_lesion_cannot_prevent_progression():
    """Eisenhauer §4.3.4: baseline 50 mm over 3 targets, follow-up 80 mm over 2 measured -> PD."""
    p = patient("E3", (0, [T("A", "liver", 20), T("B", "lung", 20), T("C", "kidney", 10)]),
                (8, [L("A", "liver", 40), L("B", "lung", 40)]))
    latest = run(p).latest
    assert latest.recist.overall == "PD" and latest.recist.missing_targets == 1
    # both measured lesions progress (+20 mm each); C could: the count is [2, 3], oligo either way
    assert (latest.progressing_count, latest.progressing_max) == (2, 3)


def test_e5_equivocal_new_node_is_indeterminate_then_confirmed_and_redated():
    p = patient("E5", (0, [T("A", "liver", 40)]), (8, [L("A", "liver", 30)]),
                (16, [L("A", "liver", 30), L("New node", "lymph node", 11)]),
                (24, [L("A", "liver", 30), L("New node", "lymph node", 12)]))
    result = run(p)
    assert [tp.state for tp in result.timepoints] == ["baseline", "no-progression", "indeterminate",
                                                      "oligoprogression"]
    assert result.timepoints[2].recist.overall == "SD"  # 40 -> 30 mm is -25 %; the node is not yet PD
    last = result.latest
    assert last.recist.new_lesions and last.progressing[0].reason == "new"
    assert "dated to 2024-04-22" in last.progressing[0].explanation


def test_reappearance_after_complete_response_is_progression():
    p = patient("REAP", (0, [T("A", "liver", 20), T("B", "lung", 15)]),
                (8, [L("A", "liver", 0), L("B", "lung", 0)]),
                (16, [L("A", "liver", 4), L("B", "lung", 0)]))
    result = run(p)
    assert result.timepoints[1].recist.overall == "CR"
    latest = result.latest
    assert latest.recist.overall == "PD" and latest.progressing[0].reason == "reappearance"
    assert latest.state == "oligoprogression"


def test_c12_fragments_are_summed():
    """Liver A 40 -> fragments 18 + 15 = 33 mm in one group."""
    base = patient("C12F", (0, [T("A", "liver", 40)]), (8, [L("A", "liver", 18)]))
    fragments = finding(base, L("A", "liver", 18), (measurement(MeasurementKind.LONG_AXIS, LONG, 15),))
    reps = [report(base, base.time_points[0]), report(base, base.time_points[1], (fragments,))]
    (result,) = adapter.assess(reps)
    assert result.latest.recist.sum_mm == 33


@pytest.mark.parametrize("merged, progressing", [(42, True), (40, False)])
def test_c12_coalesced_lesions_are_tested_against_their_combined_nadir(merged, progressing):
    """B 20 + C 15 (nadir 35) coalesce: 42 mm is +20.0 % and +7 mm (progressing); 40 mm is not, although
    B alone would have grown 20 -> 40."""
    p = patient("C12", (0, [T("B", "liver", 20), T("C", "liver", 15), T("D", "lung", 50)]),
                (8, [L("B", "liver", 20), L("C", "liver", 15), L("D", "lung", 50)]),
                (16, [L("B", "liver", merged), L("C", "liver", 0), L("D", "lung", 50)]))
    (timeline,) = build_timelines(reports(p))
    result = assess_timeline(timeline, coalesced={"B": ["C"]})
    assert [x.name for x in result.latest.progressing] == (["B"] if progressing else [])
    plain = assess_timeline(timeline)
    assert [x.name for x in plain.latest.progressing] == ["B"]


@pytest.mark.parametrize("second, bor", [(67, "PR"), (75, "SD")])
def test_c16_best_overall_response_with_confirmation(second, bor):
    p = patient("C16", (0, [T("A", "liver", 60), T("B", "lung", 40)]),
                (8, [L("A", "liver", 40), L("B", "lung", 25)]),
                (12, [L("A", "liver", second - 25), L("B", "lung", 25)]))
    result = run(p, confirmation=True)
    assert [tp.recist.overall for tp in result.timepoints[1:]] == ["PR", "PR" if second == 67 else "SD"]
    assert result.best_overall_response == bor
    assert run(p).best_overall_response == "PR"  # without confirmation the first PR is the best


def test_progression_without_prior_control_carries_its_pattern():
    c13 = next(c for c in CASES if c.id == "C13")
    latest = run(c13.patient).latest
    assert (latest.state, latest.pattern) == ("progression-without-prior-control", "oligo")
    assert run(c13.patient, require_prior_disease_control=False).latest.state == "oligoprogression"


def test_new_lesion_on_non_target_only_disease():
    p = patient("NTONLY", (0, [NT("Pleura", "bone")]), (8, [NT("Pleura", "bone")]),
                (16, [NT("Pleura", "bone"), L("New", "liver", 15)]))
    result = run(p)
    assert result.timepoints[0].state == "not-evaluable"
    assert "no measurable lesion at baseline" in result.timepoints[0].reasons[-1]
    assert [tp.recist.overall for tp in result.timepoints[1:]] == ["NON-CR/NON-PD", "PD"]
    assert result.latest.state == "oligoprogression"


def test_automatic_target_selection():
    """No role stated: the largest measurable, <= 5 in total, <= 2 per organ (both lungs are one organ)."""
    lesions = [Lesion("Liver 1", "liver", long_axis=50), Lesion("Liver 2", "liver", long_axis=45),
               Lesion("Liver 3", "liver", long_axis=40), Lesion("Lung L", "lung", long_axis=30, laterality="left"),
               Lesion("Lung R", "lung", long_axis=28, laterality="right"),
               Lesion("Lung R2", "lung", long_axis=27, laterality="right"),
               Lesion("Node big", "lymph node", long_axis=30, short_axis=16),
               Lesion("Node small", "lymph node", long_axis=25, short_axis=14),
               Lesion("Bone tiny", "bone", long_axis=9), Lesion("Kidney", "kidney", long_axis=12)]
    p = patient("AUTO", (0, lesions), (8, lesions))
    base = run(p).timepoints[0]
    targets = sorted(row.name for row in base.lesions if row.lesion_class == "target")
    assert targets == ["Liver 1", "Liver 2", "Lung L", "Lung R", "Node big"]
    assert all(row.auto_selected for row in base.lesions if row.lesion_class == "target")
    assert base.reasons[0].startswith("no target stated by the reader: 5 target lesion(s) selected")


# --- bad input ---------------------------------------------------------------------------------------------

def test_baseline_measured_only_in_unusable_units_is_not_evaluable():
    p = patient("PX", (0, [T("A", "liver", 30)]), (8, [L("A", "liver", 20)]))
    pixels = finding(p, Lesion("A", "liver", role="target"),
                     (measurement(MeasurementKind.LONG_AXIS, LONG, 120, quarantined="unit 'px' is not a length"),))
    (result,) = adapter.assess([report(p, p.time_points[0], (pixels,)), report(p, p.time_points[1])])
    base, follow = result.timepoints
    assert base.state == "not-evaluable"
    assert "baseline sum not measurable: A (unusable-units: unit 'px' is not a length)" in base.reasons
    assert (follow.recist.target, follow.recist.overall, follow.state) == ("NE", "NE", "not-evaluable")


def test_no_lesion_at_all_is_not_evaluable():
    p = patient("EMPTY", (0, [T("A", "liver", 30)]))
    (result,) = adapter.assess([report(p, p.time_points[0], ())])
    assert result.timepoints[0].state == "not-evaluable"
    assert "no lesion at the baseline scan" in result.timepoints[0].reasons


def test_unknown_preset_and_lesion_are_reported_plainly():
    with pytest.raises(ValueError, match="unknown preset 'nope'; known presets: consensus-5"):
        adapter.assess([], preset="nope")
    c2 = next(c for c in CASES if c.id == "C2")
    (result,) = adapter.assess(reports(c2.patient), treated={"Lesion 9": dt.date(2024, 3, 1)})
    assert result.warnings == ("treated: no lesion named 'Lesion 9' on this patient's timeline; ignored",)
    assert adapter.assess([]) == []


def test_rejected_inputs_and_usage_errors_in_the_cli(tmp_path):
    from typer.testing import CliRunner

    from adapter.cli import app

    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    outcome = CliRunner().invoke(app, ["assess", str(tmp_path), "--json"])
    assert outcome.exit_code == 2 and "junk.dcm" in outcome.stderr
    outcome = CliRunner().invoke(app, ["assess", str(tmp_path), "--treated", "Lesion 2"])
    assert outcome.exit_code == 2 and "expected LESION=YYYY-MM-DD" in outcome.stderr
    outcome = CliRunner().invoke(app, ["assess", str(tmp_path), "--criteria", "who"])
    assert outcome.exit_code == 2 and "unknown criteria 'who'" in outcome.stderr


def test_same_input_gives_identical_output():
    c2 = next(c for c in CASES if c.id == "C2")
    assert run(c2.patient).to_dict() == run(c2.patient).to_dict()
    assert week(0) == dt.date(2024, 1, 1)


def test_treated_lesions_go_to_the_patient_that_has_them():
    c2 = next(c for c in CASES if c.id == "C2")
    c13 = next(c for c in CASES if c.id == "C13")
    results = adapter.assess(reports(c2.patient) + reports(c13.patient), treated={"Lesion 2": dt.date(2024, 3, 1)})
    by_id = {r.patient_id: r for r in results}
    assert by_id["C2"].treated == (("Lesion 2", dt.date(2024, 3, 1)),) and by_id["C2"].warnings == ()
    assert by_id["C13"].treated == () and by_id["C13"].warnings == ()
