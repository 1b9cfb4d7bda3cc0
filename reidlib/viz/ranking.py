"""Ranked-list figures: the query, then its top-k gallery images framed green (true match)
or red (wrong identity), with their distances -- and a browser over the queries.

Rankings here follow the evaluation's rules: gallery images with the query's pid and
camera are left out (``same_camera_rule=True``), ties go by gallery index.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from reidlib.viz.widgets import show_interactive

__all__ = ["ranked_list", "plot_ranking", "image_reader", "show_ranking", "ranking_browser"]

MATCH, MISMATCH, QUERY = "#2ca02c", "#d62728", "#1f77b4"


def ranked_list(dist_row, q_pid: int, q_camid: int, g_pids, g_camids, k: int = 10,
                same_camera_rule: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` gallery indices of one query, their distances and match flags.

    Args:
        dist_row: ``(G,)`` distances of the query.
        same_camera_rule: drop gallery images with the query's pid and camera (Market rule).
    """
    d = torch.as_tensor(np.asarray(dist_row) if not isinstance(dist_row, torch.Tensor) else dist_row).detach().cpu().double()
    g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
    if d.ndim != 1 or len(d) != len(g_pids) or len(g_pids) != len(g_camids):
        raise ValueError(f"dist_row has shape {tuple(d.shape)} for {len(g_pids)} gallery pids and {len(g_camids)} camids; "
                         f"expected (G,) with G equal to both")
    order = torch.sort(d, stable=True).indices.numpy()
    if same_camera_rule:
        order = order[~((g_pids[order] == q_pid) & (g_camids[order] == q_camid))]
    order = order[:k]
    return order, d.numpy()[order], g_pids[order] == q_pid


def _frame(ax, color: str, width: float = 4.0) -> None:
    for s in ax.spines.values():
        s.set_visible(True)
        s.set_edgecolor(color)
        s.set_linewidth(width)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_ranking(query_image: np.ndarray, gallery_images: Sequence[np.ndarray], distances: Sequence[float],
                 matches: Sequence[bool], query_title: str = "query", gallery_titles: Sequence[str] | None = None,
                 fig=None, figsize_per_image: tuple[float, float] = (1.1, 2.4)):
    """One row: the query (blue frame), then the ranked gallery (green = same identity, red = other).

    Images are ``(H, W, 3)`` uint8 arrays; each gallery title shows the rank and distance.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    k = len(gallery_images)
    if not (len(distances) == len(matches) == k):
        raise ValueError(f"plot_ranking: {k} gallery images, {len(distances)} distances, {len(matches)} match flags; expected equal")
    if fig is None:
        fig = plt.figure(figsize=(figsize_per_image[0] * (k + 1.3), figsize_per_image[1]))
    axes = fig.subplots(1, k + 1, gridspec_kw={"width_ratios": [1.3] + [1] * k}) if k else [fig.subplots(1, 1)]
    axes = np.atleast_1d(axes)
    axes[0].imshow(query_image)
    axes[0].set_title(query_title, fontsize=8)
    _frame(axes[0], QUERY)
    for r, (ax, img, dist, m) in enumerate(zip(axes[1:], gallery_images, distances, matches)):
        ax.imshow(img)
        t = f"#{r + 1}\n{dist:.3g}"
        if gallery_titles is not None:
            t += f"\n{gallery_titles[r]}"
        ax.set_title(t, fontsize=7, color=MATCH if m else MISMATCH)
        _frame(ax, MATCH if m else MISMATCH)
    fig.tight_layout()
    return fig


def image_reader(dataset, split: str, crop=None) -> Callable[[int], np.ndarray]:
    """``i -> image`` of a dataset split, with the evaluation's deterministic crop when given
    (a :class:`reidlib.eval.protocols.CropSetting`)."""
    recs = getattr(dataset, split)
    if crop is None:
        return lambda i: dataset.read_image(recs[int(i)].path)
    from reidlib.data.partial import partial_crop

    spec = crop.spec()
    return lambda i: partial_crop(dataset.read_image(recs[int(i)].path), None, spec, crop.rng(int(i))).image


def show_ranking(distmat, q_index: int, q_pids, g_pids, q_camids, g_camids, read_query: Callable[[int], np.ndarray],
                 read_gallery: Callable[[int], np.ndarray], k: int = 8, same_camera_rule: bool = True, fig=None):
    """The ranked-list figure of query ``q_index`` of a distance matrix."""
    Q = distmat.shape[0]
    if not 0 <= q_index < Q:
        raise IndexError(f"q_index={q_index} is outside 0..{Q - 1}")
    g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
    qp, qc = int(np.asarray(q_pids)[q_index]), int(np.asarray(q_camids)[q_index])
    idx, dist, match = ranked_list(distmat[q_index], qp, qc, g_pids, g_camids, k, same_camera_rule)
    titles = [f"id {g_pids[j]} c{g_camids[j]}" for j in idx]
    return plot_ranking(read_query(q_index), [read_gallery(j) for j in idx], dist, match,
                        query_title=f"query {q_index}\nid {qp} c{qc}", gallery_titles=titles, fig=fig)


def ranking_browser(distmat, q_pids, g_pids, q_camids, g_camids, read_query, read_gallery, k: int = 8,
                    same_camera_rule: bool = True, default: int = 0):
    """A query slider over ranked lists, with the static figure of query ``default`` shown first
    (:func:`reidlib.viz.widgets.show_interactive`).  Returns the widget (or None)."""

    def static():
        return show_ranking(distmat, default, q_pids, g_pids, q_camids, g_camids, read_query, read_gallery, k,
                            same_camera_rule)

    def factory():
        import ipywidgets as W
        import matplotlib.pyplot as plt
        from IPython.display import display

        out = W.Output()
        slider = W.IntSlider(value=default, min=0, max=distmat.shape[0] - 1, description="query")

        def draw(change=None):
            with out:
                out.clear_output(wait=True)
                fig = show_ranking(distmat, slider.value, q_pids, g_pids, q_camids, g_camids, read_query,
                                   read_gallery, k, same_camera_rule)
                display(fig)
                plt.close(fig)

        slider.observe(draw, names="value")
        # no initial draw: the static figure above shows the default state (and drawing into an
        # Output widget while a notebook is executed headless can stall nbclient)
        return W.VBox([slider, out])

    return show_interactive(factory, static)
