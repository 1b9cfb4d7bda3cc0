"""torch ``Dataset``s over records, and the test-time loader helper.

* :class:`ImageDataset` -- ``records`` of a :class:`~reidlib.data.base.ReIDDataset`, read
  through that dataset (so SynthPeds URIs and files on disk work alike), transformed
  jointly with their part masks.
* :class:`PartialCropDataset` -- training items with a random partial crop and its
  self-supervision signals (``theta``, ``scale_translation``, VPM ``region_labels`` and
  ``visible``), for VPM, STNReID and PPCL.
* :func:`build_loader` -- a ``DataLoader`` with the usual test-time settings.

Items are dicts; integer fields are Python ints (collated to ``int64`` tensors).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import tv_tensors

from reidlib.data.base import ReIDDataset, Record
from reidlib.data.partial import (
    SIDES, CropSpec, box_to_scale_translation, get_strategy, partial_crop, scale_translation_to_theta,
)
from reidlib.data.transforms import build_geometric_transform, build_photometric_transform

__all__ = ["ImageDataset", "PartialCropDataset", "body_box", "build_loader"]

#: What a partial crop's ratio is a fraction of (:class:`PartialCropDataset`'s ``crop_within``).
CROP_WITHIN = ("frame", "body")
#: The part-mask labels of the body (:data:`reidlib.data.base.PART_NAMES` 1-4; 255 = occluder).
BODY_LABELS = (1, 2, 3, 4)


def _tensor(a: np.ndarray) -> torch.Tensor:
    """numpy -> torch without the read-only warning (PIL's arrays are read-only)."""
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, copy=True, order="C")
    return torch.from_numpy(a)


def _records(records: Sequence) -> list[Record]:
    out = []
    for i, r in enumerate(records):
        try:
            path, pid, camid = r
        except (TypeError, ValueError):
            raise TypeError(f"record #{i} = {r!r}: expected (path, pid, camid)") from None
        out.append(Record(str(path), int(pid), int(camid)))
    return out


def body_box(mask: torch.Tensor, size: Sequence[int] | None = None) -> tuple[int, int, int, int]:
    """The person's box ``(x0, y0, x1, y1)`` (``x1``/``y1`` exclusive) in a part mask ``(H, W)``:
    the bounding box of its body labels (1-4).  A mask without body pixels gives the whole
    frame ``(0, 0, W, H)``."""
    if mask.dim() != 2:
        raise ValueError(f"body_box: expected an (H, W) part mask, got shape {tuple(mask.shape)}")
    H, W = mask.shape if size is None else size
    body = (mask >= BODY_LABELS[0]) & (mask <= BODY_LABELS[-1])
    rows, cols = body.any(1).nonzero().flatten(), body.any(0).nonzero().flatten()
    if rows.numel() == 0:
        return (0, 0, int(W), int(H))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


class _RecordDataset(Dataset):
    def __init__(self, records: Sequence, source: ReIDDataset, with_mask: bool = False, relabel: dict[int, int] | None = None):
        if not isinstance(source, ReIDDataset):
            raise TypeError(f"source must be a reidlib ReIDDataset (it reads the images), got {type(source).__name__}")
        self.records = _records(records)
        self.source = source
        self.with_mask = with_mask
        self.relabel = relabel
        if relabel is not None:
            missing = sorted({r.pid for r in self.records} - set(relabel))
            if missing:
                raise ValueError(f"relabel has no label for pids {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
                                 f"expected a dict covering every pid of the records (ReIDDataset.relabel_train())")

    @property
    def pids(self) -> list[int]:
        """One identity per item (what the PK sampler groups by)."""
        return [r.pid for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def _read(self, index: int):
        rec = self.records[index]
        img = self.source.read_image(rec.path)
        mask = None
        if self.with_mask:
            mask = self.source.read_mask(rec.path)
            if mask is None:
                where = getattr(self.source, "mask_path", None)
                expected = (f"expected at {where(rec.path)}" if callable(where)
                            else "masks live at <dir>_masks/<stem>.png for datasets on disk")
                raise FileNotFoundError(
                    f"with_mask=True but {type(self.source).__name__} has no part mask for {rec.path!r} "
                    f"({expected}; see reidlib.data.datasets for the mask layout)"
                )
            if mask.shape != img.shape[:2]:
                raise ValueError(f"mask of {rec.path!r} has shape {mask.shape}, image {img.shape[:2]}; expected equal (H, W)")
        return rec, img, mask

    def _meta(self, index: int, rec: Record) -> dict[str, Any]:
        item: dict[str, Any] = {"pid": rec.pid, "camid": rec.camid, "index": index}
        if self.relabel is not None:
            item["label"] = self.relabel[rec.pid]
        return item


class ImageDataset(_RecordDataset):
    """``records`` read through ``source``; items ``{"image", "pid", "camid", "index"[, "label"][, "mask"]}``.

    Args:
        records: ``(path, pid, camid)`` records, e.g. ``source.query``.
        source: the :class:`ReIDDataset` they come from (it reads images and masks).
        transform: a ``transforms.v2`` transform; called as ``transform(image)`` or, with masks,
            ``transform({"image": image, "mask": Mask})``.  None: a uint8 ``(3, H, W)`` tensor.
        with_mask: also return the part mask (``(H, W)`` uint8 ``tv_tensors.Mask``); a missing
            mask is an error.
        relabel: ``pid -> label`` (``source.relabel_train()``) to add a training ``"label"``.
    """

    def __init__(self, records: Sequence, source: ReIDDataset, transform: Callable | None = None,
                 with_mask: bool = False, relabel: dict[int, int] | None = None):
        super().__init__(records, source, with_mask, relabel)
        self.transform = transform

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec, img, mask = self._read(index)
        image = tv_tensors.Image(_tensor(img).permute(2, 0, 1))
        item = self._meta(index, rec)
        if mask is not None:
            m = tv_tensors.Mask(_tensor(mask))
            if self.transform is not None:
                out = self.transform({"image": image, "mask": m})
                image, m = out["image"], out["mask"]
            item["mask"] = m
        elif self.transform is not None:
            image = self.transform(image)
        item["image"] = image
        return item


class PartialCropDataset(_RecordDataset):
    """Training items with a random partial crop and its self-supervision signals.

    Per item: read the holistic image (and mask), apply ``holistic_transform`` (geometric
    augmentation of the *holistic* frame; default: resize to ``size``, flip, pad 10 +
    random crop), then with probability ``p_partial`` cut a crop with ``strategy``
    (:func:`~reidlib.data.partial.partial_crop`, resized to ``size``), otherwise keep the
    whole frame (identity transform, every region visible), then apply ``transform``
    (photometric; default: normalise + random erasing, image only).

    Item keys: ``image`` (the crop, float ``(3, H, W)``), ``pid``, ``camid``, ``index``,
    [``label``], ``is_partial`` (bool), ``box`` (int64 ``(4,)`` in holistic pixels after the
    holistic augmentation), ``ratio`` (float), ``side`` (index into
    :data:`~reidlib.data.partial.SIDES`, -1 for none/free), ``scale_translation`` (float32
    ``(4,)``), ``theta`` (float32 ``(2, 3)``), and with ``grid``: ``region_labels`` (int64
    ``(feat_h, feat_w)``) and ``visible`` (bool ``(p,)``); with ``with_mask``: ``mask``;
    with ``return_holistic``: ``holistic`` (the augmented holistic image, normalised, no
    erasing).

    ``crop_within`` says what the crop ratio is a fraction of:

    * ``"frame"`` (default): the whole (augmented) image -- VPM's and PCB's convention, whose
      region labels are stripes of the image;
    * ``"body"``: the person's box in it -- "remove 20-60 % of the *body*" (STNReID), the way
      the partial test sets are cut.  The body box is the bounding box of the part mask's
      body labels (1-4) after the holistic augmentation, for sources with part masks
      (SynthPeds, whose frames leave a margin around the person); a source without part
      masks is a detector's crop, so its image *is* the body box (``"frame"``).  ``box``,
      ``scale_translation`` and ``theta`` still refer to the whole holistic image (what a
      warp of the holistic image needs); ``region_labels`` refer to the body box.
      ``body_box`` (int64 ``(4,)``) is added to the items.

    Randomness comes from torch's generator (seeded per worker by the ``DataLoader``), so
    runs are reproducible under ``torch.manual_seed``.
    """

    def __init__(self, base_records: Sequence, source: ReIDDataset, strategy: "str | CropSpec", size: Sequence[int],
                 grid: tuple[int, int] | None = None, feat_size: tuple[int, int] | None = None, p_partial: float = 1.0,
                 transform: Callable | None = None, holistic_transform: Callable | None = None,
                 with_mask: bool = False, return_holistic: bool = False, relabel: dict[int, int] | None = None,
                 crop_within: str = "frame"):
        super().__init__(base_records, source, with_mask, relabel)
        self.spec = get_strategy(strategy)
        if crop_within not in CROP_WITHIN:
            raise ValueError(f"crop_within={crop_within!r}: expected one of {', '.join(map(repr, CROP_WITHIN))}")
        self.crop_within = crop_within
        self.size = (int(size[0]), int(size[1]))
        if not 0.0 <= p_partial <= 1.0:
            raise ValueError(f"p_partial={p_partial!r}: expected a probability in [0, 1]")
        self.grid = grid
        self.feat_size = feat_size
        self.p_partial = float(p_partial)
        self.holistic_transform = holistic_transform if holistic_transform is not None else build_geometric_transform(self.size)
        self.transform = transform if transform is not None else build_photometric_transform(0.5)
        self.return_holistic = return_holistic
        self._holistic_norm = build_photometric_transform(0.0) if return_holistic else None

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec, img, mask = self._read(index)
        body_mask = None
        if self.crop_within == "body" and mask is None:
            body_mask = self.source.read_mask(rec.path)  # None: no part masks, the image is the body box
        image = tv_tensors.Image(_tensor(img).permute(2, 0, 1))
        if mask is not None or body_mask is not None:
            m = mask if mask is not None else body_mask
            out = self.holistic_transform({"image": image, "mask": tv_tensors.Mask(_tensor(m))})
            hol, hmask = out["image"], out["mask"]
        else:
            hol, hmask = self.holistic_transform(image), None
        H, W = hol.shape[-2:]
        body = (0, 0, W, H)
        if self.crop_within == "body" and hmask is not None:
            body = body_box(hmask.as_subclass(torch.Tensor), (H, W))
        if mask is None:
            hmask = None
        is_partial = bool(torch.rand(()) < self.p_partial) if self.p_partial < 1 else True
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        pc = partial_crop(
            hol.as_subclass(torch.Tensor), hmask.as_subclass(torch.Tensor) if hmask is not None else None,
            spec=self.spec, rng=rng, out_size=self.size, grid=self.grid, feat_size=self.feat_size,
            box=body if is_partial else None, crop_box=None if is_partial else (0, 0, W, H),
        )  # a whole item is the whole frame, in either convention
        st = box_to_scale_translation(pc.box, W, H)  # pc.box is in image pixels: the transform of the whole image
        crop = tv_tensors.Image(pc.image)
        item = self._meta(index, rec)
        if pc.mask is not None:
            out = self.transform({"image": crop, "mask": tv_tensors.Mask(pc.mask)})
            item["image"], item["mask"] = out["image"], out["mask"]
        else:
            item["image"] = self.transform(crop)
        item.update(
            is_partial=is_partial,
            box=torch.tensor(pc.box, dtype=torch.int64),
            ratio=float(pc.ratio),
            side=SIDES.index(pc.side) if pc.side in SIDES else -1,
            scale_translation=torch.from_numpy(st),
            theta=torch.from_numpy(scale_translation_to_theta(st)),
        )
        if self.crop_within == "body":
            item["body_box"] = torch.tensor(body, dtype=torch.int64)
        if pc.region_labels is not None:
            item["region_labels"] = torch.from_numpy(pc.region_labels)
            item["visible"] = torch.from_numpy(pc.visible)
        if self.return_holistic:
            h = hol if hol.shape[-2:] == self.size else tv_tensors.Image(
                torch.nn.functional.interpolate(hol[None].float(), size=self.size, mode="bilinear", antialias=True,
                                                align_corners=False)[0].round().clamp(0, 255).to(torch.uint8))
            item["holistic"] = self._holistic_norm(h)
        return item


def build_loader(dataset: Dataset, batch_size: int = 128, num_workers: int = 0, device: "torch.device | str | None" = None,
                 shuffle: bool = False, sampler: Sampler | None = None, drop_last: bool = False,
                 seed: int | None = None) -> DataLoader:
    """A ``DataLoader`` with the usual settings: ``pin_memory`` when the target device (default:
    CUDA if available) is CUDA, persistent workers when ``num_workers > 0``, and a seeded
    generator when ``seed`` is given (reproducible shuffling and worker seeds).

    Test-time use: ``build_loader(ImageDataset(ds.query, ds, build_test_transform(size)), 128)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive int")
    if device is None:
        cuda = torch.cuda.is_available()
    else:
        cuda = torch.device(device).type == "cuda"
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
        num_workers=num_workers, pin_memory=cuda, drop_last=drop_last,
        persistent_workers=num_workers > 0, generator=gen,
    )


class RelabelledDataset(torch.utils.data.Dataset):
    """Adds ``"label"`` (``pid2label[pid]``) to the items of a dataset that yields ``"pid"``.

    ``.pids`` holds the training label of every item (what the PK sampler groups by).
    """

    def __init__(self, base, pid2label: dict[int, int]):
        self.base = base
        self.pid2label = dict(pid2label)
        try:
            self.pids = [self.pid2label[int(p)] for p in base.pids]
        except KeyError as e:
            raise KeyError(f"training pid {e.args[0]} has no label in pid2label ({len(pid2label)} labels)") from None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index):
        item = dict(self.base[index])
        item["label"] = self.pid2label[int(item["pid"])]
        return item
