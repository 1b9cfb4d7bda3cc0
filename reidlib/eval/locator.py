"""How well VPM's region locator finds the regions, measured against the truth.

On a crop of a holistic image, the *frame* labels are the region labels of VPM's
self-supervision (:func:`reidlib.data.partial.region_labels` through
:func:`~reidlib.data.partial.partial_crop`: the regions of the whole image frame).  On
SynthPeds, which knows each person's box, the *person* labels are the same regions laid on the
person's box instead of the frame (feature pixels outside the box have none).  The locator's
prediction is the most probable region of every feature pixel (Eq. 1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from reidlib.data.partial import partial_crop
from reidlib.data.transforms import build_test_transform
from reidlib.eval.protocols import CropSetting

__all__ = ["person_region_labels", "locator_agreement"]


def person_region_labels(crop_box, person_box, grid: tuple[int, int], feat_size: tuple[int, int]):
    """Region labels of a crop's feature pixels with the ``grid`` regions laid on the person's box,
    and the mask of the pixels whose centre lies inside that box: ``(labels, inside)``, both ``(h, w)``.

    Each feature pixel's centre is placed in image pixels (inside ``crop_box``), then in the person
    box's ``[0, 1)`` frame; its region is ``floor(v * m)`` (rows) and ``floor(u * n)`` (columns).
    """
    bx0, by0, bx1, by1 = person_box
    x0, y0, x1, y1 = crop_box
    fh, fw = feat_size
    cy = y0 + (torch.arange(fh) + 0.5) / fh * (y1 - y0)
    cx = x0 + (torch.arange(fw) + 0.5) / fw * (x1 - x0)
    vy, vx = (cy - by0) / (by1 - by0), (cx - bx0) / (bx1 - bx0)
    inside = ((vy >= 0) & (vy < 1))[:, None] & ((vx >= 0) & (vx < 1))[None, :]
    rows = (vy.clamp(0, 0.999) * grid[0]).long()
    cols = (vx.clamp(0, 0.999) * grid[1]).long()
    return rows[:, None] * grid[1] + cols[None, :], inside


@torch.no_grad()
def locator_agreement(model, dataset, gammas: Sequence[float], image_size: Sequence[int], strategy: str = "vpm-top",
                      seed: int = 0, grid: tuple[int, int] = (6, 1), max_images: int | None = None,
                      batch_size: int = 128) -> list[dict]:
    """Per crop ratio gamma (queries of ``dataset`` cut by ``strategy``): the locator's pixel accuracy
    and visible-set agreement against the frame labels, the mean test-time visibility ``C_i / hw``
    of the truly invisible regions, and (when ``dataset.ground_truth`` gives person boxes) the
    same against the person labels.  Percentages; one dict per gamma."""
    recs = dataset.query[:max_images] if max_images else dataset.query
    model.eval()
    dev = next(model.parameters()).device
    tf = build_test_transform(tuple(image_size))
    fs = model.feature_size(image_size)
    p = grid[0] * grid[1]
    rows = []
    for g in gammas:
        setting = CropSetting(strategy, g, seed)
        imgs, frame_lab, person_lab, person_in = [], [], [], []
        for i, r in enumerate(recs):
            c = partial_crop(dataset.read_image(r.path), spec=setting.spec(), rng=setting.rng(i), grid=grid, feat_size=fs)
            imgs.append(c.image)
            frame_lab.append(torch.from_numpy(c.region_labels))
            gt = dataset.ground_truth(r.path) if hasattr(dataset, "ground_truth") else None
            if gt is not None:
                lab, inside = person_region_labels(c.box, gt["person_box"], grid, fs)
                person_lab.append(lab)
                person_in.append(inside)
        probs, vis = [], []
        for k in range(0, len(imgs), batch_size):
            x = torch.stack([tf(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)) for im in imgs[k:k + batch_size]])
            out = model.locate(x.to(dev))
            h, w = out["probs"].shape[-2:]
            probs.append(out["probs"].cpu())
            vis.append((out["visibility"] / (h * w)).cpu())
        pred = torch.cat(probs).argmax(1)
        frame = torch.stack(frame_lab)
        pred_vis = torch.zeros(len(pred), p, dtype=torch.bool).scatter_(1, pred.flatten(1), True)
        frame_vis = torch.zeros_like(pred_vis).scatter_(1, frame.flatten(1), True)
        row = {"gamma": g, "frame pixel acc": 100 * (pred == frame).float().mean().item(),
               "frame visibility agreement": 100 * (pred_vis == frame_vis).float().mean().item(),
               "C of invisible regions": 100 * torch.cat(vis)[~frame_vis].mean().item() if (~frame_vis).any() else float("nan")}
        if person_lab:
            person, inside = torch.stack(person_lab), torch.stack(person_in)
            row["person pixel acc"] = 100 * (pred == person)[inside].float().mean().item()
            # the visible set of the person labels: the regions of the pixels inside the box
            idx = torch.where(inside, person, person.new_zeros(())).flatten(1)
            person_vis = torch.zeros(len(pred), p, dtype=torch.long).scatter_reduce_(
                1, idx, inside.flatten(1).long(), reduce="amax").bool()  # regions of the pixels inside the box
            row["person visibility agreement"] = 100 * (pred_vis == person_vis).float().mean().item()
        rows.append(row)
    return rows
