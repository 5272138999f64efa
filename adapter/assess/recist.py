"""RECIST 1.1 decisions (CLINICAL.md §1.4-1.9), each a small pure function over exact numbers.

Percentages are compared as integer cross-products on Decimals ("10*S <= 7*B"), never as floats, so
-30.0 %, +20.0 % and +5 mm fall exactly on the side the guideline says (thresholds are inclusive).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from .presets import Parameters

CR, PR, SD, PD, NE, NON_CR_NON_PD = "CR", "PR", "SD", "PD", "NE", "NON-CR/NON-PD"
HUNDRED = Decimal(100)


def grew_enough(current: Decimal, reference: Decimal, rel_pct: Decimal, abs_mm: Decimal) -> bool:
    """current - reference >= abs_mm AND (reference == 0 or the increase >= rel_pct % of reference)."""
    increase = current - reference
    if increase < abs_mm or increase <= 0:
        return False
    return reference == 0 or increase * HUNDRED >= rel_pct * reference


def shrank_enough(current: Decimal, baseline: Decimal, pct: Decimal) -> bool:
    """A decrease of at least `pct` % from the baseline: S <= (100 - pct)/100 * B, exactly."""
    return current * HUNDRED <= (HUNDRED - pct) * baseline


@dataclass(frozen=True, slots=True)
class TargetInput:
    """The target lesions at one time point. `sum_low` adds the known values; `missing` counts the rest."""

    sum_low: Decimal
    missing: int
    complete_response: bool  # all non-nodal 0 and all nodal SA below the pathological limit
    baseline: Decimal
    nadir: Decimal
    sticky_pr: bool  # an earlier PR (or CR) on this reference and no PD since


def target_response(t: TargetInput, params: Parameters) -> str:
    """CR/PR/SD/PD, or NE when a missing target could change the answer (§1.8: only PD survives)."""
    is_pd = grew_enough(t.sum_low, t.nadir, params.pd_increase_pct, params.pd_abs_increase_mm)
    if t.missing:
        return PD if is_pd else NE
    if t.complete_response:
        return CR
    if is_pd:
        return PD
    if shrank_enough(t.sum_low, t.baseline, params.pr_decrease_pct):
        return PR
    if t.sticky_pr and params.sticky_pr:
        return PR
    return SD


def nontarget_response(present: int, absent: int, missing: int, progressed: int) -> str | None:
    """From reader flags only (§1.5): PD, CR, NON-CR/NON-PD, NE; None when there are no non-targets."""
    if progressed:
        return PD
    if present + absent + missing == 0:
        return None
    if missing:
        return NE
    return CR if present == 0 else NON_CR_NON_PD


def overall_response(target: str | None, non_target: str | None, new_lesions: bool) -> str:
    """Eisenhauer 2009 Table 1 (targets) and Table 2 (non-target disease only)."""
    if new_lesions or target == PD or non_target == PD:
        return PD
    if target is None:
        if non_target is None:
            return NE
        return {CR: CR, NON_CR_NON_PD: NON_CR_NON_PD}.get(non_target, NE)
    if target == NE:
        return NE
    if target == CR:
        return CR if non_target in (CR, None) else PR
    return target  # PR or SD, whatever the non-targets (non-PD or not all evaluated)


RANK = {CR: 5, PR: 4, SD: 3, NON_CR_NON_PD: 3, PD: 1, NE: 0}


def best_overall_response(
    responses: Sequence[tuple[dt.date | None, str]], baseline_date: dt.date | None, params: Parameters
) -> tuple[str, str]:
    """Best overall response and how it was reached (§1.9; Table 3 when confirmation is required).

    `responses` are the on-study time points in order (baseline excluded)."""
    def sd_ok(date: dt.date | None) -> bool:
        return baseline_date is None or date is None or (date - baseline_date).days >= params.sd_min_days

    if not params.confirmation:
        best, why = NE, "no evaluable time point"
        for date, response in responses:
            candidate = response
            if response in (SD, NON_CR_NON_PD) and not sd_ok(date):
                candidate = NE
            if RANK.get(candidate, 0) > RANK.get(best, 0):
                best, why = candidate, f"{response} on {date}"
        if best == NE and any(r == PD for _, r in responses):
            return PD, "progression without an earlier response or stable disease"
        return best, why
    best, why = NE, "no evaluable time point"
    for i, (date, response) in enumerate(responses):
        candidate = response
        if response in (CR, PR):
            candidate, reason = _confirmed(responses, i, params, sd_ok)
        else:
            reason = f"{response} on {date}"
            if response in (SD, NON_CR_NON_PD) and not sd_ok(date):
                candidate = NE
        if RANK.get(candidate, 0) > RANK.get(best, 0):
            best, why = candidate, reason
    if best == NE and any(r == PD for _, r in responses):
        return PD, "progression without a confirmed response or stable disease"
    return best, why


def _confirmed(responses, i, params: Parameters, sd_ok) -> tuple[str, str]:
    date, first = responses[i]
    for later_date, later in responses[i + 1:]:
        if later == NE:
            continue
        if date is not None and later_date is not None and (later_date - date).days < params.confirmation_min_days:
            continue
        if first == CR and later == CR:
            return CR, f"CR on {date} confirmed on {later_date}"
        if later in (CR, PR):
            return PR, f"PR on {date} confirmed on {later_date}"
        return (SD if sd_ok(date) else (PD if later == PD else NE)), f"{first} on {date} not confirmed ({later} on {later_date})"
    return (SD if sd_ok(date) else NE), f"{first} on {date} not confirmed (no later scan >= {params.confirmation_min_days} days)"
