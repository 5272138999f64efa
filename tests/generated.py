"""Helpers for tests that build SRs with fixtures/generate.py and then bend them."""

from __future__ import annotations

import datetime as dt

from pydicom import Dataset

from fixtures import generate as g


def simple_patient(**lesion_overrides) -> g.Patient:
    """One patient, one baseline time point, one target liver lesion (overridable)."""
    spec = dict(name="Lesion 1", site="liver", long_axis=42.0, short_axis=30.0, role="target")
    spec.update(lesion_overrides)
    patient = g.Patient("TEST-1", issuer="TEST-ISSUER")
    patient.time_points = [g.TimePoint(dt.date(2024, 1, 10), baseline=True, lesions=[g.Lesion(**spec)])]
    return patient


def simple_sr(**lesion_overrides) -> Dataset:
    patient = simple_patient(**lesion_overrides)
    return g.make_sr(patient, patient.time_points[0], 1)


def walk(items):
    """Every content item under a sequence, depth first."""
    for item in items or ():
        yield item
        yield from walk(item.get("ContentSequence"))


def groups(ds: Dataset) -> list[Dataset]:
    return [i for i in walk(ds.ContentSequence)
            if i.get("ValueType") == "CONTAINER" and i.ConceptNameCodeSequence[0].CodeValue == "125007"]
