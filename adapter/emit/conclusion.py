"""The DiagnosticReport's conclusion: one paragraph in plain clinical words.

It says the state, names every progressing lesion with its sizes and, for oligoprogression, names
them as candidates for local therapy while systemic therapy continues; RECIST 1.1 is reported beside
it (CLINICAL.md §7.10: the two are separate outputs).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from ..assess.progression import number
from ..assess.result import LesionAssessment, PatientAssessment, TimePointAssessment

RECIST_WORDS = {"CR": "complete response", "PR": "partial response", "SD": "stable disease",
                "PD": "progressive disease", "NE": "not evaluable", "NON-CR/NON-PD": "non-CR/non-PD"}

REFERENCE_WORDS = {"nadir": "its nadir", "baseline": "its baseline", "previous": "the previous scan"}


def where(row: LesionAssessment, sides: dict[str, str]) -> str:
    """'left lung', 'liver': the organ with its side, when known."""
    organ = row.organ or ""
    side = sides.get(row.lesion_id, "")
    return " ".join(p for p in (side, organ) if p)


def _pct(change: Decimal, reference: Decimal) -> str:
    value = (change * 100 / reference).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return f"{'+' if value >= 0 else '−'}{abs(value)} %"


def describe_lesion(row: LesionAssessment, sides: dict[str, str], reference: str = "its nadir") -> str:
    place = where(row, sides)
    head = f"{row.name} in the {place}" if place and place.casefold() not in row.name.casefold() else row.name
    if row.reason == "size" and row.from_mm is not None and row.value_mm is not None:
        change = row.value_mm - row.from_mm
        growth = f", {_pct(change, row.from_mm)} from {reference}" if row.from_mm else ""
        return f"{head}, {number(row.from_mm)} → {number(row.value_mm)} mm{growth}"
    if row.reason == "new":
        return f"{head}, new" + (f", {number(row.value_mm)} mm" if row.value_mm is not None else "")
    if row.reason == "non-target":
        return f"{head}, unequivocal non-target progression"
    if row.reason == "reappearance":
        return f"{head}, reappeared after complete response"
    return head


def recist_phrase(tp: TimePointAssessment) -> str:
    if tp.recist is None:
        return ""
    recist = tp.recist
    text = f"RECIST 1.1 {RECIST_WORDS.get(recist.overall, recist.overall)}"
    if recist.sum_mm is not None and recist.baseline_mm:
        text += (f" (sum of diameters {number(recist.sum_mm)} mm, "
                 f"{_pct(recist.sum_mm - recist.baseline_mm, recist.baseline_mm)} from baseline "
                 f"{number(recist.baseline_mm)} mm)")
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def conclusion(assessment: PatientAssessment, tp: TimePointAssessment, sides: dict[str, str]) -> str:
    """The one-paragraph conclusion for time point `tp` of the assessment."""
    p = assessment.parameters
    tracked = sum(1 for row in tp.lesions if not row.locally_treated)
    reference = REFERENCE_WORDS.get(p.lesion_reference, p.lesion_reference)
    names = "; ".join(describe_lesion(row, sides, reference) for row in tp.progressing)
    recist = recist_phrase(tp)
    unit = {"lesion": "lesion", "site": "site", "organ": "organ"}[p.count_unit]
    limit = f"preset {assessment.preset}: oligoprogression up to {p.max_progressing} progressing {unit}s"
    state = tp.state
    if state == "oligoprogression":
        candidates = ", ".join(row.name for row in tp.progressing)
        word = "candidate" if len(tp.progressing) == 1 else "candidates"
        text = (f"Oligoprogression: {tp.progressing_count} of {_plural(tracked, 'tracked lesion')} progressing "
                f"[{names}]; the other lesions are controlled; {recist}. {candidates}: {word} for local therapy "
                f"(e.g. SBRT or ablation) while systemic therapy continues")
    elif state == "polyprogression":
        text = (f"Polyprogression: {_plural(tp.progressing_count, 'progressing ' + unit)} [{names}], above the "
                f"limit of {p.max_progressing}; {recist}. Widespread progression: not a pattern for local "
                "therapy of single lesions")
    elif state == "no-progression":
        text = f"No progressing lesion among {_plural(tracked, 'tracked lesion')}; {recist}"
    elif state == "diffuse-progression":
        text = (f"Diffuse progression: {recist} by the sum of diameters without a single progressing lesion; "
                "not a pattern for local therapy")
    elif state == "progression-without-prior-control":
        text = (f"Progression at the first on-treatment assessment, without prior disease control (primary "
                f"resistance); {recist}")
        if tp.progressing:
            text += f"; {_plural(tp.progressing_count, 'progressing ' + unit)} [{names}], {tp.pattern} pattern"
    elif state == "indeterminate":
        equivocal = ", ".join(row.name for row in tp.lesions if row.equivocal)
        text = f"Indeterminate: an equivocal finding ({equivocal}) would change the class; re-image; {recist}"
    elif state == "not-evaluable" and tp.reference_baseline and tp.reasons:
        text = f"Not evaluable at the baseline scan: {tp.reasons[-1]}"
    elif state == "not-evaluable":
        text = "Not evaluable: missing measurements leave the class undetermined"
        if tp.progressing_max > tp.progressing_count:
            text += f" (between {tp.progressing_count} and {tp.progressing_max} progressing {unit}s)"
        text += f"; {recist}" if recist else ""
    elif state == "baseline":
        text = f"Baseline: {_plural(tracked, 'lesion')} recorded; nothing to compare with yet"
        if tp.recist is not None:
            text += f"; {recist}"
    else:
        text = state
    return f"{text}. {limit[0].upper()}{limit[1:]}."
