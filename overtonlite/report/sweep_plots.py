"""The sweep's plots (matplotlib Agg, PNG bytes): metric-vs-x lines with CI bars, the similarity heatmap and the
intra-system similarity histograms. Called through :func:`overtonlite.report.plots.render_plot`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from overtonlite.report.plots import PALETTE, _figure, _png


def lines(
    panels: Sequence[dict[str, Any]],
    *,
    title: str,
    xlabel: str,
    log_x: bool = False,
    xticks: Sequence[tuple[float, str]] = (),
) -> bytes:
    """One panel per metric; in each, one line per group of points ``(x, mean, [lo, hi] | None)``."""
    fig, axes = _figure(width=min(4.0 * len(panels) + 1.0, 16.0), height=3.6, ncols=len(panels))
    names: list[str] = []
    for panel in panels:
        names += [ln["name"] for ln in panel["lines"] if ln["name"] not in names]
    for ax, panel in zip(axes, panels, strict=True):
        for line in panel["lines"]:
            pts = line["points"]
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            lo = [max(0.0, p[1] - p[2][0]) if p[2] else 0.0 for p in pts]
            hi = [max(0.0, p[2][1] - p[1]) if p[2] else 0.0 for p in pts]
            colour = PALETTE[names.index(line["name"]) % len(PALETTE)]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, color=colour, label=line["name"])
        if log_x:
            ax.set_xscale("log")
        if xticks:
            ax.set_xticks([x for x, _ in xticks], [label for _, label in xticks])
            ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_title(panel["label"], fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab, strict=True):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=8, frameon=False
        )
    fig.suptitle(title)
    return _png(fig)


def heatmap(systems: Sequence[str], matrix: Sequence[Sequence[float | None]], *, title: str) -> bytes:
    """The inter-system similarity matrix with its values written in the cells (empty cells are grey)."""
    import numpy as np

    k = len(systems)
    size = min(max(4.5, 0.75 * k + 2.5), 14.0)
    fig, (ax,) = _figure(width=size + 1.2, height=size)
    ax.grid(False)
    arr = np.array([[np.nan if v is None else float(v) for v in row] for row in matrix], dtype=float)
    finite = arr[np.isfinite(arr)]
    vmin = float(finite.min()) if finite.size else 0.0
    vmax = float(finite.max()) if finite.size else 1.0
    image = ax.imshow(np.ma.masked_invalid(arr), cmap="viridis", vmin=vmin, vmax=max(vmax, vmin + 1e-6))
    ax.set_xticks(range(k), systems, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), systems, fontsize=8)
    for i in range(k):
        for j in range(k):
            if np.isfinite(arr[i, j]):
                light = arr[i, j] < (vmin + vmax) / 2
                ax.text(
                    j,
                    i,
                    f"{arr[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if light else "black",
                )
    fig.colorbar(image, ax=ax, shrink=0.8, label="mean cosine")
    ax.set_title(title)
    return _png(fig)


def histograms(
    edges: Sequence[float], counts: dict[str, Sequence[int]], *, title: str, order: Sequence[str] = ()
) -> bytes:
    """One step line per system: the share of its within-prompt sample pairs in each cosine bin."""
    fig, (ax,) = _figure(width=7.6, height=3.8)
    names = [n for n in order if n in counts] + [n for n in counts if n not in order]
    for i, name in enumerate(names):
        c = list(counts[name] or [])
        total = sum(c)
        if not total:
            continue
        ax.stairs(
            [v / total for v in c], list(edges), label=name, color=PALETTE[i % len(PALETTE)], linewidth=1.6
        )
    ax.set_xlabel("cosine of two samples for the same prompt")
    ax.set_ylabel("share of pairs")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title(title)
    return _png(fig)


def render(kind: str, payload: dict[str, Any], *, title: str, order: Sequence[str] = ()) -> bytes:
    """Draw one sweep plot slot."""
    if kind == "sweep_lines":
        return lines(
            payload["panels"],
            title=title,
            xlabel=payload.get("xlabel", ""),
            log_x=payload.get("log_x", False),
            xticks=[tuple(t) for t in payload.get("xticks") or ()],
        )
    if kind == "sweep_heatmap":
        return heatmap(payload["systems"], payload["matrix"], title=title)
    if kind == "sweep_histograms":
        return histograms(payload["edges"], payload["counts"], title=title, order=order)
    raise ValueError(f"unknown plot kind {kind!r}")
