"""Target selection at a reference baseline (CLINICAL.md §1.1-1.2).

Roles stated by the reader are used as given. Without any stated target, RECIST picks the largest
measurable lesions (>= 10 mm LD non-nodal, >= 15 mm SA nodal), at most 5 in total and 2 per organ,
paired organs counting as one; the choice is marked auto-selected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..model import Role, TrackedLesion
from .presets import Parameters
from .readings import Presence, Reading


@dataclass(frozen=True, slots=True)
class Selection:
    targets: tuple[int, ...]
    non_targets: tuple[int, ...]
    auto_selected: bool
    notes: tuple[str, ...] = ()


def organ_key(lesion: TrackedLesion) -> str:
    """The organ for "<= 2 per organ" and organ counts; an unknown organ is its own."""
    if lesion.anatomy.organ:
        return lesion.anatomy.organ
    return f"unknown organ ({lesion.name})"


def measurable(lesion: TrackedLesion, reading: Reading, params: Parameters) -> bool:
    if reading.presence is not Presence.MEASURED or reading.value is None:
        return False
    limit = params.node_measurable_min_sa_mm if lesion.anatomy.nodal else params.measurable_min_mm
    return reading.value >= limit


def select(lesions: Sequence[TrackedLesion], indices: Sequence[int], readings: Sequence[Reading],
           params: Parameters) -> Selection:
    """`indices` are the lesions present at the baseline; `readings[i]` is lesion i at the baseline."""
    stated = [i for i in indices if lesions[i].role is Role.TARGET]
    candidates = [i for i in indices if lesions[i].role is not Role.NON_LESION]
    if stated:
        notes = ()
        if len(stated) > params.max_targets:
            notes = (f"{len(stated)} target lesions stated by the reader (RECIST allows "
                     f"{params.max_targets}); used as given",)
        return Selection(tuple(stated), tuple(i for i in candidates if i not in stated), False, notes)
    eligible = [i for i in candidates if measurable(lesions[i], readings[i], params)]
    eligible.sort(key=lambda i: (-readings[i].value, lesions[i].lesion_id))
    chosen: list[int] = []
    per_organ: dict[str, int] = {}
    for i in eligible:
        organ = organ_key(lesions[i])
        if len(chosen) < params.max_targets and per_organ.get(organ, 0) < params.max_targets_per_organ:
            chosen.append(i)
            per_organ[organ] = per_organ.get(organ, 0) + 1
    rest = tuple(i for i in candidates if i not in chosen)
    if not chosen:
        note = (f"no target stated by the reader and none measurable (>= {params.measurable_min_mm} mm long axis, "
                f"nodes >= {params.node_measurable_min_sa_mm} mm short axis)")
    else:
        note = (f"no target stated by the reader: {len(chosen)} target lesion(s) selected automatically "
                f"(largest measurable, <= {params.max_targets}, <= {params.max_targets_per_organ} per organ)")
    return Selection(tuple(chosen), rest, True, (note,))
