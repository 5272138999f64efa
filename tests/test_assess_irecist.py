"""iRECIST (CLINICAL.md §2, examples C17 and E6): iUPD, confirmation within 4-8 weeks, cumulative
increases, the bar reset, and `oligo assess --criteria irecist`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import adapter
from adapter.cli import app
from fixtures.generate import write_series
from tests.assess_cases import L, T, patient, reports


def c17(target_wk14: tuple[float, float], new_wk14: float):
    return patient("C17", (0, [T("A", "liver", 50), T("B", "kidney", 50)]),
                   (8, [L("A", "liver", 45), L("B", "kidney", 45), L("New lung", "lung", 12)]),
                   (14, [L("A", "liver", target_wk14[0]), L("B", "kidney", target_wk14[1]),
                         L("New lung", "lung", new_wk14)]))


def irecist(p):
    (result,) = adapter.assess(reports(p), criteria="irecist")
    return result


def test_c17_new_lesion_growth_confirms_progression(tmp_path):
    write_series(c17((45, 45), 18), tmp_path)
    outcome = CliRunner().invoke(app, ["assess", str(tmp_path), "--json", "--criteria", "irecist"])
    assert outcome.exit_code == 0, outcome.output
    (result,) = json.loads(outcome.stdout)["patients"]
    assert result["criteria"] == "irecist"
    wk8, wk14 = result["timepoints"][1:]
    assert (wk8["irecist"]["overall"], wk14["irecist"]["overall"]) == ("iUPD", "iCPD")
    assert wk8["irecist"]["new_targets"] == ["New lung"] and wk8["irecist"]["new_target_sum_mm"] == 12.0
    assert wk14["irecist"]["iupd_date"] == "2024-02-26"  # PD dated to the iUPD scan
    assert "new-lesion target sum +6 mm since iUPD" in wk14["irecist"]["reasons"][0]
    assert wk8["recist"]["overall"] == "PD"  # RECIST 1.1 is reported beside it


def test_c17_alternative_shrinkage_resets_the_bar():
    result = irecist(c17((33, 32), 10))
    assert [tp.irecist.overall for tp in result.timepoints[1:]] == ["iUPD", "iPR"]
    assert result.latest.irecist.reasons == ("iUPD not confirmed: the bar resets",)


def test_e6_increases_are_cumulative():
    """New-lesion target sum +4 mm, then +2 mm more: iUPD, iUPD, iCPD."""
    p = patient("E6", (0, [T("A", "liver", 50)]),
                (8, [L("A", "liver", 50), L("New", "lung", 12)]),
                (14, [L("A", "liver", 50), L("New", "lung", 16)]),
                (20, [L("A", "liver", 50), L("New", "lung", 18)]))
    assert [tp.irecist.overall for tp in irecist(p).timepoints[1:]] == ["iUPD", "iUPD", "iCPD"]


@pytest.mark.parametrize("weeks, expected", [(10, "iUPD"), (14, "iCPD")])
def test_scan_under_four_weeks_does_not_confirm(weeks, expected):
    p = patient("EARLY", (0, [T("A", "liver", 50)]),
                (8, [L("A", "liver", 50), L("New", "lung", 12)]),
                (weeks, [L("A", "liver", 50), L("New", "lung", 20)]))
    assert irecist(p).latest.irecist.overall == expected


def test_recist_criteria_carry_no_irecist_block():
    (result,) = adapter.assess(reports(c17((45, 45), 18)))
    assert result.latest.irecist is None and "irecist" not in result.latest.to_dict()


def test_unchanged_new_non_target_lesion_remains_iupd():
    """A small (non-measurable) new lesion that neither grows nor shrinks keeps iUPD; gone, it resets."""
    def case(size):
        return patient("NLNT", (0, [T("A", "liver", 50)]),
                       (8, [L("A", "liver", 50), L("New", "lung", 6)]),
                       (14, [L("A", "liver", 50), L("New", "lung", size)]))
    assert [tp.irecist.overall for tp in irecist(case(6)).timepoints[1:]] == ["iUPD", "iUPD"]
    assert irecist(case(6)).latest.irecist.new_non_targets == ("New",)
    assert [tp.irecist.overall for tp in irecist(case(0)).timepoints[1:]] == ["iUPD", "iSD"]
