"""iRECIST (Seymour 2017; CLINICAL.md §2), layered on the RECIST 1.1 walk.

The first RECIST PD is iUPD. The next scan 4-8 weeks later confirms it (iCPD, dated to the iUPD) when
the target sum grew by >= 5 mm more, a non-target lesion progressed further, the sum of new target
lesions (NLT) grew by >= 5 mm, a new non-target lesion (NLNT) grew, or another new lesion appeared;
increases are cumulative from the iUPD scan. When the disease without the new lesions is iCR/iPR/iSD
and the new lesions shrank (or disappeared), the bar resets; otherwise it remains iUPD.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from . import result as r
from .progression import number
from .readings import Presence, Reading
from .recist import CR, NE, NON_CR_NON_PD, PD, PR, SD, grew_enough, overall_response
from .selection import organ_key

if TYPE_CHECKING:  # pragma: no cover
    from .engine import _Walk

I_NAMES = {CR: "iCR", PR: "iPR", SD: "iSD", NON_CR_NON_PD: "NON-iCR/NON-iUPD", NE: "iNE", PD: "iUPD"}


@dataclass
class _Unconfirmed:
    index: int
    target_sum: Decimal | None
    nlt_sum: Decimal | None
    nlnt: dict[int, Decimal | None]


def irecist_responses(walk: _Walk, results: list[r.TimePointAssessment]) -> list[r.TimePointAssessment]:
    p = walk.p
    nlt: list[int] = []
    nlnt: list[int] = []
    nlt_history: list[Decimal] = []
    per_organ: dict[str, int] = {}
    pending: _Unconfirmed | None = None
    confirmed_at: int | None = None
    out = list(results)
    for t, result in enumerate(results):
        if result.recist is None or result.reference_baseline:
            continue
        new_now = sorted(i for i, s in walk.confirmed_new.items() if s == t)
        for i in new_now:  # NLT: measurable new lesions, <= 5 in total and <= 2 per organ
            lesion, value = walk.lesions[i], walk.readings[i][t].value
            limit = p.node_measurable_min_sa_mm if lesion.anatomy.nodal else p.measurable_min_mm
            organ = organ_key(lesion)
            if value is not None and value >= limit and len(nlt) < p.irecist_max_new_targets and \
                    per_organ.get(organ, 0) < p.irecist_max_new_targets_per_organ:
                nlt.append(i)
                per_organ[organ] = per_organ.get(organ, 0) + 1
            else:
                nlnt.append(i)
        values = [walk.readings[i][t].value for i in nlt]
        nlt_sum = None if not nlt or any(v is None for v in values) else sum(values, Decimal(0))
        nt_progressed = any(walk.readings[i][t].nontarget_progression for i in _non_targets(walk, result))
        nlnt_progressed = any(walk.readings[i][t].nontarget_progression for i in nlnt)
        rec = result.recist
        reasons: list[str] = []
        date = walk.tps[t].date
        if confirmed_at is not None:
            overall = "iCPD"
            reasons.append(f"progression confirmed earlier; PD dated {walk.tps[confirmed_at].date}")
        elif pending is None:
            nlt_pd = nlt_sum is not None and nlt_history and not new_now and grew_enough(
                nlt_sum, min(nlt_history), p.pd_increase_pct, p.pd_abs_increase_mm)
            if rec.overall == PD or nlt_pd or nlnt_progressed:
                overall = "iUPD"
                pending = _Unconfirmed(t, rec.sum_mm, nlt_sum, {i: walk.readings[i][t].value for i in nlnt})
                reasons.append("RECIST 1.1 progression criteria met for the first time: unconfirmed (iUPD)")
            else:
                overall = I_NAMES[rec.overall]
        else:
            first = walk.tps[pending.index].date
            days = (date - first).days if date and first else None
            grown: list[str] = []
            if rec.sum_mm is not None and pending.target_sum is not None and \
                    rec.sum_mm - pending.target_sum >= p.pd_abs_increase_mm:
                grown.append(f"target sum +{number(rec.sum_mm - pending.target_sum)} mm since iUPD")
            if nt_progressed:
                grown.append("further non-target progression")
            if nlt_sum is not None and pending.nlt_sum is not None and nlt_sum - pending.nlt_sum >= p.pd_abs_increase_mm:
                grown.append(f"new-lesion target sum +{number(nlt_sum - pending.nlt_sum)} mm since iUPD")
            if nlnt_progressed or any(v is not None and (now := walk.readings[i][t].value) is not None and now > v
                                      for i, v in pending.nlnt.items()):
                grown.append("new non-target lesion increased")
            if new_now:
                grown.append(f"{len(new_now)} further new lesion(s)")
            early = days is not None and days < p.irecist_confirm_min_days - p.irecist_tolerance_days
            if early and not new_now:
                overall = "iUPD"
                reasons.append(f"scan {days} days after iUPD (< 4 weeks): not used for confirmation")
            elif grown:
                overall, confirmed_at = "iCPD", pending.index
                reasons.append("iUPD confirmed: " + "; ".join(grown) + f"; PD dated {first}")
            else:
                without_new = overall_response(rec.target, rec.non_target, False)
                new_shrank = (pending.nlt_sum is None or (nlt_sum is not None and nlt_sum < pending.nlt_sum)) and all(
                    _smaller(walk.readings[i][t], before) for i, before in pending.nlnt.items())
                if without_new in (CR, PR, SD, NON_CR_NON_PD) and new_shrank:
                    overall, pending = I_NAMES[without_new], None
                    reasons.append("iUPD not confirmed: the bar resets")
                else:
                    overall = "iUPD"
                    reasons.append("no further increase since iUPD: remains iUPD")
            if days is not None and days > p.irecist_confirm_max_days + p.irecist_tolerance_days:
                reasons.append(f"scan {days} days after iUPD, outside the 4-8 week confirmation window")
        if nlt_sum is not None:
            nlt_history.append(nlt_sum)
        out[t] = dataclasses.replace(result, irecist=r.IrecistResult(
            overall, rec.sum_mm, nlt_sum, tuple(walk.lesions[i].name for i in nlt),
            tuple(walk.lesions[i].name for i in nlnt),
            walk.tps[pending.index].date if pending else (walk.tps[confirmed_at].date if confirmed_at is not None
                                                          else None),
            tuple(reasons)))
    return out


def _smaller(now: Reading, before: Decimal | None) -> bool:
    """A new non-target lesion shrank since iUPD: gone, or measured smaller."""
    if now.presence is Presence.ABSENT:
        return True
    return before is not None and now.value is not None and now.value < before


def _non_targets(walk: _Walk, result: r.TimePointAssessment) -> list[int]:
    index = {lesion.lesion_id: i for i, lesion in enumerate(walk.lesions)}
    return [index[row.lesion_id] for row in result.lesions if row.lesion_class == "non-target"]
