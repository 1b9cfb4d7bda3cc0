"""Part masks, visibility and routing of a part model, measured against SynthPeds' truth.

The papers can only show pictures of predicted part masks (SANet Fig. 2) and of the AFE's paths
(SANet Fig. 4a).  SynthPeds renders the true part mask of every image and knows each person's
box, so a crop of known ratio can be cut from a test image together with its true mask, and a
model's decisions on it can be scored:

* **mask IoU** per branch: the predicted mask (``masks > 0.5`` at the segmentation heads'
  resolution) against the label the model was trained to predict, the true mask down-sampled by
  :func:`reidlib.data.masks.part_mask_labels` (SANet Eq. 6's ``DS(M^i)``), over the images where
  either is non-empty;
* **visibility accuracy** per branch: the model's visible flag (Eq. 5, ``v^i >= 1``) against the
  label's (any positive cell), over every image;
* **the AFE's path** (models with an adaptive AFE): :func:`reidlib.models.sanet.route_path` of each
  image, the scale at each layer and its mean depth.

:func:`crop_part_study` gives one record per (image, crop ratio); the chapters aggregate them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from reidlib.data.masks import part_mask_labels
from reidlib.data.partial import partial_crop
from reidlib.data.transforms import build_test_transform
from reidlib.eval.protocols import CropSetting

__all__ = ["crop_part_study", "mask_iou"]


def mask_iou(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks ``(..., h, w)`` over the last two dims; NaN where both are empty."""
    if pred.shape != true.shape:
        raise ValueError(f"mask_iou: pred {tuple(pred.shape)} and true {tuple(true.shape)} must have one shape")
    p, t = pred.bool().flatten(-2), true.bool().flatten(-2)
    inter, union = (p & t).sum(-1).float(), (p | t).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan")))


@torch.no_grad()
def crop_part_study(model, dataset, ratios: Sequence[float], image_size: Sequence[int], strategy: str = "partial-reid-like",
                    seed: int = 0, split: str = "query", max_images: int | None = None, batch_size: int = 128,
                    min_fraction: float = 0.1, within: str = "body") -> list[dict]:
    """Crop every image of ``dataset.<split>`` (the first ``max_images``) at each area ratio of
    ``ratios`` (``CropSetting(strategy, ratio, seed)``: the same side per image at every ratio; a
    ratio of 1 keeps the whole image) and score the part model ``model`` (HPNet, SANet) on the crops.

    ``within="body"`` cuts the ratio out of the person's box (SynthPeds' ``ground_truth``; the
    frame where a dataset knows no box), ``"frame"`` out of the whole frame.

    Returns one dict per (image, ratio): ``index``, ``ratio``, ``side``, per branch ``b``
    (``model.branch_names``) ``iou.<b>`` (NaN where predicted and true masks are both empty),
    ``visible.<b>`` (the model's flag), ``true_visible.<b>``; with an adaptive AFE ``path`` (a
    string of scales, e.g. ``"0-1-1-2-2-1"``) and ``depth`` (its mean scale).
    """
    from reidlib.models.sanet import route_path

    if within not in ("body", "frame"):
        raise ValueError(f"crop_part_study: within={within!r}; accepted: 'body' (the person's box) and 'frame'")
    if not hasattr(dataset, "read_mask"):
        raise ValueError(f"crop_part_study: dataset {getattr(dataset, 'name', dataset)!r} reads no part masks")
    recs = list(getattr(dataset, split))[:max_images] if max_images else list(getattr(dataset, split))
    if not recs:
        raise ValueError(f"crop_part_study: the {split!r} split of {getattr(dataset, 'name', dataset)!r} is empty")
    model.eval()
    dev = next(model.parameters()).device
    tf = build_test_transform(tuple(image_size))
    fs = model.feature_size(image_size)
    names = list(model.branch_names)
    images, masks, boxes = [], [], []
    for r in recs:
        images.append(dataset.read_image(r.path))
        m = dataset.read_mask(r.path)
        if m is None:
            raise ValueError(f"crop_part_study: no part mask for {r.path!r} (dataset {getattr(dataset, 'name', '?')!r}); "
                             f"the study needs the true mask of every image")
        masks.append(m)
        gt = dataset.ground_truth(r.path) if within == "body" and hasattr(dataset, "ground_truth") else None
        boxes.append(None if gt is None else gt["person_box"])
    rows = []
    for ratio in ratios:
        setting = CropSetting(strategy, float(ratio), seed)
        crops, labels, sides = [], [], []
        for i, (img, m, box) in enumerate(zip(images, masks, boxes)):
            if float(ratio) >= 1.0:
                c = partial_crop(img, mask=m, out_size=tuple(image_size), crop_box=(0, 0, img.shape[1], img.shape[0]))
                side = None
            else:
                c = partial_crop(img, mask=m, spec=setting.spec(), rng=setting.rng(i), out_size=tuple(image_size), box=box)
                side = c.side
            crops.append(tf(torch.from_numpy(np.ascontiguousarray(c.image)).permute(2, 0, 1)))
            labels.append(part_mask_labels(torch.from_numpy(np.ascontiguousarray(c.mask)), fs, min_fraction,
                                           with_global="global" in names))
            sides.append(side)
        for k in range(0, len(crops), batch_size):
            out = model(torch.stack(crops[k:k + batch_size]).to(dev))
            pred = (out["masks"] > 0.5).cpu()
            true = torch.stack(labels[k:k + batch_size]).bool()
            iou = mask_iou(pred, true)
            vis, tvis = out["visibility"].cpu(), true.flatten(-2).any(-1)
            path = depth = None
            if "routes" in out and "cell_active" in out:
                path, depth = route_path(out["routes"].cpu(), out["cell_active"].cpu())
            for j in range(len(pred)):
                i = k + j
                row = {"index": i, "ratio": float(ratio), "side": sides[i]}
                for b, name in enumerate(names):
                    row[f"iou.{name}"] = float(iou[j, b])
                    row[f"visible.{name}"] = bool(vis[j, b])
                    row[f"true_visible.{name}"] = bool(tvis[j, b])
                if path is not None and bool((path[j] >= 0).all()):
                    row["path"] = "-".join(str(int(v)) for v in path[j])
                    row["depth"] = float(depth[j])
                rows.append(row)
    return rows
