"""CLINICAL.md §5 worked examples: the RECIST response and the state at every time point, in memory
and through generated SR series, the real reader and `oligo assess --json`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import adapter
from adapter.cli import app
from fixtures.generate import write_series

from tests.assess_cases import CASES, Case

runner = CliRunner()


def check(case: Case, timepoints: list[dict]) -> None:
    assert [tp["recist"]["overall"] if tp["recist"] else None for tp in timepoints] == case.recist
    assert [tp["state"] for tp in timepoints] == case.states
    if case.progressing is not None:
        assert [tp["progressing_count"] for tp in timepoints] == case.progressing


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_worked_example_in_memory(case: Case):
    from tests.assess_cases import reports

    (result,) = adapter.assess(reports(case.patient), preset=case.preset, treated=case.treated)
    check(case, result.to_dict()["timepoints"])


SR_CASES = [c for c in CASES if c.through_sr]


def test_at_least_half_of_the_examples_go_through_sr():
    assert len(SR_CASES) * 2 >= len(CASES)


@pytest.mark.parametrize("case", SR_CASES, ids=[c.id for c in SR_CASES])
def test_worked_example_through_sr_and_cli(case: Case, tmp_path):
    write_series(case.patient, tmp_path)
    args = ["assess", str(tmp_path), "--json", "--preset", case.preset]
    for lesion, date in case.treated.items():
        args += ["--treated", f"{lesion}={date.isoformat()}"]
    outcome = runner.invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    (patient,) = json.loads(outcome.stdout)["patients"]
    assert patient["patient_id"] == case.patient.patient_id
    check(case, patient["timepoints"])


def test_c2_prints_the_design_shape(tmp_path):
    """DESIGN.md §5.1: the documented JSON, key for key, for the key case (oligoprogression inside PR)."""
    case = next(c for c in CASES if c.id == "C2")
    write_series(case.patient, tmp_path)
    outcome = runner.invoke(app, ["assess", str(tmp_path), "--json"])
    (patient,) = json.loads(outcome.stdout)["patients"]
    assert patient["preset"] == "consensus-5"
    last = patient["timepoints"][-1]
    assert last["date"] == "2024-04-22"
    assert last["study_uid"].startswith("2.25.")
    assert last["state"] == "oligoprogression"
    recist = {k: last["recist"][k] for k in ("overall", "target", "non_target", "new_lesions", "sum_mm", "nadir_mm",
                                             "baseline_mm")}
    assert recist == {"overall": "PR", "target": "PR", "non_target": None, "new_lesions": False, "sum_mm": 62.0,
                      "nadir_mm": 54.0, "baseline_mm": 108.0}
    assert last["progressing_count"] == 1
    (progressing,) = last["progressing"]
    assert {k: progressing[k] for k in ("lesion", "reason", "from_mm", "to_mm")} == {
        "lesion": "Lesion 2", "reason": "size", "from_mm": 12.0, "to_mm": 20.0}
    assert progressing["explanation"] == "Lesion 2 (liver): 12 → 20 mm, +67 % and +8 mm from its nadir"
    lesion2 = next(row for row in last["lesions"] if row["lesion"] == "Lesion 2")
    assert (lesion2["class"], lesion2["value_mm"], lesion2["nadir_mm"], lesion2["change_mm"], lesion2["change_pct"]) \
        == ("target", 20.0, 12.0, 8.0, 66.7)


def test_c4_preset_limits(tmp_path):
    """Six new lesions: poly under every lesion-counting preset with a limit below 6, oligo under
    iyengar-2014 (<= 6); single-site counts sites, and six liver lesions are one site."""
    from tests.assess_cases import reports

    case = next(c for c in CASES if c.id == "C4")
    states = {name: adapter.assess(reports(case.patient), preset=name)[0].latest.state
              for name in ("consensus-5", "weickhardt-2012", "halt-original", "iyengar-2014", "single-site")}
    assert states == {"consensus-5": "polyprogression", "weickhardt-2012": "polyprogression",
                      "halt-original": "polyprogression", "iyengar-2014": "oligoprogression",
                      "single-site": "oligoprogression"}


def test_c10_range_is_reported():
    from tests.assess_cases import reports

    case = next(c for c in CASES if c.id == "C10")
    last = adapter.assess(reports(case.patient))[0].latest
    assert (last.progressing_count, last.progressing_max) == (0, 1)
    assert last.recist.sum_known_mm == 50 and last.recist.sum_mm is None and last.recist.missing_targets == 1
    assert any("between 0 and 1" in reason for reason in last.reasons)


def test_c18_treated_lesion_leaves_and_rebaselines():
    from tests.assess_cases import reports

    case = next(c for c in CASES if c.id == "C18")
    result = adapter.assess(reports(case.patient), treated=case.treated)[0]
    rebase = result.timepoints[3]
    assert rebase.reference_baseline and rebase.recist.overall == "NE"
    assert rebase.recist.baseline_mm == 42  # 15 + 10 + 8 + 9, Lesion 2 left the sum
    assert "Lesion 2 locally treated" in rebase.reasons[0]
    last = result.timepoints[4]
    assert last.recist.baseline_mm == 42 and last.recist.sum_mm == 49
    assert [p.name for p in last.progressing] == ["Liver 1"]
    assert [row.name for row in last.lesions if row.locally_treated] == ["Lesion 2"]
    assert result.to_dict()["treated"] == [{"lesion": "Lesion 2", "date": "2024-04-29"}]
