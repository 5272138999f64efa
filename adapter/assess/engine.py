"""`assess_timeline`: RECIST 1.1 and the oligo/poly state at every time point of one patient.

Pure: a PatientTimeline in, a PatientAssessment out; no I/O, no clock. The walk keeps one reference
baseline at a time (the first scan, then the first scan after each local therapy) and decides each
follow-up scan against it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from ..model import PatientTimeline, TrackedLesion
from . import result as r
from .irecist import irecist_responses
from .presets import DEFAULT_PRESET, Preset, load_preset
from .progression import (StateInputs, count, decide, number, progresses_by_size, reference_value,
                          size_explanation)
from .readings import Presence, Reading, read
from .recist import (CR, NE, PD, PR, TargetInput, best_overall_response, nontarget_response, overall_response,
                     target_response)
from .selection import Selection, organ_key, select

CRITERIA = ("recist", "irecist")


@dataclass
class _Reference:
    """The current reference baseline and what has happened on it so far."""

    index: int
    selection: Selection
    baseline_sum: Decimal | None
    sums: list[Decimal] = field(default_factory=list)  # complete target sums, baseline first
    target_history: list[tuple[dt.date | None, str]] = field(default_factory=list)


def assess_timeline(
    timeline: PatientTimeline,
    preset: str | Preset = DEFAULT_PRESET,
    *,
    treated: Mapping[str, dt.date] | None = None,
    criteria: str = "recist",
    coalesced: Mapping[str, Sequence[str]] | None = None,
    **overrides,
) -> r.PatientAssessment:
    """Assess every time point. `treated` maps a lesion (id or name) to its local-therapy date;
    `coalesced` maps a lesion to the lesions that merged into it (their sizes are tested together)."""
    if criteria not in CRITERIA:
        raise ValueError(f"unknown criteria {criteria!r}; use one of {', '.join(CRITERIA)}")
    chosen = preset if isinstance(preset, Preset) else load_preset(preset, **overrides)
    return _Walk(timeline, chosen, treated or {}, coalesced or {}, criteria).run()


class _Walk:
    def __init__(self, timeline: PatientTimeline, preset: Preset, treated, coalesced, criteria: str):
        self.timeline, self.preset, self.p, self.criteria = timeline, preset, preset.parameters, criteria
        self.tps = timeline.time_points
        self.lesions = timeline.lesions
        self.warnings = list(timeline.conflicts) + list(timeline.warnings)
        self.readings = [[read(o, lesion.anatomy.nodal, self.p) for o in lesion.observations]
                         for lesion in self.lesions]
        self.treated = self._resolve(treated, "treated")
        self.treated_dates = dict(self.treated)
        self.members = {i: [i] + self._resolve_many(coalesced.get(key, ()))
                        for key in coalesced for i in self._resolve({key: None}, "coalesced")}
        self.absorbed = {m for ms in self.members.values() for m in ms[1:]}
        self.keys = {lesion.lesion_id: self._count_key(lesion) for lesion in self.lesions}
        self.first_seen = [next((t for t, x in enumerate(rs) if x.presence is not Presence.NOT_ASSESSED), None)
                           for rs in self.readings]
        self.baseline_index = next((t for t, tp in enumerate(self.tps) if tp.is_baseline), 0)
        self.confirmed_new: dict[int, int] = {}  # lesion -> index where it became unequivocal
        self.equivocal_since: dict[int, int] = {}
        self.overall: dict[int, str] = {}
        self.first_reference: _Reference | None = None

    # --- inputs --------------------------------------------------------------------------------------

    def _find(self, key: str) -> int | None:
        for i, lesion in enumerate(self.lesions):
            if key in (lesion.lesion_id, lesion.name) or key.casefold() == lesion.name.casefold():
                return i
        return None

    def _resolve(self, mapping: Mapping[str, dt.date | None], what: str) -> dict[int, dt.date | None]:
        out = {}
        for key, date in mapping.items():
            i = self._find(key)
            if i is None:
                self.warnings.append(f"{what}: no lesion named {key!r} on this patient's timeline; ignored")
            else:
                out[i] = date
        return out

    def _resolve_many(self, keys: Iterable[str]) -> list[int]:
        return list(self._resolve({k: None for k in keys}, "coalesced"))

    def _count_key(self, lesion: TrackedLesion) -> str:
        if self.p.count_unit == "organ":
            return organ_key(lesion)
        if self.p.count_unit == "site":
            side = lesion.laterality.meaning or lesion.laterality.value if lesion.laterality else ""
            return f"{organ_key(lesion)}|{side.lower()}"
        return lesion.lesion_id

    # --- the walk ------------------------------------------------------------------------------------

    def run(self) -> r.PatientAssessment:
        rebaseline_at = self._rebaseline_indices()
        results: list[r.TimePointAssessment] = []
        ref: _Reference | None = None
        for t, tp in enumerate(self.tps):
            if t < self.baseline_index:
                why = "scan dated before the baseline scan" if tp.date else "scan without a date: not placed in time"
                results.append(self._simple(t, r.NOT_EVALUABLE, (why,)))
            elif t == self.baseline_index or t in rebaseline_at:
                ref = self._new_reference(t, ref, rebaseline_at.get(t, ()))
                self.first_reference = self.first_reference or ref
                results.append(self._baseline_result(t, ref, rebaseline_at.get(t, ())))
            else:
                results.append(self._follow_up(t, ref))
        if self.criteria == "irecist":
            results = irecist_responses(self, results)
        on_study = [(tp.date, tp.recist.overall) for tp in results[self.baseline_index + 1:]
                    if tp.recist is not None and not tp.reference_baseline]
        base_date = self.tps[self.baseline_index].date if self.tps else None
        bor, why = best_overall_response(on_study, base_date, self.p) if on_study else (None, "no follow-up scan")
        if not self.tps:
            self.warnings.append("no time point: nothing to assess")
        return r.PatientAssessment(
            patient_id=self.timeline.patient_id, patient_issuer=self.timeline.patient_issuer,
            preset=self.preset.name, preset_source=self.preset.source, parameters=self.p,
            criteria=self.criteria, timepoints=tuple(results), best_overall_response=bor,
            best_overall_reason=why,
            treated=tuple((self.lesions[i].name, d) for i, d in self.treated.items() if d is not None),
            warnings=tuple(self.warnings), timeline=self.timeline)

    def _rebaseline_indices(self) -> dict[int, tuple[int, ...]]:
        """Local therapy: the first scan after it starts a new reference baseline (CLINICAL.md §7.8)."""
        out: dict[int, list[int]] = {}
        for i, date in self.treated.items():
            if date is None:
                continue
            t = next((t for t, tp in enumerate(self.tps)
                      if t > self.baseline_index and tp.date is not None and tp.date > date), None)
            if t is not None:
                out.setdefault(t, []).append(i)
        return {t: tuple(v) for t, v in out.items()}

    def active(self, i: int, t: int) -> bool:
        date = self.treated_dates.get(i)
        return date is None or self.tps[t].date is None or self.tps[t].date <= date

    def value(self, i: int, t: int) -> Decimal | None:
        """The size tested by the per-lesion rule: coalesced lesions are summed with their members."""
        values = [self.readings[m][t].value for m in self.members.get(i, [i])]
        return None if any(v is None for v in values) else sum(values, Decimal(0))

    def _new_reference(self, t: int, old: _Reference | None, treated_now: Sequence[int]) -> _Reference:
        if old is None:
            present = [i for i in range(len(self.lesions))
                       if self.first_seen[i] is not None and self.first_seen[i] <= t]
            selection = select(self.lesions, present, [rs[t] for rs in self.readings], self.p)
        else:
            keep = lambda i: self.active(i, t)  # noqa: E731
            seen_new = [i for i in range(len(self.lesions))
                        if i not in old.selection.targets and i not in old.selection.non_targets
                        and self.first_seen[i] is not None and self.first_seen[i] <= t]
            selection = Selection(tuple(i for i in old.selection.targets if keep(i)),
                                  tuple(i for i in old.selection.non_targets + tuple(seen_new) if keep(i)),
                                  old.selection.auto_selected, old.selection.notes)
        values = [self.readings[i][t].value for i in selection.targets]
        base = None if any(v is None for v in values) or not values else sum(values, Decimal(0))
        return _Reference(t, selection, base, [base] if base is not None else [])

    def _class_of(self, i: int, ref: _Reference) -> str:
        if i in ref.selection.targets:
            return "target"
        if i in ref.selection.non_targets:
            return "non-target"
        return "new"

    def _lesion_row(self, i: int, t: int, ref: _Reference, **extra) -> r.LesionAssessment:
        lesion, reading = self.lesions[i], self.readings[i][t]
        obs = lesion.observations[t]
        return r.LesionAssessment(
            lesion_id=lesion.lesion_id, name=lesion.name, lesion_class=self._class_of(i, ref),
            organ=lesion.anatomy.organ, nodal=lesion.anatomy.nodal, cns=lesion.anatomy.cns,
            presence=reading.presence.value, value_mm=extra.pop("value", reading.value),
            auto_selected=ref.selection.auto_selected and i in ref.selection.targets,
            locally_treated=not self.active(i, t), source_id=obs.source_id if obs else None, **extra)

    def _simple(self, t: int, state: str, reasons: tuple[str, ...]) -> r.TimePointAssessment:
        tp = self.tps[t]
        return r.TimePointAssessment(tp.date, tp.study_uid, state, None, (), 0, 0, 0, None, (), reasons,
                                     reports=tp.reports)

    def _baseline_result(self, t: int, ref: _Reference, treated_now: Sequence[int]) -> r.TimePointAssessment:
        tp = self.tps[t]
        reasons = list(ref.selection.notes)
        rows = tuple(self._lesion_row(i, t, ref) for i in ref.selection.targets + ref.selection.non_targets)
        recist = None
        if treated_now:
            names = ", ".join(self.lesions[i].name for i in treated_now)
            reasons.insert(0, f"{names} locally treated: left the sums and counts; this scan is the new "
                              "reference baseline")
            recist = r.RecistResult(NE, NE if ref.selection.targets else None, None, False, ref.baseline_sum,
                                    ref.baseline_sum, ref.baseline_sum, ref.baseline_sum,
                                    reasons=("a locally treated lesion left the assessment (EORTC FAQ): NE",))
        state = r.BASELINE
        if not ref.selection.targets and not ref.selection.non_targets:
            state, reasons = r.NOT_EVALUABLE, reasons + ["no lesion at the baseline scan"]
        elif ref.selection.targets and ref.baseline_sum is None:
            missing = []
            for i in ref.selection.targets:
                rd = self.readings[i][t]
                if rd.value is None:
                    missing.append(f"{self.lesions[i].name} ({rd.presence.value}{': ' + rd.note if rd.note else ''})")
            state = r.NOT_EVALUABLE
            reasons.append("baseline sum not measurable: " + ", ".join(missing))
        elif not ref.selection.targets:
            state = r.NOT_EVALUABLE
            reasons.append("no measurable lesion at baseline: no target response can be given; non-target "
                           "disease only (RECIST Table 2)")
        else:
            reasons.append(f"baseline sum of diameters {number(ref.baseline_sum)} mm over "
                           f"{len(ref.selection.targets)} target lesion(s)")
        return r.TimePointAssessment(tp.date, tp.study_uid, state, recist, (), 0, 0, 0, None, rows, tuple(reasons),
                                     reference_baseline=True, reports=tp.reports)

    # --- one follow-up scan --------------------------------------------------------------------------

    def _follow_up(self, t: int, ref: _Reference) -> r.TimePointAssessment:
        tp, p = self.tps[t], self.p
        reasons: list[str] = []
        targets = [i for i in ref.selection.targets if self.active(i, t)]
        non_targets = [i for i in ref.selection.non_targets if self.active(i, t)]
        # targets
        target, sum_low, missing, continued = None, Decimal(0), 0, False
        if targets:
            values = [self.readings[i][t].value for i in targets]
            sum_low = sum((v for v in values if v is not None), Decimal(0))
            missing = sum(1 for v in values if v is None)
            if ref.baseline_sum is None:
                target = NE
                reasons.append("target lesions not all measured at the baseline: target response NE")
            else:
                complete = not missing and all(
                    v < p.node_pathological_sa_mm if self.lesions[i].anatomy.nodal else v == 0
                    for i, v in zip(targets, values))
                sticky = _responded_since_progression(ref.target_history, p.sticky_pr_needs_confirmed_pr,
                                                      p.confirmation_min_days)
                nadir = min(ref.sums)
                target = target_response(TargetInput(sum_low, missing, complete, ref.baseline_sum, nadir, sticky), p)
                if missing:
                    names = ", ".join(self.lesions[i].name for i, v in zip(targets, values) if v is None)
                    reasons.append(f"target lesion(s) not measured: {names}; the sum is at least "
                                   f"{number(sum_low)} mm" + (", PD whatever their size" if target == PD else
                                                              ": response NE"))
                continued = target == PR and sticky and not missing and p.sticky_pr and \
                    sum_low * 100 > (100 - p.pr_decrease_pct) * ref.baseline_sum
                if continued:
                    reasons.append("continued PR: no PD against the nadir since the partial response (EORTC FAQ)")
        # non-targets
        states = {"present": 0, "absent": 0, "missing": 0, "progressed": 0}
        for i in non_targets:
            rd = self.readings[i][t]
            states[self._nontarget_state(i, rd)] += 1
        non_target = nontarget_response(**states)
        # new lesions and reappearance
        new_now, equivocal_now = self._new_lesions(t, ref)
        reappeared = self._reappeared(t, ref, targets + non_targets) if self.overall.get(self._previous(t)) == CR \
            else []
        new_flag = bool(new_now) or bool(reappeared)
        overall = overall_response(target, non_target, new_flag)
        if not targets and not non_targets and not new_now:
            overall = NE
            reasons.append("no lesion to assess on the reference baseline")
        if reappeared:
            reasons.append("lesion reappeared after a complete response: PD")
        self.overall[t] = overall
        ref.target_history.append((tp.date, target or ""))
        nadir_used = min(ref.sums) if ref.sums and targets else None  # the reference of this scan's PD test
        if target not in (None, NE) and not missing:
            ref.sums.append(sum_low)
        recist = r.RecistResult(
            overall, target, non_target, new_flag, None if missing or not targets else sum_low,
            sum_low if targets else None, nadir_used,
            ref.baseline_sum if targets else None, missing, continued, tuple(reasons))
        rows, certain, possible, equivocal = self._lesion_rows(t, ref, new_now, equivocal_now, reappeared)
        return self._state(t, recist, rows, certain, possible, equivocal)

    def _nontarget_state(self, i: int, rd: Reading) -> str:
        if rd.nontarget_progression:
            return "progressed"
        if rd.presence in (Presence.NOT_ASSESSED, Presence.UNUSABLE):
            return "missing"
        if rd.presence is Presence.ABSENT or (
                self.lesions[i].anatomy.nodal and rd.value is not None and rd.value < self.p.node_pathological_sa_mm):
            return "absent"
        return "present"

    def _previous(self, t: int) -> int:
        return t - 1

    def _present(self, i: int, rd: Reading, minimum: Decimal) -> bool:
        if rd.presence in (Presence.NOT_ASSESSED, Presence.ABSENT, Presence.UNUSABLE):
            return False
        if self.lesions[i].anatomy.nodal and rd.value is not None:
            return rd.value >= minimum
        return True

    def _new_lesions(self, t: int, ref: _Reference) -> tuple[list[int], list[int]]:
        """Lesions unequivocally new at this scan, and those still equivocal (CLINICAL.md §1.6, §7.7)."""
        new_now, equivocal = [], []
        p = self.p
        for i, lesion in enumerate(self.lesions):
            if self._class_of(i, ref) != "new" or i in self.confirmed_new or not self.active(i, t):
                continue
            rd = self.readings[i][t]
            if not self._present(i, rd, p.new_node_min_sa_mm):
                continue
            small_node = lesion.anatomy.nodal and rd.value is not None and rd.value < p.equivocal_node_below_mm
            if i in self.equivocal_since or not (small_node or rd.equivocal):
                self.confirmed_new[i] = t
                new_now.append(i)
            else:
                self.equivocal_since[i] = t
                equivocal.append(i)
        return new_now, equivocal

    def _reappeared(self, t: int, ref: _Reference, existing: Sequence[int]) -> list[int]:
        out = []
        for i in existing:
            before = [self.readings[i][s] for s in range(ref.index, t)
                      if self.readings[i][s].presence is not Presence.NOT_ASSESSED]
            if not before:
                continue
            nodal, limit = self.lesions[i].anatomy.nodal, self.p.node_pathological_sa_mm
            prev = before[-1]
            gone = prev.presence is Presence.ABSENT or (nodal and prev.value is not None and prev.value < limit)
            now = self.readings[i][t]
            back = now.nontarget_progression if nodal and now.value is None else self._present(i, now, limit)
            if gone and back:
                out.append(i)
        return out

    def _lesion_rows(self, t, ref, new_now, equivocal_now, reappeared):
        p = self.p
        rows, certain, possible, equivocal = [], [], [], []
        for i, lesion in enumerate(self.lesions):
            if i in self.absorbed or self.first_seen[i] is None or self.first_seen[i] > t:
                continue
            if not self.active(i, t):
                rows.append(self._lesion_row(i, t, self.first_reference, explanation="locally treated: not assessed"))
                continue
            cls = self._class_of(i, ref)
            if cls == "new" and i not in self.confirmed_new and i not in equivocal_now:
                continue
            where = f"{lesion.name} ({lesion.anatomy.organ})" if lesion.anatomy.organ else lesion.name
            rd, x = self.readings[i][t], self.value(i, t)
            start = max(ref.index, self.first_seen[i])
            history = [v for s in range(start, t) if self.active(i, s) and (v := self.value(i, s)) is not None]
            reference = reference_value(history, p.lesion_reference)
            row = dict(value=x, reference_mm=reference)
            if i in equivocal_now:
                row.update(equivocal=True, explanation=f"{where}: equivocal new finding ({number(x)} mm), re-image"
                           if x is not None else f"{where}: equivocal new finding, re-image")
                equivocal.append(self._lesion_row(i, t, ref, **row))
                rows.append(equivocal[-1])
                continue
            if i in new_now:
                if p.count_new_lesions:
                    row.update(progressing=True, reason=r.NEW, reference_mm=None,
                               explanation=f"{where}: new lesion" + (f", {number(x)} mm" if x is not None else ""))
                    if self.equivocal_since.get(i) is not None and self.equivocal_since[i] < t:
                        row["explanation"] += f" (confirmed; dated to {self.tps[self.equivocal_since[i]].date})"
            elif i in reappeared and p.reappearance_after_cr_counts:
                row.update(progressing=True, reason=r.REAPPEARANCE,
                           explanation=f"{where}: reappeared after a complete response")
            elif x is not None and reference is not None and progresses_by_size(x, reference, lesion.anatomy.nodal, p):
                row.update(progressing=True, reason=r.SIZE, from_mm=reference,
                           explanation=size_explanation(lesion.name, lesion.anatomy.organ, reference, x,
                                                        p.lesion_reference))
            elif cls != "target" and rd.nontarget_progression and p.count_nontarget_unequivocal_pd:
                row.update(progressing=True, reason=r.NON_TARGET, non_measurable=True,
                           explanation=f"{where}: unequivocal progression of a non-target lesion (reader)")
            elif x is None and (history or cls == "target") and rd.presence is not Presence.PRESENT:
                row.update(possibly_progressing=True,
                           explanation=f"{where}: not measured ({rd.presence.value}{': ' + rd.note if rd.note else ''})"
                           "; could be progressing")
            elif x is not None and reference is not None:
                row.update(explanation=size_explanation(lesion.name, lesion.anatomy.organ, reference, x,
                                                        p.lesion_reference))
            lesion_row = self._lesion_row(i, t, ref, **row)
            rows.append(lesion_row)
            if lesion_row.progressing:
                certain.append(lesion_row)
            elif lesion_row.possibly_progressing:
                possible.append(lesion_row)
        return tuple(rows), certain, possible, equivocal

    def _prior_control(self, t: int) -> tuple[bool, str]:
        base = self.tps[self.baseline_index]
        for s in range(self.baseline_index + 1, t):
            response = self.overall.get(s)
            if response not in self.p.prior_control_responses:
                continue
            if base.date and self.tps[s].date and \
                    (self.tps[s].date - base.date).days < self.p.min_time_on_therapy_days:
                continue
            return True, f"prior disease control: {response} on {self.tps[s].date}"
        return False, "no earlier on-treatment scan without progression (no prior disease control)"

    def _state(self, t, recist, rows, certain, possible, equivocal) -> r.TimePointAssessment:
        tp, p = self.tps[t], self.p
        control, control_note = self._prior_control(t)
        low = count(certain, self.keys, p)
        high = count(certain + possible, self.keys, p)
        with_eq = count(certain + equivocal, self.keys, p) if equivocal else None
        state, pattern, notes = decide(low, high, with_eq, StateInputs(recist.target, recist.overall, control), p)
        reasons = [f"RECIST 1.1 {recist.overall} (target {recist.target or '-'}, non-target "
                   f"{recist.non_target or '-'}, new lesions {'yes' if recist.new_lesions else 'no'})"]
        reasons += list(recist.reasons)
        reasons += [row.explanation for row in certain]
        unit = {"lesion": "lesion(s)", "site": "site(s)", "organ": "organ(s)"}[p.count_unit]
        limit = f"limit {p.max_progressing} under {self.preset.name}"
        if not p.cns_counted and any(row.cns for row in certain):
            limit += ", CNS lesions not counted"
        reasons.append(f"{low.counted} progressing {unit} ({limit}) in {low.organs} organ(s)")
        if low.total or state == r.DIFFUSE_PROGRESSION:
            reasons.append(control_note)
        reasons += [row.explanation for row in possible]
        reasons += notes
        if state == r.DIFFUSE_PROGRESSION:
            reasons.append("sum of diameters progressed with no single progressing lesion")
        return r.TimePointAssessment(
            tp.date, tp.study_uid, state, recist, tuple(certain), low.counted, high.counted, low.organs,
            pattern, rows, tuple(reasons), reports=tp.reports)


def _responded_since_progression(history: Sequence[tuple[dt.date | None, str]], confirmed: bool,
                                 min_days: int) -> bool:
    """Sticky PR (EORTC FAQ): "a confirmed PR ... is considered a continuing PR unless PD": an earlier
    target PR/CR, confirmed by another PR/CR at least `min_days` later, with no target PD since."""
    since: list[dt.date | None] = []
    for date, response in history:
        if response == PD:
            since = []
        elif response in (PR, CR):
            since.append(date)
    if not confirmed:
        return bool(since)
    first = since[0] if since else None
    return any(first is None or later is None or (later - first).days >= min_days for later in since[1:])


__all__ = ["CRITERIA", "assess_timeline"]
