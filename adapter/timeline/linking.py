"""Lesion identity across imaging studies, in the order of issue 4 / DESIGN.md §5.4.

(1) shared Tracking UID, (2) shared mCODE Tumor / BodyStructure identifier, (3) the same normalised
name in the same organ group, (4) for what is still unmatched: same organ and laterality, nearest size
within a tolerance, only where the pairing is unique (`probable`). A finding that fits two lesions, or
two findings that claim one lesion, is a conflict: reported, never resolved by guessing.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from ..model import Finding, LesionObservation, MatchMethod, MeasurementKind, Provenance
from .keys import label_keys, primary_size
from .options import TimelineOptions
from .scans import StudyColumn

KEYED_RULES = (MatchMethod.TRACKING_UID, MatchMethod.BODY_STRUCTURE, MatchMethod.LABEL)


@dataclass(frozen=True, slots=True)
class _Item:
    """A lesion finding of one study, ready to be linked."""

    finding: Finding
    source_id: str
    keys: dict  # MatchMethod -> frozenset of keys

    @property
    def named(self) -> bool:
        return bool(self.keys[MatchMethod.LABEL])

    def describe(self) -> str:
        return f"'{self.finding.name}' (report {self.source_id})"


@dataclass
class Track:
    """A lesion being assembled: the identities it has been seen under and its cells by column."""

    number: int
    first_column: int
    keys: dict = field(default_factory=lambda: {rule: set() for rule in KEYED_RULES})
    cells: dict[int, LesionObservation] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)  # columns where two findings claimed this lesion

    def absorb(self, item: _Item) -> None:
        for rule in KEYED_RULES:
            self.keys[rule] |= item.keys[rule]

    def label(self) -> str:
        first = self.cells.get(self.first_column)
        return f"'{first.finding.name}'" if first else f"lesion {self.number}"

    def latest_size(self, before: int) -> Decimal | None:
        for column in sorted((c for c in self.cells if c < before), reverse=True):
            size = primary_size(self.cells[column].finding)
            if size is not None:
                return size
        return None

    def first_finding(self) -> Finding:
        return self.cells[min(self.cells)].finding


@dataclass
class Linker:
    options: TimelineOptions
    columns: list[StudyColumn]
    tracks: list[Track] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def run(self) -> list[Track]:
        for index, column in enumerate(self.columns):
            self._link_column(index, column)
        return self.tracks

    # --- one study ---------------------------------------------------------------------------------

    def _link_column(self, index: int, column: StudyColumn) -> None:
        earlier = list(self.tracks)
        pending = self._items(column)
        for rule in KEYED_RULES:
            still = []
            for item in pending:
                hits = [t for t in earlier if item.keys[rule] & t.keys[rule]]
                if not hits:
                    still.append(item)
                elif len(hits) > 1:
                    self.conflicts.append(
                        f"{column.date}: {item.describe()} matches {len(hits)} lesions by {rule.value} ("
                        + ", ".join(t.label() for t in hits) + "); it was not linked")
                else:
                    self._place(hits[0], index, item, rule, column)
            pending = still
        pending = self._probable(index, column, earlier, pending)
        created: list[Track] = []
        for item in pending:
            hits = [t for t in created if any(item.keys[r] & t.keys[r] for r in KEYED_RULES)]
            if len(hits) == 1:
                self._place(hits[0], index, item, MatchMethod.FIRST_SEEN, column)
                continue
            if len(hits) > 1:
                self.conflicts.append(f"{column.date}: {item.describe()} matches {len(hits)} lesions first seen "
                                      "in this study; it was not linked")
                continue
            track = Track(number=len(self.tracks) + 1, first_column=index)
            self.tracks.append(track)
            created.append(track)
            self._place(track, index, item, MatchMethod.FIRST_SEEN, column)

    def _items(self, column: StudyColumn) -> list[_Item]:
        items: list[_Item] = []
        skipped = 0
        for report in column.reports:
            lesions = [f for f in report.findings if f.is_lesion]
            skipped += len(report.findings) - len(lesions)
            for finding in self._with_fragments_joined(report.source_id, lesions, column):
                items.append(_Item(finding, report.source_id, {
                    MatchMethod.TRACKING_UID: frozenset({finding.tracking_uid} if finding.tracking_uid else ()),
                    MatchMethod.BODY_STRUCTURE: frozenset(finding.body_structure_ids),
                    MatchMethod.LABEL: label_keys(finding, generic=self.options.match_generic_identifiers),
                }))
        if skipped:
            self.warnings.append(f"{column.date}: {skipped} finding(s) that are not tumour (an anatomical structure "
                                 "or a non-lesion) were left out of the timeline")
        return items

    def _with_fragments_joined(self, source_id: str, lesions: list[Finding], column: StudyColumn) -> list[Finding]:
        """Groups of one report that share a Tracking UID are fragments of one lesion (CLINICAL.md §1.3):
        their long axes are summed. Fragments of a node, or without a size, cannot be summed: conflict."""
        by_uid: dict[str, list[Finding]] = defaultdict(list)
        for finding in lesions:
            if finding.tracking_uid:
                by_uid[finding.tracking_uid].append(finding)
        out: list[Finding] = []
        done: set[str] = set()
        for finding in lesions:
            uid = finding.tracking_uid
            parts = by_uid.get(uid, [finding]) if uid else [finding]
            if len(parts) == 1:
                out.append(finding)
                continue
            if uid in done:
                continue
            done.add(uid)
            joined = _joined_fragments(parts) if self.options.sum_fragments else None
            if joined is None:
                self.conflicts.append(
                    f"{column.date}: report {source_id} has {len(parts)} groups with the Tracking UID of "
                    f"'{finding.name}' that cannot be summed as fragments; none of them was used")
            else:
                self.warnings.append(f"{column.date}: {len(parts)} fragments of '{finding.name}' in report "
                                     f"{source_id} were summed ({primary_size(joined)} mm)")
                out.append(joined)
        return out

    def _probable(self, index: int, column: StudyColumn, earlier: list[Track], pending: list[_Item]) -> list[_Item]:
        """Rule (4): unnamed findings left over, paired by organ, laterality and size, only when unique."""
        candidates: dict[int, list[Track]] = {}
        claimed: dict[int, list[int]] = defaultdict(list)
        for position, item in enumerate(pending):
            size = primary_size(item.finding)
            if (item.named and self.options.probable_only_for_unnamed) or size is None \
                    or item.finding.anatomy.organ is None:
                continue
            fits = [t for t in earlier if self._fits(t, index, item.finding, size)]
            if fits:
                candidates[position] = fits
                for track in fits:
                    claimed[track.number].append(position)
        rest = []
        for position, item in enumerate(pending):
            fits = candidates.get(position)
            if fits and len(fits) == 1 and len(claimed[fits[0].number]) == 1:
                self._place(fits[0], index, item, MatchMethod.PROBABLE, column)
                continue
            if fits:
                rivals = {p for t in fits for p in claimed[t.number]} - {position}
                self.conflicts.append(
                    f"{column.date}: {item.describe()} could be " + " or ".join(t.label() for t in fits)
                    + (f", which {len(rivals)} other finding(s) could also be" if rivals else "")
                    + "; ambiguous pairing left unmatched, counted as first seen here")
            rest.append(item)
        return rest

    def _fits(self, track: Track, index: int, finding: Finding, size: Decimal) -> bool:
        if not track.cells or index in track.cells or index in track.blocked:
            return False
        first = track.first_finding()
        if first.anatomy.organ != finding.anatomy.organ or first.laterality != finding.laterality:
            return False
        previous = track.latest_size(index)
        if previous is None:
            return False
        allowed = max(self.options.probable_absolute_tolerance_mm,
                      self.options.probable_relative_tolerance * max(previous, size))
        return abs(previous - size) <= allowed

    def _place(self, track: Track, index: int, item: _Item, method: MatchMethod, column: StudyColumn) -> None:
        if index in track.blocked:
            self.conflicts.append(f"{column.date}: {item.describe()} also claims {track.label()}; not used")
            return
        existing = track.cells.get(index)
        if existing is None:
            track.cells[index] = LesionObservation(item.finding, item.source_id, method)
            track.absorb(item)
        elif existing.source_id != item.source_id and _same_numbers(existing.finding, item.finding):
            self.warnings.append(f"{column.date}: {track.label()} is measured identically in reports "
                                 f"{existing.source_id} and {item.source_id}; counted once")
            track.absorb(item)
        else:
            self.conflicts.append(
                f"{column.date}: two findings claim {track.label()}: '{existing.finding.name}' (report "
                f"{existing.source_id}) and {item.describe()}; the lesion is left not assessed there")
            del track.cells[index]
            track.blocked.add(index)


def _same_numbers(a: Finding, b: Finding) -> bool:
    """Two reports of one study (e.g. an SR and its FHIR rendering) saying the same about a lesion."""
    size_a, size_b = primary_size(a), primary_size(b)
    if size_a is None and size_b is None:
        return a.response == b.response
    return size_a == size_b


def _joined_fragments(parts: list[Finding]) -> Finding | None:
    """One finding whose long axis is the sum of the fragments' long axes (non-nodal lesions only)."""
    if any(p.anatomy.nodal for p in parts):
        return None
    axes = [next((m for m in p.measurements if m.kind is MeasurementKind.LONG_AXIS and m.usable_size), None)
            for p in parts]
    if any(a is None for a in axes):
        return None
    total = sum((a.value for a in axes), Decimal(0))
    paths = "+".join(p.provenance.path or "?" for p in parts)
    measurement = dataclasses.replace(
        axes[0], value=total, original_value=" + ".join(a.original_value for a in axes),
        provenance=Provenance(path=paths))
    return dataclasses.replace(parts[0], measurements=(measurement,),
                               provenance=dataclasses.replace(parts[0].provenance, path=paths))
