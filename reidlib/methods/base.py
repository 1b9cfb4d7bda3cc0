"""What a method gives the engine: typed settings, recipes, the model, the batch recipe, the loss
and its training stages.

The engine (:class:`reidlib.engine.trainer.Trainer`) supplies everything else: device, mixed
precision, channels_last, loaders, sampler, schedules, checkpoints, logging, DDP.

* :class:`TrainConfig` is one recipe: the fields every method shares (input size, schedule,
  batch, augmentation, ...) plus ``extra``, the method's own settings as a plain dict (what
  ``config.json`` stores).
* :class:`Settings` is the typed form of ``extra``: each method declares a frozen dataclass
  of its settings, with one default per key; an unknown key, a value of the wrong type or a
  value out of range is an error naming the key, the value and what is accepted.
* :class:`Method` is the base class of a method; :class:`Stage` declares one of its training
  stages (VPM and STNReID train in two), which :func:`reidlib.engine.runs.train_stages` runs.
* :func:`parse_overrides` applies ``key=value`` overrides (``--set``) to a recipe and validates
  them before any work starts; :func:`recipe_hash` names a recipe for the run store.

Methods live in :mod:`reidlib.methods` and never import the engine.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

__all__ = [
    "TrainConfig",
    "Settings",
    "setting",
    "Method",
    "Stage",
    "parse_overrides",
    "parse_value",
    "recipe_hash",
    "RUNTIME_FIELDS",
    "relabelled_image_dataset",
    "weights_path",
]

#: TrainConfig fields that do not change what is computed (they may change when a run resumes,
#: and they are left out of :func:`recipe_hash`).
RUNTIME_FIELDS = frozenset({"num_workers", "checkpoint_every", "compile"})


# ----------------------------------------------------------------------------- typed fields
def setting(default: Any = MISSING, *, choices: Sequence | None = None, min: float | None = None,
            max: float | None = None, min_exclusive: bool = False, doc: str = "",
            default_factory: Callable | None = None):
    """A typed field with its accepted values: ``choices`` or a ``[min, max]`` range
    (``min_exclusive``: the value must be strictly above ``min``)."""
    meta = {"choices": tuple(choices) if choices is not None else None, "min": min, "max": max,
            "min_exclusive": min_exclusive, "doc": doc}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """``value`` as the annotated type ``tp`` (bool, int, float, str, dict, tuples, Optional)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = lambda what: ValueError(f"{where}: {key}={value!r} is not {what}")  # noqa: E731
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        errors = []
        for a in others:
            try:
                return _coerce(value, a, key, where)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError(f"{where}: {key}={value!r} is not " + " or ".join(
            _type_name(a) for a in args) + (f" ({errors[0]})" if len(errors) == 1 else ""))
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad("a boolean (true or false)")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise bad("an integer")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise bad("a mapping")
        return dict(value)
    if origin is tuple:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key, where) for v in items)
        if len(items) != len(args):
            raise bad(f"a sequence of {len(args)} values ({', '.join(_type_name(a) for a in args)})")
        return tuple(_coerce(v, a, key, where) for v, a in zip(items, args))
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise bad(f"a {tp.__name__}")
    return value


def _check_range(value: Any, meta: Mapping, key: str, where: str) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"{where}: unknown {key} {value!r}: {key}={value!r} is not one of "
                         f"{', '.join(map(repr, choices))}")
    lo, hi = meta.get("min"), meta.get("max")
    vals = value if isinstance(value, tuple) else (value,)
    for v in vals:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v is None:
            continue
        if lo is not None and (v <= lo if meta.get("min_exclusive") else v < lo):
            raise ValueError(f"{where}: {key}={value!r} is out of range; expected a value "
                             f"{'>' if meta.get('min_exclusive') else '>='} {lo}" + (f" and <= {hi}" if hi is not None else ""))
        if hi is not None and v > hi:
            raise ValueError(f"{where}: {key}={value!r} is out of range; expected a value <= {hi}"
                             + (f" and >= {lo}" if lo is not None else ""))


class _Typed:
    """Validation shared by :class:`TrainConfig` and :class:`Settings`: every field is coerced to
    its annotated type and checked against its ``choices`` / range when the object is made."""

    _where = "settings"

    @classmethod
    def _hints(cls) -> dict:
        hints = cls.__dict__.get("_hints_cache")
        if hints is None:
            hints = typing.get_type_hints(cls)
            type.__setattr__(cls, "_hints_cache", hints)
        return hints

    def __post_init__(self) -> None:
        hints = self._hints()
        where = self._label()
        for f in fields(self):
            v = _coerce(getattr(self, f.name), hints[f.name], f.name, where)
            _check_range(v, f.metadata, f.name, where)
            object.__setattr__(self, f.name, v)
        self.check()

    def _label(self) -> str:
        return self._where

    def check(self) -> None:
        """Checks across fields (subclasses)."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def unknown_key_error(cls, key: str, where: str, also: Sequence[str] = ()) -> ValueError:
        names = [n for n in cls.field_names() + list(also) if n != "extra"]
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ValueError(f"{where}: unknown setting {key!r}{hint}; accepted: {', '.join(sorted(names)) or '(none)'}")


# ----------------------------------------------------------------------------- the recipe
@dataclass
class TrainConfig(_Typed):
    """One training recipe.  ``Method.recipe(profile)`` returns the method's defaults."""

    image_size: tuple[int, int] = setting((256, 128), min=8)  # (H, W)
    backbone: str = "resnet50"
    pretrained: bool = True  # initial weights: ImageNet (full) or a pretrained SynthPeds backbone
    last_stride: int = setting(1, choices=(1, 2))
    epochs: int = setting(120, min=1)
    batch_p: int = setting(16, min=1)  # identities per batch
    batch_k: int = setting(4, min=1)  # images per identity
    sampler: str = setting("pk", choices=("pk", "random"))  # PK identities x images, or shuffled batches
    optimizer: str = setting("adam", choices=("adam", "sgd"))
    lr: float = setting(3.5e-4, min=0.0, min_exclusive=True)
    weight_decay: float = setting(5e-4, min=0.0)
    momentum: float = setting(0.9, min=0.0, max=1.0)
    backbone_lr_mult: float = setting(1.0, min=0.0)  # lr multiplier of the pretrained backbone vs new layers
    scheduler: str = setting("step", choices=("step", "cosine"))
    milestones: tuple[int, ...] = setting((40, 70), min=0)
    gamma: float = setting(0.1, min=0.0, min_exclusive=True)
    warmup_epochs: int = setting(10, min=0)
    warmup_factor: float = setting(0.01, min=0.0, max=1.0, min_exclusive=True)
    random_erasing: float = setting(0.5, min=0.0, max=1.0)
    flip: float = setting(0.5, min=0.0, max=1.0)
    pad: int = setting(10, min=0)
    amp: bool = True  # precision.amp_dtype_for: bf16 where supported, fp16 + scaler otherwise, fp32 on CPU
    channels_last: bool = True
    compile: bool = False
    num_workers: int = setting(2, min=0)
    checkpoint_every: int = setting(10, min=0)  # epochs (0: only at the end and where a call stops)
    max_iters_per_epoch: int | None = setting(None, min=1)  # cap, for smoke runs
    extra: dict[str, Any] = field(default_factory=dict)  # the method's settings (Method.Settings)

    _where = "TrainConfig"

    def check(self) -> None:
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"TrainConfig: milestones={list(self.milestones)} must be increasing")

    def replace(self, **kw) -> "TrainConfig":
        unknown = [k for k in kw if k not in self.field_names()]
        if unknown:
            raise self.unknown_key_error(unknown[0], "TrainConfig.replace")
        return replace(self, **kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        d["milestones"] = list(self.milestones)
        d["extra"] = _plain(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "train_config") -> "TrainConfig":
        d = dict(d)
        for k in d:
            if k not in cls.field_names():
                raise cls.unknown_key_error(k, where)
        return cls(**d)

    @property
    def batch_size(self) -> int:
        """Images per optimisation step (all processes together): ``batch_p * batch_k``."""
        return self.batch_p * self.batch_k


def _plain(o):
    """Tuples as lists, recursively (what JSON gives back): one form for hashing and storing."""
    if isinstance(o, Mapping):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    return o


def recipe_hash(cfg: TrainConfig, *parts: Any) -> str:
    """A short hash of a recipe (runtime-only fields left out) and of anything else that decides
    what a run computes (the method name, the dataset spec, the seed): the run store's key."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}
    blob = json.dumps([d, _plain(list(parts))], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------- method settings
@dataclass(frozen=True)
class Settings(_Typed):
    """Base class of a method's typed settings (``TrainConfig.extra``); a method with no settings
    keeps this empty one."""

    _method = "method"

    def _label(self) -> str:
        return f"{self._method} settings"

    @classmethod
    def from_dict(cls, d: Mapping | None, where: str | None = None) -> "Settings":
        """Build from ``TrainConfig.extra``: every key must be a field; missing keys take the default."""
        where = where or f"{cls._method} settings"
        d = dict(d or {})
        unknown = [k for k in d if k not in cls.field_names()]
        if unknown:
            close = difflib.get_close_matches(unknown[0], cls.field_names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown extra settings {unknown}{hint}; accepted: "
                             f"{', '.join(sorted(cls.field_names())) or '(none)'}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **kw) -> "Settings":
        for k in kw:
            if k not in self.field_names():
                raise self.unknown_key_error(k, f"{self._method} settings")
        return replace(self, **kw)


# ----------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class Stage:
    """One training stage of a method's pipeline.

    ``recipe`` is the stage's :class:`TrainConfig`, or a function of the finished earlier
    stages' run folders (``{stage name: Path}``) that returns it (stage 2 starts from stage 1's
    weights).  ``seed_offset`` is added to the run's seed.
    """

    name: str
    recipe: TrainConfig | Callable[[Mapping[str, Path]], TrainConfig]
    seed_offset: int = 0

    def config(self, done: Mapping[str, Path]) -> TrainConfig:
        return self.recipe(done) if callable(self.recipe) else self.recipe


# ----------------------------------------------------------------------------- the method
class Method:
    """Base class of a training method.

    Subclasses set ``name`` and ``Settings`` (a :class:`Settings` dataclass) and implement
    :meth:`recipe`, :meth:`build_model`, :meth:`train_dataset` and :meth:`loss`; a method that
    trains in several stages overrides :meth:`stages`.  ``self.settings`` holds the validated
    settings of ``cfg.extra``.
    """

    name: str = "method"
    Settings: type[Settings] = Settings

    def __init__(self, cfg: TrainConfig, num_classes: int):
        if not isinstance(cfg, TrainConfig):
            raise TypeError(f"{type(self).__name__} needs a TrainConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.num_classes = int(num_classes)
        self.settings = self.Settings.from_dict(cfg.extra, where=f"{self.name} settings")

    @classmethod
    def recipe(cls, profile: str) -> TrainConfig:  # pragma: no cover - abstract
        """The method's default :class:`TrainConfig` for a profile (``"smoke"``, ``"full"``)."""
        raise NotImplementedError

    @classmethod
    def stages(cls, cfg: TrainConfig) -> list[Stage]:
        """The training pipeline for a recipe: one stage by default."""
        return [Stage("main", cfg)]

    def build_model(self, init: bool = True) -> nn.Module:  # pragma: no cover - abstract
        """The model.  ``init=True``: with its initial weights (ImageNet / pretrained backbone /
        an earlier stage's weights, as the recipe says); ``init=False``: the architecture only
        (a finished run's weights replace the parameters: nothing else is read)."""
        raise NotImplementedError

    def train_dataset(self, dataset, pid2label: dict[int, int]) -> torch.utils.data.Dataset:  # pragma: no cover
        """The training ``Dataset`` (the batch recipe: transforms, partial crops).

        Items are dicts with at least ``"image"`` (float tensor ``(3, H, W)``) and
        ``"label"`` (int, 0..num_classes-1); the engine's PK sampler needs the dataset to
        expose ``.pids`` (one training label per item).
        """
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict, epoch: int) -> tuple[torch.Tensor, dict]:  # pragma: no cover
        """Forward the batch and return ``(total_loss, {name: detached 0-d tensor})`` for logging.

        Log values stay tensors (no ``float()``: that would wait for the GPU every step).
        The engine calls this inside autocast with the batch on the device; ``model`` may be
        wrapped (DDP, torch.compile): call it, do not reach into its attributes.  Learnable
        loss parameters belong in the model (the optimizer only sees ``model``'s).
        """
        raise NotImplementedError

    def param_groups(self, model: nn.Module) -> list[dict]:
        """Parameter groups with an ``lr_mult``; default: backbone vs new layers.

        Models expose their backbone as ``model.backbone``.
        """
        backbone = getattr(model, "backbone", None)
        if backbone is None:
            return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_mult": 1.0}]
        bb = {id(p) for p in backbone.parameters()}
        return [
            {"params": [p for p in backbone.parameters() if p.requires_grad], "lr_mult": self.cfg.backbone_lr_mult},
            {"params": [p for p in model.parameters() if p.requires_grad and id(p) not in bb], "lr_mult": 1.0},
        ]


# ----------------------------------------------------------------------------- overrides
def parse_value(s: str):
    """A ``--set`` value: JSON where possible (``3e-4``, ``true``, ``[40, 70]``), ``a,b`` as a
    tuple of JSON values, ``none``/``null``, else the string itself."""
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    if "," in s:
        try:
            return tuple(json.loads(x) for x in s.split(","))
        except json.JSONDecodeError:
            pass
    if s.lower() in ("none", "null"):
        return None
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    return s


def parse_overrides(overrides: Mapping | Sequence[str] | None, cfg: TrainConfig,
                    method: type[Method] | type[Settings] | None = None) -> TrainConfig:
    """Apply ``key=value`` overrides to ``cfg`` and validate the result.

    Keys are :class:`TrainConfig` fields or the method's settings (``method.Settings`` fields;
    ``extra.KEY`` is accepted too).  An unknown key, a value of the wrong type or out of range
    fails here, naming the key, before any work starts.
    """
    settings_cls = getattr(method, "Settings", method) or Settings
    where = f"--set ({getattr(method, 'name', 'method')})"
    if not overrides:
        settings_cls.from_dict(cfg.extra, where=where)
        return cfg
    if isinstance(overrides, (list, tuple)):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value (e.g. epochs=10, lr=3e-4)")
            k, v = item.split("=", 1)
            pairs[k.strip()] = parse_value(v.strip())
        overrides = pairs
    train_fields = set(TrainConfig.field_names()) - {"extra"}
    kw, extra = {}, dict(cfg.extra)
    for k, v in overrides.items():
        key = k[6:] if k.startswith("extra.") else k
        if key in settings_cls.field_names():
            extra[key] = v
        elif key in train_fields and not k.startswith("extra."):
            kw[key] = v
        else:
            raise TrainConfig.unknown_key_error(key, where, also=settings_cls.field_names())
    new = cfg.replace(**kw, extra=extra)
    settings = settings_cls.from_dict(extra, where=where)
    return new.replace(extra=settings.to_dict()) if settings_cls is not Settings else new


# ----------------------------------------------------------------------------- weights paths
def weights_path(path: str | Path | None) -> Path | None:
    """A weights-file setting as a path: absolute as given; relative to the project root
    (``weights/book/...`` in the book profile's recipes), so that it does not depend on the
    working directory (notebooks run in ``notebooks/``)."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    from reidlib.config import find_project_root

    return find_project_root(Path(__file__).parent) / p


# ----------------------------------------------------------------------------- the standard batch
def relabelled_image_dataset(dataset, pid2label: dict[int, int], cfg: TrainConfig, with_mask: bool = False):
    """The standard training set: ``dataset.train`` images through the training transform
    (resize, flip, pad + crop, random erasing per ``cfg``), labelled ``0..N-1``."""
    from reidlib.data.loader import ImageDataset
    from reidlib.data.transforms import build_train_transform

    tf = build_train_transform(cfg.image_size, flip=cfg.flip, pad=cfg.pad, random_erasing=cfg.random_erasing)
    return ImageDataset(dataset.train, dataset, transform=tf, with_mask=with_mask, relabel=pid2label)
