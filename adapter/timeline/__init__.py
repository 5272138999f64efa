"""Reports -> per-patient lesion timelines: time points by imaging study, lesion identity across reports.

    timelines = build_timelines(reports)            # list[PatientTimeline]
    result = build_timeline_result(reports)         # .timelines and .problems (reports left out, and why)
"""

from .build import TimelineProblem, TimelineResult, build_timeline_result, build_timelines
from .keys import normalise_label, primary_size
from .options import DEFAULT_OPTIONS, SameDayStudies, TimelineOptions
from .serialise import describe_timeline, timeline_to_dict

__all__ = [
    "DEFAULT_OPTIONS",
    "SameDayStudies",
    "TimelineOptions",
    "TimelineProblem",
    "TimelineResult",
    "build_timeline_result",
    "build_timelines",
    "describe_timeline",
    "normalise_label",
    "primary_size",
    "timeline_to_dict",
]
