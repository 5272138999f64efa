"""PatientTimeline -> plain JSON-ready dicts (`oligo inspect --json`): time points, and the lesion x
time-point matrix with the match method of every link."""

from __future__ import annotations

from ..model import LesionObservation, PatientTimeline, TrackedLesion
from .keys import primary_size


def timeline_to_dict(timeline: PatientTimeline) -> dict:
    return {
        "patient_id": timeline.patient_id,
        "patient_issuer": timeline.patient_issuer,
        "time_points": [{"index": i, **tp.to_dict()} for i, tp in enumerate(timeline.time_points)],
        "lesions": [_lesion(lesion) for lesion in timeline.lesions],
        "matrix": {
            "columns": [tp.date.isoformat() if tp.date else None for tp in timeline.time_points],
            "rows": [{"lesion_id": lesion.lesion_id, "name": lesion.name,
                      "links": [o.match.value if o else None for o in lesion.observations]}
                     for lesion in timeline.lesions],
        },
        "conflicts": list(timeline.conflicts),
        "warnings": list(timeline.warnings),
    }


def _lesion(lesion: TrackedLesion) -> dict:
    return {
        "lesion_id": lesion.lesion_id,
        "name": lesion.name,
        "organ": lesion.anatomy.organ,
        "nodal": lesion.anatomy.nodal,
        "cns": lesion.anatomy.cns,
        "site": lesion.site.to_dict() if lesion.site else None,
        "laterality": lesion.laterality.to_dict() if lesion.laterality else None,
        "role": lesion.role.value if lesion.role else None,
        "new": lesion.is_new,
        "observations": [_observation(o) for o in lesion.observations],
    }


def _observation(observation: LesionObservation | None) -> dict | None:
    if observation is None:
        return None  # not assessed at this time point (absent), which is not "disappeared" (0 mm)
    size = primary_size(observation.finding)
    return {"size_mm": float(size) if size is not None else None, **observation.to_dict()}


def describe_timeline(timeline: PatientTimeline) -> str:
    """A few plain lines per patient: the time points (* = baseline) and each lesion's sizes and links."""
    patient = timeline.patient_id + (f" ({timeline.patient_issuer})" if timeline.patient_issuer else "")
    dates = " ".join((tp.date.isoformat() if tp.date else "?") + ("*" if tp.is_baseline else "")
                     for tp in timeline.time_points)
    lines = [f"timeline of {patient}: {len(timeline.time_points)} time point(s) {dates}"]
    for lesion in timeline.lesions:
        tags = ", ".join(t for t in (lesion.anatomy.organ, lesion.role.value if lesion.role else None,
                                     "new" if lesion.is_new else None) if t)
        cells = " | ".join(_cell(o) for o in lesion.observations)
        lines.append(f"  {lesion.lesion_id} {lesion.name}" + (f" [{tags}]" if tags else "") + f": {cells}")
    lines += [f"  conflict: {c}" for c in timeline.conflicts]
    lines += [f"  note: {w}" for w in timeline.warnings]
    return "\n".join(lines) + "\n"


def _cell(observation: LesionObservation | None) -> str:
    if observation is None:
        return "not assessed"
    size = primary_size(observation.finding)
    value = "no size" if size is None else f"{size.normalize():f} mm"
    return f"{value} ({observation.match.value})"
