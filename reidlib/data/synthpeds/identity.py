"""SynthPeds identities: region prototypes and the identity table.

An identity is a combination of one *prototype* per body region -- head (skin, hair,
hat, glasses), upper garment (colours, pattern, sleeves), lower garment (kind, colour,
shoes), carried item (kind, side, colour) -- plus a body shape.  Each region is drawn
from a small palette of prototypes (:data:`~.calibration.CALIBRATION` sets the palette
sizes), so every region alone is shared by many identities: only the combination
identifies a person, and a partial view loses real information.

The identity table of a seed is one sequence shared by every preset; presets take
disjoint slices of it (see :mod:`.dataset`), so e.g. the partial test sets never reuse a
training identity.  Two identities of the table differ in at least
``min_region_difference`` regions.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .calibration import CALIBRATION, SYNTHPEDS_VERSION

REGIONS = ("head", "upper", "lower", "carried")

#: Named garment colours (RGB).
GARMENT_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32), "white": (226, 226, 220), "grey": (128, 128, 130), "darkgrey": (70, 70, 74),
    "navy": (30, 40, 90), "blue": (40, 80, 180), "lightblue": (120, 170, 220), "red": (180, 30, 35),
    "darkred": (110, 25, 35), "green": (40, 130, 60), "olive": (100, 110, 50), "beige": (200, 180, 140),
    "brown": (110, 70, 40), "yellow": (225, 200, 40), "pink": (230, 140, 170), "purple": (110, 50, 140),
    "orange": (230, 120, 30), "teal": (30, 130, 130),
}
SKIN_TONES = ((245, 210, 180), (230, 185, 150), (205, 150, 110), (170, 115, 80), (125, 85, 60), (90, 60, 45))
HAIR_COLOURS = ((20, 16, 14), (60, 40, 25), (110, 75, 40), (170, 130, 70), (215, 190, 130), (140, 140, 140), (150, 60, 30))
HAIR_STYLES = ("short", "long", "bald", "ponytail", "bun")
HATS = (None, None, None, "cap", "beanie")
PATTERNS = ("plain", "hstripes", "vstripes", "split", "print", "checks")
PRINT_POSITIONS = ("centre", "left", "right", "low")
LOWER_KINDS = ("trousers", "trousers", "shorts", "skirt")
CARRIED_KINDS = (None, "backpack", "shoulder_bag", "handbag")
SHOE_COLOURS = ("black", "white", "brown", "grey", "navy", "red")
TIGHTS = ("black", "darkgrey", "navy")


def _colour(rng: np.random.Generator, names: tuple[str, ...] | list[str], jitter: float) -> tuple[str, tuple[int, int, int]]:
    name = names[int(rng.integers(len(names)))]
    base = np.array(GARMENT_COLOURS[name], dtype=np.float64)
    rgb = np.clip(base + rng.normal(0.0, jitter, 3), 0, 255).round().astype(int)
    return name, tuple(int(v) for v in rgb)


def _make_head(rng, jitter):
    style = HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))]
    hat = HATS[int(rng.integers(len(HATS)))]
    hat_colour = _colour(rng, list(GARMENT_COLOURS), jitter) if hat else None
    skin = int(rng.integers(len(SKIN_TONES)))
    hair = int(rng.integers(len(HAIR_COLOURS)))
    glasses = bool(rng.random() < 0.22)
    key = (style, hat, hat_colour[0] if hat_colour else None, skin, hair, glasses)
    return key, {
        "skin": SKIN_TONES[skin], "hair_colour": HAIR_COLOURS[hair], "hair_style": style,
        "hat": hat, "hat_colour": hat_colour[1] if hat_colour else None,
        "hat_colour_name": hat_colour[0] if hat_colour else None, "glasses": glasses,
    }


def _make_upper(rng, jitter):
    names = list(GARMENT_COLOURS)
    n1, c1 = _colour(rng, names, jitter)
    n2, c2 = _colour(rng, [n for n in names if n != n1], jitter)
    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    param = None
    if pattern == "print":
        param = PRINT_POSITIONS[int(rng.integers(len(PRINT_POSITIONS)))]
    elif pattern == "split":
        param = ("horizontal", "vertical")[int(rng.integers(2))]
    elif pattern in ("hstripes", "vstripes", "checks"):
        param = float(rng.choice([0.035, 0.05, 0.07]))
    sleeves = ("short", "long")[int(rng.integers(2))]
    key = (n1, n2 if pattern != "plain" else None, pattern, param, sleeves)
    return key, {"colour": c1, "colour_name": n1, "colour2": c2, "colour2_name": n2,
                 "pattern": pattern, "pattern_param": param, "sleeves": sleeves}


def _make_lower(rng, jitter):
    kind = LOWER_KINDS[int(rng.integers(len(LOWER_KINDS)))]
    n, c = _colour(rng, list(GARMENT_COLOURS), jitter)
    sn, sc = _colour(rng, SHOE_COLOURS, jitter * 0.5)
    if kind == "trousers" or rng.random() < 0.6:
        legwear = None  # bare legs (skin) below shorts / skirt
    else:
        legwear = TIGHTS[int(rng.integers(len(TIGHTS)))]
    key = (kind, n, sn, legwear)
    return key, {"kind": kind, "colour": c, "colour_name": n, "shoes": sc, "shoes_name": sn,
                 "legwear": None if legwear is None else GARMENT_COLOURS[legwear], "legwear_name": legwear}


def _make_carried(rng, jitter, first: bool):
    kind = None if first else CARRIED_KINDS[1 + int(rng.integers(len(CARRIED_KINDS) - 1))]
    if kind is None:
        return (None,), {"kind": None, "side": None, "colour": None, "colour_name": None}
    side = ("left", "right")[int(rng.integers(2))]
    n, c = _colour(rng, ["black", "darkgrey", "navy", "brown", "red", "beige", "green", "blue", "pink", "olive"], jitter)
    return (kind, side, n), {"kind": kind, "side": side, "colour": c, "colour_name": n}


def _make_shape(rng, jitter):
    h = float(rng.uniform(0.88, 1.0))
    w = float(rng.uniform(0.85, 1.2))
    return (round(h, 3), round(w, 3)), {"height": h, "width": w}


def _palette(seed: int, region: str, size: int, maker) -> list[dict]:
    rng = np.random.default_rng([seed, 7001, zlib.crc32(region.encode()), SYNTHPEDS_VERSION])
    keys: set = set()
    out: list[dict] = []
    tries = 0
    while len(out) < size:
        tries += 1
        if tries > 10000:
            raise RuntimeError(f"cannot draw {size} distinct {region} prototypes; lower the palette size in CALIBRATION")
        if region == "carried":
            key, proto = maker(rng, CALIBRATION.prototype_colour_jitter, len(out) == 0)
        else:
            key, proto = maker(rng, CALIBRATION.prototype_colour_jitter)
        if key in keys:
            continue
        keys.add(key)
        out.append(proto)
    return out


@dataclass
class IdentitySpace:
    """The region palettes and the identity table of one seed.

    ``table[i] = (head, upper, lower, carried, shape)`` prototype indices of identity ``i``.
    """

    seed: int
    palettes: dict[str, list[dict]]
    table: np.ndarray  # (N, 5) int

    #: carried-item prototype 0 is "nothing"; it is drawn with this probability.
    P_NOTHING_CARRIED = 0.3

    def attributes(self, row) -> dict:
        """The full attribute dict of a prototype-index row ``(head, upper, lower, carried, shape)``."""
        h, u, l, c, s = (int(v) for v in row)
        return {
            "head": self.palettes["head"][h], "upper": self.palettes["upper"][u],
            "lower": self.palettes["lower"][l], "carried": self.palettes["carried"][c],
            "shape": self.palettes["shape"][s],
            "prototypes": {"head": h, "upper": u, "lower": l, "carried": c, "shape": s},
        }

    def random_rows(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` unconstrained identities (for occluding passers-by)."""
        return _draw_rows(rng, n, self.palettes)


def _draw_rows(rng, n, palettes) -> np.ndarray:
    sizes = [len(palettes[r]) for r in (*REGIONS, "shape")]
    rows = np.stack([rng.integers(s, size=n) for s in sizes], axis=1)
    # carried: prototype 0 (nothing) with probability P_NOTHING_CARRIED, else uniform over the bags
    nothing = rng.random(n) < IdentitySpace.P_NOTHING_CARRIED
    bags = 1 + rng.integers(sizes[3] - 1, size=n)
    rows[:, 3] = np.where(nothing, 0, bags)
    return rows


@lru_cache(maxsize=8)
def identity_space(seed: int, n: int) -> IdentitySpace:
    """The first ``n`` identities of the seed's table (a prefix: larger ``n`` extends it)."""
    cal = CALIBRATION
    palettes = {
        "head": _palette(seed, "head", cal.palette_head, _make_head),
        "upper": _palette(seed, "upper", cal.palette_upper, _make_upper),
        "lower": _palette(seed, "lower", cal.palette_lower, _make_lower),
        "carried": _palette(seed, "carried", cal.palette_carried, _make_carried),
        "shape": _palette(seed, "shape", cal.palette_shape, _make_shape),
    }
    rng = np.random.default_rng([seed, 7002, SYNTHPEDS_VERSION])
    k = len(REGIONS)
    drop = k - cal.min_region_difference + 1  # keys: all subsets of regions of this size
    from itertools import combinations

    subsets = list(combinations(range(k), drop))
    used: set = set()
    full: set = set()
    rows: list = []
    batches = 0
    while len(rows) < n:
        batches += 1
        if batches > 200:
            raise RuntimeError(
                f"cannot draw {n} identities differing in >= {cal.min_region_difference} regions with palettes "
                f"{[len(palettes[r]) for r in REGIONS]}; enlarge the palettes in CALIBRATION"
            )
        for row in _draw_rows(rng, 4096, palettes):
            t = tuple(int(v) for v in row)
            keys = [(s, tuple(t[j] for j in s)) for s in subsets]
            if t[:k] in full or any(key in used for key in keys):
                continue
            used.update(keys)
            full.add(t[:k])
            rows.append(t)
            if len(rows) == n:
                break
    return IdentitySpace(seed=seed, palettes=palettes, table=np.array(rows, dtype=np.int64))
