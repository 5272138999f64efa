"""The spider plot: each lesion's % change from its own first measurement over time.

Progressing lesions (at the reported scan) are drawn thick, each with its own marker and a direct
label, so the plot reads in black-and-white print and without colour vision (Okabe-Ito colours are a
bonus, never the only cue); other lesions are thin grey lines; the RECIST sum of diameters is a bold
black line; +20 % and −30 % guide lines mark the RECIST thresholds.

Rendering is in memory with matplotlib's Agg canvas (no pyplot, no display, no file). Fonts are
fixed to the DejaVu Sans that ships with matplotlib and the PNG carries no Software/date metadata,
so the same assessment gives the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal

from ..assess.progression import number
from ..assess.result import PatientAssessment

# Okabe & Ito (2008) colour-blind safe palette, strongest first; markers differ as well.
PROGRESSING_COLOURS = ("#D55E00", "#0072B2", "#CC79A7", "#E69F00", "#009E73", "#56B4E9")
PROGRESSING_MARKERS = ("o", "s", "^", "D", "v", "P")
OTHER_COLOUR = "#8C8C8C"
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.unicode_minus": True,
    "path.simplify": False,
}
GUIDES = ((Decimal(20), "+20 %", (0, (6, 3))), (Decimal(-30), "−30 %", (0, (2, 2))))


@dataclass(frozen=True, slots=True)
class Series:
    """One line of the plot: points as (weeks since the first scan, % change)."""

    name: str
    points: tuple[tuple[float, float], ...]
    progressing: bool = False
    new: bool = False
    note: str = ""  # what made it progress, in mm (label text)


def _weeks(assessment: PatientAssessment) -> list[float]:
    dates = [tp.date for tp in assessment.timepoints]
    start = next((d for d in dates if d is not None), None)
    if start is None or any(d is None for d in dates):
        return [float(i) * 8 for i in range(len(dates))]  # no dates: evenly spaced
    return [round((d - start).days / 7, 2) for d in dates]


def spider_series(assessment: PatientAssessment, upto: int | None = None) -> tuple[list[Series], Series | None,
                                                                                    list[str]]:
    """Lesion series, the sum-of-diameters series and the names of lesions that have no number."""
    tps = assessment.timepoints[: (upto + 1) if upto is not None else None]
    xs = _weeks(assessment)
    reported = tps[-1] if tps else None
    progressing = {row.lesion_id: _why(row) for row in reported.progressing} if reported else {}
    values: dict[str, list[tuple[float, Decimal]]] = {}
    names: dict[str, str] = {}
    new: set[str] = set()
    for x, tp in zip(xs, tps):
        for row in tp.lesions:
            names.setdefault(row.lesion_id, row.name)
            if row.lesion_class == "new":
                new.add(row.lesion_id)
            if row.value_mm is not None and not row.locally_treated:
                values.setdefault(row.lesion_id, []).append((x, row.value_mm))
    series, unplotted = [], []
    for lesion_id, name in names.items():
        points = values.get(lesion_id, [])
        if not points or points[0][1] == 0:
            unplotted.append(name)
            continue
        first = points[0][1]
        pct = tuple((x, float((v - first) * 100 / first)) for x, v in points)
        series.append(Series(name, pct, lesion_id in progressing, lesion_id in new, progressing.get(lesion_id, "")))
    sums: list[tuple[float, float]] = []
    for x, tp in zip(xs, tps):
        if tp.recist is None and tp.reference_baseline and not sums:
            sums.append((x, 0.0))
        elif tp.recist is not None and tp.recist.sum_mm is not None and tp.recist.baseline_mm:
            base = tp.recist.baseline_mm
            sums.append((x, float((tp.recist.sum_mm - base) * 100 / base)))
    total = Series("Sum of diameters (RECIST)", tuple(sums)) if len(sums) > 0 else None
    return series, total, unplotted


def _why(row) -> str:
    if row.reason == "size" and row.from_mm is not None and row.value_mm is not None:
        return f"{number(row.from_mm)} → {number(row.value_mm)} mm"
    if row.reason == "new":
        return "new" + (f", {number(row.value_mm)} mm" if row.value_mm is not None else "")
    return {"non-target": "non-target PD", "reappearance": "reappeared"}.get(row.reason or "", "")


def _spread(targets: list[float], gap: float, top: float) -> list[float]:
    """Label heights at least `gap` apart, as close to their lines as possible, none above `top`."""
    order = sorted(range(len(targets)), key=lambda i: targets[i])
    placed = [0.0] * len(targets)
    last = None
    for i in order:
        y = targets[i] if last is None else max(targets[i], last + gap)
        placed[i] = last = y
    ceiling = top
    for i in reversed(order):
        placed[i] = min(placed[i], ceiling)
        ceiling = placed[i] - gap
    return placed


def spider_png(assessment: PatientAssessment, upto: int | None = None, *, dpi: int = 110) -> bytes:
    """The spider plot of the assessment (up to time point `upto`, default all) as PNG bytes."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series, total, unplotted = spider_series(assessment, upto)
    tps = assessment.timepoints[: (upto + 1) if upto is not None else None]
    xs = _weeks(assessment)[: len(tps)]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(8.0, 5.2), dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.09, right=0.79, top=0.88, bottom=0.2)
        ax.axhline(0, color="#BBBBBB", linewidth=0.8, zorder=1)
        for value, label, dashes in GUIDES:
            ax.axhline(float(value), color="#444444", linewidth=1.0, linestyle=dashes, zorder=1)
        for s in series:
            if s.progressing:
                continue
            px, py = zip(*s.points)
            ax.plot(px, py, color=OTHER_COLOUR, linewidth=1.0, marker="o", markersize=3.5,
                    markerfacecolor="white", zorder=2)
        if total is not None:
            px, py = zip(*total.points)
            ax.plot(px, py, color="black", linewidth=3.2, marker="s", markersize=6, zorder=4,
                    label=total.name)
        ends = []
        for k, s in enumerate(s for s in series if s.progressing):
            px, py = zip(*s.points)
            colour = PROGRESSING_COLOURS[k % len(PROGRESSING_COLOURS)]
            marker = PROGRESSING_MARKERS[k % len(PROGRESSING_MARKERS)]
            ax.plot(px, py, color=colour, linewidth=2.6, marker=marker, markersize=7, zorder=5,
                    markeredgecolor="black", markeredgewidth=0.6, label=f"{s.name}: progressing")
            ends.append((px[-1], py[-1], f"{s.name}\n{s.note}" if s.note else s.name, colour))
        all_y = [y for s in series for _, y in s.points] + ([y for _, y in total.points] if total else [])
        low = min(all_y + [-40.0]) - 8
        high = max(all_y + [30.0]) + 10
        ax.set_ylim(low, high)
        x_max = max(xs) if xs else 1.0
        ax.set_xlim(min(xs + [0.0]) - 1, x_max + max(1.0, x_max * 0.04))
        for value, label, _ in GUIDES:
            ax.annotate(label, xy=(0.0, float(value)), xycoords=("axes fraction", "data"), xytext=(3, 2),
                        textcoords="offset points", va="bottom", fontsize=8, color="#444444")
        gap = (high - low) * 0.085
        placed = _spread([y for _, y, _, _ in ends], gap, high - gap / 2)
        for (x, y, text, colour), y_label in zip(ends, placed):
            ax.annotate(text, xy=(x, y), xytext=(x_max + max(1.0, x_max * 0.04), y_label),
                        xycoords="data", textcoords="data", annotation_clip=False, va="center",
                        fontsize=8.5, fontweight="bold", color="black",
                        arrowprops=dict(arrowstyle="-", color=colour, linewidth=1.0))
        ax.set_xticks(xs)
        ax.set_xticklabels([f"wk {x:.0f}\n{tp.date.isoformat() if tp.date else '(no date)'}" if x == int(x) else
                            f"wk {x:.1f}\n{tp.date.isoformat() if tp.date else '(no date)'}"
                            for x, tp in zip(xs, tps)], fontsize=8)
        ax.set_ylabel("Change from the lesion's own first measurement (%)")
        ax.grid(axis="y", color="#EEEEEE", linewidth=0.6, zorder=0)
        reported = tps[-1] if tps else None
        state = reported.state if reported else "no scan"
        recist = f", RECIST 1.1 {reported.recist.overall}" if reported and reported.recist else ""
        ax.set_title(f"Patient {assessment.patient_id}: lesion size over time\n"
                     f"latest scan: {state}{recist} (preset {assessment.preset})", loc="left")
        handles, labels = ax.get_legend_handles_labels()
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color=OTHER_COLOUR, linewidth=1.0, marker="o", markersize=3.5,
                              markerfacecolor="white"))
        labels.append("other lesions")
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=3, frameon=False,
                  fontsize=8)
        if unplotted:
            fig.text(0.09, 0.015, "Not plotted (no measurement): " + ", ".join(unplotted), fontsize=7.5,
                     color="#444444")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
