"""The evaluation entry point: extract features once, score them under any protocols.

>>> ev = Evaluator(model, dataset, device="auto", batch_size=128, image_size=(256, 128))
>>> results = ev.evaluate(["market", CropSweep(strategy="vpm-top")], method="baseline", profile="smoke")
>>> print(format_results(results))

or in one call: ``evaluate(model, dataset, ["partial-query", "single-shot-trials"])``.

Features are extracted in batches under ``torch.no_grad``, with autocast (bf16 where
supported, else fp16) and ``channels_last`` on CUDA, and cached per (split, crop
setting): a protocol that needs the holistic gallery reuses the one another protocol
extracted.  ``test_mode`` chooses how an image whose shape differs from ``image_size``
is fed (PPCL's "Resize" and "Pad" baselines, :func:`reidlib.data.transforms.build_test_transform`).

Precomputed features can be scored too: pass ``{"query": Features, "gallery": Features}``
(and a ``matcher``) instead of a model; protocols that need crops then fail clearly.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from reidlib.data.partial import partial_crop
from reidlib.eval.protocols import CropSetting, Protocol, Setting, View, build_protocol
from reidlib.eval.results import EvalResult, metrics_from_cmc
from reidlib.metrics.matchers import GlobalMatcher, Matcher
from reidlib.metrics.rank import evaluate_rank_detailed
from reidlib.models.base import Features
from reidlib.precision import autocast
from reidlib.provenance import hardware_summary

__all__ = ["Evaluator", "evaluate", "evaluate_run", "EvalImages", "score_views"]


class EvalImages(Dataset):
    """Test images of one split, optionally partial-cropped (deterministically), transformed.

    Items: ``{"image": (3, H, W) float, "index": int}``.
    """

    def __init__(self, dataset, split: str, transform: Callable, crop: CropSetting | None = None):
        recs = getattr(dataset, split, None)
        if not isinstance(recs, (list, tuple)):
            raise ValueError(f"dataset {getattr(dataset, 'name', dataset)!r} has no split {split!r}")
        self.dataset, self.records, self.transform, self.crop = dataset, list(recs), transform, crop
        self.spec = crop.spec() if crop is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        img = self.dataset.read_image(rec.path)
        if self.crop is not None:
            img = partial_crop(img, None, self.spec, self.crop.rng(index)).image
        img = np.ascontiguousarray(img)
        return {"image": self.transform(torch.from_numpy(img).permute(2, 0, 1)), "index": index}


def score_views(qf: Features, gf: Features, q_pids, g_pids, q_camids, g_camids, matcher: Matcher, max_rank: int = 50):
    """Distances with ``matcher`` then :func:`~reidlib.metrics.rank.evaluate_rank_detailed`."""
    d = matcher(qf, gf)
    return evaluate_rank_detailed(d, q_pids, g_pids, q_camids, g_camids, max_rank)


class Evaluator:
    """Extract-once, score-many evaluation of a model (or of precomputed features) on a dataset.

    Args:
        model: a :class:`~reidlib.models.base.ReIDModel` (``.extract(images) -> Features``,
            ``.matcher()``), or a mapping ``{"query": Features, "gallery": Features[, "train": ...]}``.
        dataset: a :class:`~reidlib.data.base.ReIDDataset`.
        device: ``"auto" | "cpu" | "cuda" | ...`` or a ``torch.device``.
        batch_size: images per forward pass.
        image_size: ``(H, W)`` network input; default ``model.image_size``, else ``dataset.size``,
            else ``(256, 128)``.
        test_mode: ``"resize"`` or ``"pad"`` (see :func:`reidlib.data.transforms.build_test_transform`).
        matcher: overrides ``model.matcher()`` (required with precomputed features unless the
            features are global: :class:`GlobalMatcher` then).
        amp, channels_last: on CUDA only.
        (The model is moved to ``device`` and put in eval mode while features are extracted;
        its training flag is restored afterwards.)
        num_workers: ``DataLoader`` workers.
        max_rank: CMC length.
        progress: tqdm bars during extraction.
    """

    def __init__(self, model, dataset, device="auto", batch_size: int = 64, image_size: Sequence[int] | None = None,
                 test_mode: str = "resize", matcher: Matcher | None = None, amp: bool = True,
                 channels_last: bool = True, num_workers: int = 0, max_rank: int = 50, progress: bool = False):
        from reidlib.config import resolve_device

        self.dataset = dataset
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size, self.num_workers, self.max_rank, self.progress = batch_size, num_workers, max_rank, progress
        self.amp, self.channels_last = amp, channels_last
        self.test_mode = test_mode
        self._cache: dict = {}
        if isinstance(model, Mapping):
            self.model = None
            for k, v in model.items():
                if not isinstance(v, Features):
                    raise TypeError(f"precomputed features[{k!r}] is {type(v).__name__}; expected reidlib Features")
                n = len(getattr(dataset, k, []))
                if len(v) != n:
                    raise ValueError(f"precomputed features[{k!r}] has {len(v)} rows but the dataset's {k!r} split has {n} records")
                self._cache[(k, None)] = v
            self._matcher = matcher or GlobalMatcher()
        else:
            if not hasattr(model, "extract"):
                raise TypeError(f"model must be a ReIDModel with .extract(images) -> Features (or a dict of Features), got {type(model).__name__}")
            self.model = model
            self._matcher = matcher if matcher is not None else model.matcher()
        size = image_size or getattr(model, "image_size", None) or getattr(dataset, "size", None) or (256, 128)
        self.image_size = (int(size[0]), int(size[1]))

    # -- features ------------------------------------------------------------------
    @property
    def matcher(self) -> Matcher:
        return self._matcher

    def _transform(self):
        from reidlib.data.transforms import build_test_transform

        return build_test_transform(self.image_size, mode=self.test_mode)

    @torch.no_grad()
    def _extract(self, split: str, crop: CropSetting | None) -> Features:
        if self.model is None:
            what = f"split {split!r}" + (f" with a crop ({crop.describe()})" if crop else "")
            raise ValueError(f"precomputed features were given without {what}; pass a model to extract it")
        ds = EvalImages(self.dataset, split, self._transform(), crop)
        loader = DataLoader(ds, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda")
        was_training = self.model.training
        self.model.to(self.device).eval()
        cl = self.channels_last and self.device.type == "cuda"
        if cl:
            self.model.to(memory_format=torch.channels_last)
        it = loader
        if self.progress:
            from tqdm.auto import tqdm

            it = tqdm(loader, desc=f"features {split}{' (cropped)' if crop else ''}", unit="batch")
        out = []
        try:
            for batch in it:
                x = batch["image"].to(self.device, non_blocking=True)
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(self.device, self.amp):
                    f = self.model.extract(x)
                if not isinstance(f, Features):
                    raise TypeError(f"{type(self.model).__name__}.extract returned {type(f).__name__}; expected Features")
                out.append(f.float())
        finally:
            self.model.train(was_training)
        if not out:
            raise ValueError(f"split {split!r} of {getattr(self.dataset, 'name', '?')!r} is empty")
        return Features.cat(out)

    def features(self, split: str, crop: CropSetting | None = None) -> Features:
        """Features of every image of ``split`` (cropped with ``crop``), cached."""
        key = (split, crop)
        if key not in self._cache:
            self._cache[key] = self._extract(split, crop)
        return self._cache[key]

    def view_features(self, view: View) -> Features:
        """Features of a protocol :class:`View` (subset and mixed crops applied)."""
        if view.crop is None:
            f = self.features(view.split)
        elif view.cropped is None:
            f = self.features(view.split, view.crop)
        else:
            hol = self.features(view.split)
            cro = self.features(view.split, view.crop)
            n = len(hol)
            if len(view.cropped) != n:
                raise ValueError(f"View.cropped has {len(view.cropped)} flags for a split of {n} images")
            pick = torch.as_tensor(np.where(view.cropped, np.arange(n) + n, np.arange(n)))
            f = Features.cat([hol, cro])[pick.to(hol.device)]
        if view.indices is not None:
            f = f[torch.as_tensor(view.indices, dtype=torch.long).to(f.device)]
        return f

    def view_labels(self, view: View) -> tuple[np.ndarray, np.ndarray]:
        recs = getattr(self.dataset, view.split)
        pids = np.asarray([r.pid for r in recs], dtype=np.int64)
        cams = np.asarray([r.camid for r in recs], dtype=np.int64)
        if view.indices is not None:
            pids, cams = pids[view.indices], cams[view.indices]
        if view.camid is not None:
            cams = np.full_like(cams, view.camid)
        return pids, cams

    # -- scoring -------------------------------------------------------------------
    def score_setting(self, setting: Setting):
        """Average CMC / mAP / mINP over the setting's trials: ``(cmc, mAP, mINP, n_valid, nq, ng)``."""
        cmcs, maps, minps, nvalid, nq, ng = [], [], [], [], [], []
        for t in setting.trials:
            qf, gf = self.view_features(t.query), self.view_features(t.gallery)
            qp, qc = self.view_labels(t.query)
            gp, gc = self.view_labels(t.gallery)
            r = score_views(qf, gf, qp, gp, qc, gc, self._matcher, self.max_rank)
            cmc = np.ones(self.max_rank, dtype=np.float64)  # past the gallery size every valid query has its match
            cmc[: len(r.cmc)] = r.cmc
            cmcs.append(cmc)
            maps.append(r.mAP)
            minps.append(r.mINP)
            nvalid.append(r.num_valid)
            nq.append(len(qp))
            ng.append(len(gp))
        return (np.mean(cmcs, 0), float(np.mean(maps)), float(np.mean(minps)), float(np.mean(nvalid)),
                int(np.mean(nq)), int(np.mean(ng)))

    def evaluate(self, protocols, method: str | None = None, profile: str | None = None) -> list[EvalResult]:
        """Score every protocol (a name, a :class:`Protocol`, or a list of them); one result per setting."""
        if isinstance(protocols, (str, Protocol)):
            protocols = [protocols]
        method = method or (type(self.model).__name__ if self.model is not None else "features")
        hw = hardware_summary(self.device)
        dname = getattr(self.dataset, "name", type(self.dataset).__name__)
        version = getattr(self.dataset, "version", None)
        results = []
        for spec in protocols:
            proto = build_protocol(spec)
            desc = proto.describe() + f"; matcher: {self._matcher.describe()}; test mode: {self.test_mode}"
            for s in proto.settings(self.dataset):
                cmc, mAP, mINP, nv, nq, ng = self.score_setting(s)
                results.append(EvalResult(
                    protocol=proto.name, description=desc, dataset=dname, method=method,
                    metrics=metrics_from_cmc(cmc, mAP, mINP, nv), setting=s.label,
                    dataset_version=None if version is None else str(version), profile=profile, hardware=hw,
                    cmc=[float(c) for c in cmc], n_query=nq, n_gallery=ng, n_trials=len(s.trials), params=dict(s.params),
                ))
        return results


def evaluate(model_or_features, dataset, protocols, *, method: str | None = None, profile: str | None = None,
             **evaluator_kwargs) -> list[EvalResult]:
    """One call: build an :class:`Evaluator` and score ``protocols`` (features extracted once)."""
    return Evaluator(model_or_features, dataset, **evaluator_kwargs).evaluate(protocols, method=method, profile=profile)


def evaluate_run(run, protocols, data: str | None = None, device: str = "auto", test_mode: str = "resize",
                 batch_size: int = 128, json_path=None, command: str | None = None, seed: int | None = None):
    """Evaluate a finished run (its folder alone: :func:`reidlib.engine.runs.load_run`) under
    ``protocols`` on ``data`` (default: the dataset the run was trained on); the results are
    saved to ``json_path`` (default ``<run>/eval.json``).  ``seed``: the SynthPeds seed of the test
    set (new identities).  Returns ``(results, path)``."""
    from pathlib import Path

    from reidlib.data.datasets import build_dataset
    from reidlib.engine.runs import load_run
    from reidlib.eval.results import save_results

    loaded = load_run(run, device)
    rc = loaded.config
    spec = data or rc.get("dataset")
    if not spec or ":" not in str(spec):
        raise ValueError(f"the run {run} does not record a dataset spec ({spec!r}); pass --data, e.g. synthpeds:smoke")
    dataset = build_dataset(spec, **({"seed": seed} if seed is not None else {}))
    results = evaluate(loaded.model, dataset, list(protocols), method=loaded.method.name, profile=rc.get("profile"),
                       device=device, test_mode=test_mode, batch_size=batch_size,
                       image_size=tuple(rc["train_config"]["image_size"]))
    out = Path(json_path) if json_path else Path(run) / "eval.json"
    save_results(out, results, command=command, profile=rc.get("profile"), extra={"run": str(run), "data": spec})
    return results, out
