"""Named presets (mappings/presets.yaml): the parameters every assessment states it used.

The numbers are data, not code: a preset is the D5 defaults plus its own overrides. `Parameters` is
immutable and hashable so an assessment can carry it and print it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import yaml

DEFAULT_PRESET = "consensus-5"
COUNT_UNITS = ("lesion", "site", "organ")
LESION_REFERENCES = ("nadir", "baseline", "previous")


@dataclass(frozen=True, slots=True)
class Parameters:
    """Every choice the engine makes; names follow CLINICAL.md §4.4. Sizes in mm, Decimal for exactness."""

    lesion_rel_increase_pct: Decimal
    lesion_abs_increase_mm: Decimal
    lesion_reference: str
    node_min_sa_for_progression_mm: Decimal
    count_new_lesions: bool
    new_node_min_sa_mm: Decimal
    equivocal_node_below_mm: Decimal
    count_nontarget_unequivocal_pd: bool
    reappearance_after_cr_counts: bool
    count_unit: str
    max_progressing: int
    max_progressing_organs: int | None
    cns_counted: bool
    require_prior_disease_control: bool
    prior_control_responses: tuple[str, ...]
    min_time_on_therapy_days: int
    measurable_min_mm: Decimal
    node_measurable_min_sa_mm: Decimal
    node_pathological_sa_mm: Decimal
    max_targets: int
    max_targets_per_organ: int
    pr_decrease_pct: Decimal
    pd_increase_pct: Decimal
    pd_abs_increase_mm: Decimal
    sticky_pr: bool
    sticky_pr_needs_confirmed_pr: bool
    too_small_to_measure_mm: Decimal
    sum_fragments: bool
    node_long_axis_fallback: bool
    confirmation: bool
    confirmation_min_days: int
    sd_min_days: int
    irecist_confirm_min_days: int
    irecist_confirm_max_days: int
    irecist_tolerance_days: int
    irecist_max_new_targets: int
    irecist_max_new_targets_per_organ: int

    def replace(self, **changes: Any) -> Parameters:
        return _coerce({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = int(value) if value == value.to_integral_value() else float(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    source: str
    parameters: Parameters


@cache
def _data() -> dict:
    text = resources.files("adapter.mappings").joinpath("presets.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def preset_names() -> tuple[str, ...]:
    return tuple(_data()["presets"])


def load_preset(name: str = DEFAULT_PRESET, **overrides: Any) -> Preset:
    """The named preset, optionally with some parameters changed (the change is visible in the output)."""
    data = _data()
    if name not in data["presets"]:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    spec = dict(data["presets"][name])
    source = spec.pop("source", "")
    return Preset(name, source, _coerce({**data["defaults"], **spec, **overrides}))


def _coerce(values: dict[str, Any]) -> Parameters:
    names = {f.name: f for f in dataclasses.fields(Parameters)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown assessment parameter(s): {', '.join(unknown)}")
    missing = sorted(set(names) - set(values))
    if missing:
        raise ValueError(f"preset lacks parameter(s): {', '.join(missing)}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        kind = names[key].type
        if "Decimal" in kind and value is not None:
            value = Decimal(str(value))
        elif kind.startswith("tuple"):
            value = tuple(value)
        out[key] = value
    params = Parameters(**out)
    if params.count_unit not in COUNT_UNITS:
        raise ValueError(f"count_unit must be one of {', '.join(COUNT_UNITS)}, not {params.count_unit!r}")
    if params.lesion_reference not in LESION_REFERENCES:
        raise ValueError(f"lesion_reference must be one of {', '.join(LESION_REFERENCES)}")
    return params
