"""Per-lesion progression (rule D5, CLINICAL.md §4.2, §7.1) and the oligo/poly state (§7.1).

A lesion progresses when it grows >= 20 % AND >= 5 mm from its own reference (nadir by default; nodes
must also reach 10 mm SA), is an unequivocal new lesion, is a non-target lesion the reader marks as
unequivocally progressing, or reappears after a complete response. The state is decided on the whole
range of possible counts: when lesions are missing, it is given only if every count in the range leads
to the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from . import result as r
from .presets import Parameters
from .recist import NE, PD, grew_enough


def reference_value(history: Sequence[Decimal], mode: str) -> Decimal | None:
    """The lesion's own reference among its earlier values (baseline first): nadir, baseline or previous."""
    if not history:
        return None
    if mode == "baseline":
        return history[0]
    if mode == "previous":
        return history[-1]
    return min(history)


def progresses_by_size(value: Decimal, reference: Decimal, nodal: bool, params: Parameters) -> bool:
    if nodal and value < params.node_min_sa_for_progression_mm:
        return False
    return grew_enough(value, reference, params.lesion_rel_increase_pct, params.lesion_abs_increase_mm)


def number(value: Decimal) -> str:
    text = format(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP), "f")
    return text[:-2] if text.endswith(".0") else text


def size_explanation(name: str, organ: str | None, reference: Decimal, value: Decimal, mode: str) -> str:
    change = value - reference
    where = f"{name} ({organ})" if organ else name
    word = {"nadir": "its nadir", "baseline": "its baseline", "previous": "the previous scan"}[mode]
    sign = "+" if change >= 0 else "-"
    if reference == 0:
        return f"{where}: {number(reference)} → {number(value)} mm, {sign}{number(abs(change))} mm from {word}"
    pct = (abs(change) * 100 / reference).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return (f"{where}: {number(reference)} → {number(value)} mm, {sign}{pct} % and {sign}{number(abs(change))} mm "
            f"from {word}")


@dataclass(frozen=True, slots=True)
class Counted:
    """What is compared with the preset's limit: distinct units, and whether anything progresses at all."""

    counted: int
    total: int
    organs: int


def count(progressing: Sequence[r.LesionAssessment], keys: dict[str, str], params: Parameters) -> Counted:
    counted = {keys[p.lesion_id] for p in progressing if params.cns_counted or not p.cns}
    organs = {p.organ or p.lesion_id for p in progressing if params.cns_counted or not p.cns}
    return Counted(len(counted), len(progressing), len(organs))


@dataclass(frozen=True, slots=True)
class StateInputs:
    target: str | None
    overall: str
    prior_control: bool


def state_for(c: Counted, s: StateInputs, params: Parameters) -> tuple[str, str | None]:
    """(state, pattern) for one possible count."""
    if c.total == 0:
        if s.overall == PD or s.target == PD:
            return (r.DIFFUSE_PROGRESSION, "diffuse") if s.prior_control else (r.WITHOUT_PRIOR_CONTROL, "diffuse")
        if s.overall == NE:
            return r.NOT_EVALUABLE, None
        return r.NO_PROGRESSION, None
    poly = c.counted > params.max_progressing or (
        params.max_progressing_organs is not None and c.organs > params.max_progressing_organs)
    pattern = "poly" if poly else "oligo"
    if params.require_prior_disease_control and not s.prior_control:
        return r.WITHOUT_PRIOR_CONTROL, pattern
    return (r.POLYPROGRESSION if poly else r.OLIGOPROGRESSION), pattern


def decide(low: Counted, high: Counted, with_equivocal: Counted | None, s: StateInputs,
           params: Parameters) -> tuple[str, str | None, list[str]]:
    """The state over the range [low, high] of counts, and `indeterminate` when equivocal findings matter."""
    notes: list[str] = []
    state, pattern = state_for(low, s, params)
    upper = state_for(high, s, params)
    if upper != (state, pattern):
        notes.append(f"missing measurements leave the count between {low.counted} and {high.counted}: "
                     f"{state} or {upper[0]}")
        return r.NOT_EVALUABLE, None, notes
    if with_equivocal is not None and state_for(with_equivocal, s, params) != (state, pattern):
        notes.append("an equivocal finding would change the class: re-image")
        return r.INDETERMINATE, pattern, notes
    return state, pattern, notes
