"""Report plots drawn with matplotlib's Agg canvas and returned as PNG bytes.

Each public function takes the payload of a :class:`~overtonlite.report.markdown.PlotSlot` of the same kind.
``render_plot`` dispatches on the slot's kind. matplotlib is imported lazily, and pyplot is never used, so no
global figure state or GUI backend is involved.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from typing import Any

from overtonlite.errors import missing_dependency

STANCE_COLOURS = {"yes": "#2e7d32", "no": "#c62828", "both": "#5e35b1", "other": "#9e9e9e"}
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
Series = Sequence[tuple[str, float, Any]]  # (system, mean, (lo, hi) | None)


def _figure(width: float = 6.4, height: float = 3.4, ncols: int = 1) -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise missing_dependency("matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    return fig, axes


def _width(n_bars: int) -> float:
    """Figure width in inches that keeps bar labels readable for many systems."""
    return min(max(6.4, 0.6 * n_bars + 2.0), 14.0)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def colour(system: str, order: Sequence[str]) -> str:
    """A stable colour per system, by its position in the report's system order."""
    index = list(order).index(system) if system in order else zlib.crc32(system.encode("utf-8"))
    return PALETTE[index % len(PALETTE)]


def _bar_axes(ax: Any, series: Series, order: Sequence[str], ylabel: str) -> None:
    names = [s for s, _, _ in series]
    means = [m for _, m, _ in series]
    lower = [max(0.0, m - ci[0]) if ci else 0.0 for _, m, ci in series]
    upper = [max(0.0, ci[1] - m) if ci else 0.0 for _, m, ci in series]
    ax.bar(
        range(len(names)),
        means,
        yerr=[lower, upper],
        capsize=4,
        color=[colour(s, order) for s in names],
        error_kw={"elinewidth": 1.2, "ecolor": "#333333"},
    )
    ax.set_xticks(
        range(len(names)),
        names,
        rotation=20 if len(names) > 3 else 0,
        ha="right" if len(names) > 3 else "center",
        fontsize=8,
    )
    ax.set_ylabel(ylabel)


def bars(series: Series, *, title: str, ylabel: str, order: Sequence[str] = ()) -> bytes:
    """Per-system bars with 95% CI error bars."""
    fig, (ax,) = _figure(width=_width(len(series)))
    _bar_axes(ax, series, order or [s for s, _, _ in series], ylabel)
    ax.set_title(title)
    return _png(fig)


def similarity(panels: Sequence[dict[str, Any]], *, title: str, order: Sequence[str] = ()) -> bytes:
    """One bar panel per similarity measure, each with the aligned self-baseline as a dashed line."""
    per_panel = max(3.6, 0.45 * max(len(p["series"]) for p in panels) + 1.2)
    fig, axes = _figure(width=min(max(6.4, per_panel * len(panels)), 16.0), ncols=len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        series = panel["series"]
        _bar_axes(ax, series, order or [s for s, _, _ in series], panel["label"])
        if panel.get("baseline") is not None:
            ax.axhline(
                panel["baseline"],
                color="#222222",
                linestyle="--",
                linewidth=1.2,
                label="aligned self-baseline",
            )
        ax.set_title(panel["label"], fontsize=10)
    handles, labels = next(
        (found for found in (ax.get_legend_handles_labels() for ax in axes) if found[0]), ([], [])
    )
    if handles:
        fig.legend(handles, labels, loc="outside upper right", fontsize=8, frameon=False)
    fig.suptitle(title)
    return _png(fig)


def stance(counts: dict[str, dict[str, int]], *, title: str, order: Sequence[str] = ()) -> bytes:
    """Stacked bars: the share of each stance label among a system's samples."""
    fig, (ax,) = _figure(width=_width(len(counts)) + 0.8)
    names = list(counts)
    labels: list[str] = []
    for per_system in counts.values():
        labels += [k for k in per_system if k not in labels]
    bottom = [0.0] * len(names)
    for i, label in enumerate(labels):
        shares = []
        for name in names:
            total = sum(counts[name].values())
            shares.append(counts[name].get(label, 0) / total if total else 0.0)
        ax.bar(
            range(len(names)),
            shares,
            bottom=bottom,
            label=label,
            color=STANCE_COLOURS.get(label, PALETTE[i % len(PALETTE)]),
        )
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set_xticks(range(len(names)), names, fontsize=8, rotation=20 if len(names) > 3 else 0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of samples")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title)
    return _png(fig)


def coverage(values: dict[str, list[float]], *, title: str, order: Sequence[str] = ()) -> bytes:
    """Histogram of per-sample coverage values, one colour per system."""
    fig, (ax,) = _figure()
    names = list(values)
    data = [values[n] for n in names]
    lo = min(0.0, *(min(v) for v in data))
    hi = max(1.0, *(max(v) for v in data))
    ax.hist(data, bins=10, range=(lo, hi), label=names, color=[colour(n, order or names) for n in names])
    ax.set_xlabel("coverage (share of the sample's content found in the aligned answer)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _png(fig)


def render_plot(kind: str, payload: dict[str, Any], *, title: str, order: Sequence[str] = ()) -> bytes:
    """Draw one plot slot and return its PNG bytes."""
    if kind == "bars":
        return bars(payload["series"], title=title, ylabel=payload.get("ylabel", ""), order=order)
    if kind == "similarity":
        return similarity(payload["panels"], title=title, order=order)
    if kind == "stance":
        return stance(payload["counts"], title=title, order=order)
    if kind == "coverage":
        return coverage(payload["values"], title=title, order=order)
    if kind.startswith("sweep_"):
        from overtonlite.report.sweep_plots import render

        return render(kind, payload, title=title, order=order)
    raise ValueError(f"unknown plot kind {kind!r}")
