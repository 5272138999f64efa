"""The choices the timeline makes where CLINICAL.md and DESIGN.md are silent, as named parameters."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum


class SameDayStudies(str, Enum):
    """What to do with two imaging studies of one patient on one date."""

    SEPARATE = "separate"  # always two time points (ordered by study time)
    MERGE_COMPLEMENTARY = "merge-complementary"  # one time point when no lesion is measured in both


@dataclass(frozen=True, slots=True)
class TimelineOptions:
    # rule (4), "probable": a size pair is close when |a - b| <= max(abs, rel * max(a, b))
    probable_relative_tolerance: Decimal = Decimal("0.2")
    probable_absolute_tolerance_mm: Decimal = Decimal("2")
    # rule (4) only for findings without any name: a finding the reader named differently is a new lesion
    probable_only_for_unnamed: bool = True
    # rule (3): generic producer names ("Measurements group 1") are weak across reports
    match_generic_identifiers: bool = False
    # re-save rule: two reports without an observer name count as the same observer
    unknown_observer_is_same: bool = False
    same_day_studies: SameDayStudies = SameDayStudies.MERGE_COMPLEMENTARY
    # a report without a Study UID (e.g. FHIR without an ImagingStudy) joins the patient's only study of
    # its imaging date; with none or several it is a time point of its own
    attach_to_only_study_of_the_day: bool = True
    # CLINICAL.md §1.3: groups of one report carrying one lesion's Tracking UID are its fragments
    sum_fragments: bool = True


DEFAULT_OPTIONS = TimelineOptions()
