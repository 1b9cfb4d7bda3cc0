"""CMC curves and metric comparisons (matplotlib, Agg-safe)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["plot_cmc", "plot_metrics", "plot_crop_sweep"]


def _cmc_items(curves) -> list[tuple[str, np.ndarray]]:
    if isinstance(curves, Mapping):
        return [(str(k), np.asarray(v, dtype=float)) for k, v in curves.items()]
    items = []
    for r in curves:  # EvalResult-like
        label = f"{r.method} / {r.protocol}" + (f" [{r.setting}]" if getattr(r, "setting", "") else "")
        items.append((label, np.asarray(r.cmc, dtype=float)))
    return items


def plot_cmc(curves, max_rank: int = 20, ax=None, title: str | None = "CMC", percent: bool = True):
    """CMC curves: ``{label: cmc}`` or a list of :class:`reidlib.eval.results.EvalResult`.

    Returns the figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    items = _cmc_items(curves)
    if not items:
        raise ValueError("plot_cmc: no curves given")
    s = 100.0 if percent else 1.0
    for label, cmc in items:
        n = min(max_rank, len(cmc))
        ax.plot(np.arange(1, n + 1), s * cmc[:n], marker="o", ms=3, label=label)
    ax.set_xlabel("rank k")
    ax.set_ylabel("Rank-k accuracy" + (" (%)" if percent else ""))
    ax.set_xlim(0.5, max_rank + 0.5)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_metrics(results, metrics: Sequence[str] = ("R-1", "R-3", "mAP"), label_fn=None, ax=None,
                 title: str | None = None):
    """Grouped bars: one group per result, one bar per metric (percent)."""
    import matplotlib.pyplot as plt

    results = list(results)
    if not results:
        raise ValueError("plot_metrics: no results given")
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(results)), 3.5))
    else:
        fig = ax.figure
    label_fn = label_fn or (lambda r: r.protocol + (f"\n{r.setting}" if r.setting else ""))
    x = np.arange(len(results))
    w = 0.8 / len(metrics)
    for i, m in enumerate(metrics):
        vals = [100 * r.metrics[m] for r in results]
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * w, vals, w, label=m)
        ax.bar_label(bars, fmt="%.0f", fontsize=6)
    ax.set_xticks(x, [label_fn(r) for r in results], fontsize=7)
    ax.set_ylabel("%")
    ax.set_ylim(0, 119)
    ax.legend(fontsize=7, ncol=len(metrics), loc="upper center")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_crop_sweep(results, metrics: Sequence[str] = ("R-1", "mAP"), ax=None, title: str | None = None):
    """Metric vs crop ratio gamma for crop-sweep results (``params["gamma"]``), one line per method x metric."""
    import matplotlib.pyplot as plt

    rs = [r for r in results if "gamma" in r.params]
    if not rs:
        raise ValueError("plot_crop_sweep: no crop-sweep results (with params['gamma']) given")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.5))
    else:
        fig = ax.figure
    for method in dict.fromkeys(r.method for r in rs):
        mine = sorted((r for r in rs if r.method == method), key=lambda r: r.params["gamma"])
        g = [r.params["gamma"] for r in mine]
        for m in metrics:
            ax.plot(g, [100 * r.metrics[m] for r in mine], marker="o", label=f"{method} {m}")
    ax.set_xlabel("area ratio gamma of the query crop")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
