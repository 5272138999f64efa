"""What identifies a finding across reports (DESIGN.md §5.4) and which size stands for it."""

from __future__ import annotations

import re
from decimal import Decimal

from ..model import Finding, IdentifierKind, MeasurementKind

_NOT_A_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_label(text: str | None) -> str | None:
    """'Lesion 1', 'lesion  1', 'LESION-1' -> 'lesion1': case, spaces and punctuation ignored."""
    if not text:
        return None
    key = _NOT_A_WORD.sub("", text.casefold())
    return key or None


def label_keys(finding: Finding, *, generic: bool = False) -> frozenset[tuple[str | None, str]]:
    """(organ group, normalised name) pairs from the label and a trustworthy Tracking Identifier.

    Tool tags and hashes are never names; generic producer names only when asked.
    """
    texts = [finding.label]
    trusted = {IdentifierKind.HUMAN} | ({IdentifierKind.GENERIC} if generic else set())
    if finding.tracking_identifier and finding.identifier_kind in trusted:
        texts.append(finding.tracking_identifier)
    organ = finding.anatomy.organ
    return frozenset((organ, key) for key in map(normalise_label, texts) if key)


def human_name(finding: Finding) -> str | None:
    """The name a reader gave the lesion, if any (never a tool tag or a hash)."""
    if finding.label:
        return finding.label
    if finding.tracking_identifier and finding.identifier_kind is IdentifierKind.HUMAN:
        return finding.tracking_identifier
    return None


def primary_size(finding: Finding) -> Decimal | None:
    """The RECIST size in mm: short axis for nodes, long axis otherwise (then diameter, then length)."""
    order = [MeasurementKind.LONG_AXIS, MeasurementKind.DIAMETER, MeasurementKind.LENGTH]
    if finding.anatomy.nodal:
        order.insert(0, MeasurementKind.SHORT_AXIS)
    for kind in order:
        for m in finding.measurements:
            if m.kind is kind and m.usable_size and m.unit == "mm":
                return m.value
    return None
