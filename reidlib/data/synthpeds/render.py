"""The SynthPeds renderer: a pedestrian drawn from primitives, a camera, occluders.

Drawing: every body part is a filled primitive (ellipse, polygon, limb) rasterised by
Pillow into a *material map* (uint8, one id per material: hair, face skin, upper
garment, ...) on a canvas at least ``CALIBRATION.canvas_height`` pixels tall (an integer
multiple of the output size).  Everything
else is vectorised numpy on whole arrays: a colour look-up ``table[material]``, the
garment patterns (stripes, checks, split) as boolean functions of precomputed
coordinate grids, cylindrical shading, compositing over the camera background,
box-downsampling (anti-aliasing), camera gain / white balance, resolution loss, blur
and noise.  The part mask is ``MATERIAL_PART[material]`` at the output size, with
person pixels under an occluder set to ``OCCLUDED``.

Nothing here draws random numbers on its own: every function takes the per-image
``np.random.Generator`` so an image is a pure function of ``(seed, split, index)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..base import FEET, HEAD, LOWER, OCCLUDED, UPPER
from .calibration import CALIBRATION

# materials of the material map (0 = background)
(M_BG, M_HAIR, M_FACE, M_HAT, M_GLASSES, M_UPPER1, M_UPPER2, M_ARM, M_BAG, M_BAG_DARK,
 M_LOWER, M_LEG, M_SHOE, M_HANDBAG) = range(14)
N_MATERIALS = 16
#: part label of every material (carried items: backpack / shoulder bag -> upper, handbag -> lower)
MATERIAL_PART = np.zeros(256, dtype=np.uint8)
MATERIAL_PART[[M_HAIR, M_FACE, M_HAT, M_GLASSES]] = HEAD
MATERIAL_PART[[M_UPPER1, M_UPPER2, M_ARM, M_BAG, M_BAG_DARK]] = UPPER
MATERIAL_PART[[M_LOWER, M_LEG, M_HANDBAG]] = LOWER
MATERIAL_PART[M_SHOE] = FEET

VIEWS = ("front", "back", "side")


@dataclass
class Pose:
    view: str  # front | back | side
    facing: int  # +1 right, -1 left (side view); +1 otherwise
    phase: float  # walking phase (radians)
    arm_amp: float  # 0..1


class _Painter:
    """Draws primitives given in person coordinates: u across (fraction of the person
    height, mirrored by the facing), v down from the top of the head (fraction of height)."""

    def __init__(self, draw: ImageDraw.ImageDraw, xc: float, ytop: float, ph: float, facing: int):
        self.d, self.xc, self.ytop, self.ph, self.f = draw, xc, ytop, ph, facing

    def pt(self, u, v):
        return (self.xc + self.f * u * self.ph, self.ytop + v * self.ph)

    def ellipse(self, cu, cv, ru, rv, m):
        x, y = self.pt(cu, cv)
        rx, ry = abs(ru) * self.ph, abs(rv) * self.ph
        self.d.ellipse((x - rx, y - ry, x + rx, y + ry), fill=m)

    def poly(self, pts, m):
        self.d.polygon([self.pt(u, v) for u, v in pts], fill=m)

    def rect(self, u0, v0, u1, v1, m):
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], m)

    def limb(self, p0, p1, w0, w1, m, caps=True):
        (u0, v0), (u1, v1) = p0, p1
        du, dv = u1 - u0, v1 - v0
        n = math.hypot(du, dv) or 1e-6
        nu, nv = -dv / n, du / n
        self.poly([(u0 + nu * w0 / 2, v0 + nv * w0 / 2), (u1 + nu * w1 / 2, v1 + nv * w1 / 2),
                   (u1 - nu * w1 / 2, v1 - nv * w1 / 2), (u0 - nu * w0 / 2, v0 - nv * w0 / 2)], m)
        if caps:
            self.ellipse(u0, v0, w0 / 2, w0 / 2, m)
            self.ellipse(u1, v1, w1 / 2, w1 / 2, m)


def _rot(p, length, angle_deg):
    a = math.radians(angle_deg)
    return (p[0] + length * math.sin(a), p[1] + length * math.cos(a))


def draw_person(draw: ImageDraw.ImageDraw, att: dict, pose: Pose, xc: float, ytop: float, ph: float) -> dict:
    """Draw one person into the material map; return its torso geometry (canvas pixels)."""
    P = _Painter(draw, xc, ytop, ph, pose.facing)
    wf = att["shape"]["width"]
    head, up, lo, car = att["head"], att["upper"], att["lower"], att["carried"]
    view = pose.view
    s = math.sin(pose.phase)
    legs = M_LEG
    lower_kind = lo["kind"]
    sleeve_end = 0.30 if up["sleeves"] == "short" else None
    hair_style = head["hair_style"]
    geo: dict = {}
    if view in ("front", "back"):
        sw, ww, hw = 0.112 * wf, 0.094 * wf, 0.098 * wf
        # which image side is the person's right: front view -> image left (u < 0)
        right_sign = -1 if view == "front" else 1
        if view == "front" and hair_style == "long":
            P.poly([(-0.062, 0.06), (0.062, 0.06), (0.07, 0.24), (-0.07, 0.24)], M_HAIR)
        # legs: skin / tights, then the lower garment
        lift = 0.025 * s
        ankles = []
        for side in (-1, 1):
            hip = (side * 0.048 * wf, 0.52)
            knee = (side * 0.05 * wf, 0.72 - max(0.0, side * lift) * 0.5)
            ankle = (side * 0.048 * wf, 0.935 - max(0.0, side * lift))
            ankles.append(ankle)
            P.limb(hip, knee, 0.072 * wf, 0.056 * wf, legs)
            P.limb(knee, ankle, 0.056 * wf, 0.044 * wf, legs)
            if lower_kind == "trousers":
                P.limb(hip, knee, 0.082 * wf, 0.066 * wf, M_LOWER)
                P.limb(knee, (ankle[0], ankle[1] - 0.005), 0.066 * wf, 0.058 * wf, M_LOWER, caps=False)
            elif lower_kind == "shorts":
                P.limb(hip, (knee[0], 0.64), 0.084 * wf, 0.074 * wf, M_LOWER, caps=False)
        for a in ankles:
            P.ellipse(a[0], a[1] + 0.028, 0.034 * wf, 0.024, M_SHOE)
        if lower_kind == "skirt":
            P.poly([(-hw, 0.47), (hw, 0.47), (hw * 1.55, 0.71), (-hw * 1.55, 0.71)], M_LOWER)
        else:
            P.poly([(-hw - 0.004, 0.47), (hw + 0.004, 0.47), (hw + 0.004, 0.57), (-hw - 0.004, 0.57)], M_LOWER)
        # arms (skin, then sleeves) behind the torso edge, torso
        swing = 0.035 * pose.arm_amp * abs(s)
        arm_pts = {}
        for side in (-1, 1):
            sh = (side * (sw - 0.022), 0.195)
            el = (side * (sw + 0.008), 0.335 - swing * 0.5)
            wr = (side * (sw + 0.004), 0.465 - swing * (1.2 if side * s > 0 else 0.6))
            arm_pts[side] = (sh, el, wr)
            P.limb(sh, el, 0.05 * wf, 0.042 * wf, M_ARM)
            P.limb(el, wr, 0.042 * wf, 0.036 * wf, M_ARM)
            P.ellipse(wr[0], wr[1] + 0.012, 0.022, 0.026, M_ARM)
            if sleeve_end is None:
                P.limb(sh, el, 0.058 * wf, 0.05 * wf, M_UPPER1)
                P.limb(el, (wr[0], wr[1] - 0.01), 0.05 * wf, 0.045 * wf, M_UPPER1)
            else:
                e2 = (sh[0] + (el[0] - sh[0]) * 0.75, sh[1] + (el[1] - sh[1]) * 0.75)
                P.limb(sh, e2, 0.06 * wf, 0.054 * wf, M_UPPER1, caps=False)
                P.ellipse(sh[0], sh[1], 0.03 * wf, 0.03 * wf, M_UPPER1)
        torso = [(-sw, 0.175), (sw, 0.175), (ww + 0.004, 0.40), (hw + 0.006, 0.535), (-hw - 0.006, 0.535), (-ww - 0.004, 0.40)]
        P.poly(torso, M_UPPER1)
        P.rect(-0.024, 0.12, 0.024, 0.185, M_FACE)  # neck
        geo["torso_box"] = (P.pt(-sw, 0.175)[0], P.pt(0, 0.175)[1], P.pt(sw, 0.175)[0], P.pt(0, 0.535)[1])
        if view == "front" and up["pattern"] == "print":
            pos = up["pattern_param"]
            cu, cv, r = {"centre": (0.0, 0.27, 0.045), "left": (0.045, 0.24, 0.028),
                         "right": (-0.045, 0.24, 0.028), "low": (0.0, 0.39, 0.04)}[pos]
            P.rect(cu - r, cv - r * 0.8, cu + r, cv + r * 0.8, M_UPPER2)
            P.ellipse(cu, cv, r * 0.45, r * 0.45, M_UPPER1)
        # head
        if view == "back":
            P.ellipse(0, 0.072, 0.052, 0.068, M_FACE if hair_style == "bald" else M_HAIR)
            if hair_style == "long":
                P.poly([(-0.056, 0.07), (0.056, 0.07), (0.066, 0.25), (-0.066, 0.25)], M_HAIR)
            elif hair_style == "ponytail":
                P.limb((0, 0.1), (0, 0.21), 0.032, 0.022, M_HAIR)
        else:
            if hair_style != "bald":
                P.ellipse(0, 0.07, 0.055, 0.072, M_HAIR)
                P.ellipse(0, 0.086, 0.045, 0.058, M_FACE)
            else:
                P.ellipse(0, 0.075, 0.05, 0.068, M_FACE)
        if hair_style == "bun":
            P.ellipse(0, 0.005, 0.024, 0.02, M_HAIR)
        if head["glasses"] and view == "front":
            P.rect(-0.04, 0.074, 0.04, 0.088, M_GLASSES)
        # carried items
        kind, cside = car["kind"], car["side"]
        cs = 0 if cside is None else (right_sign if cside == "right" else -right_sign)
        if kind == "backpack":
            if view == "back":
                P.rect(-0.082 * wf, 0.2, 0.082 * wf, 0.43, M_BAG)
                P.ellipse(0, 0.205, 0.082 * wf, 0.03, M_BAG)
                P.rect(-0.055 * wf, 0.33, 0.055 * wf, 0.41, M_BAG_DARK)
            else:
                for side in (-1, 1):
                    P.limb((side * (sw - 0.035), 0.178), (side * (sw - 0.03), 0.36), 0.018, 0.018, M_BAG_DARK, caps=False)
        elif kind == "shoulder_bag":
            P.limb((-cs * (sw - 0.03), 0.18), (cs * (hw + 0.02), 0.45), 0.014, 0.014, M_BAG_DARK, caps=False)
            P.rect(cs * (hw - 0.005), 0.44, cs * (hw + 0.075), 0.55, M_BAG)
        elif kind == "handbag":
            wr = arm_pts[cs][2]
            P.rect(wr[0] - 0.035, wr[1] + 0.03, wr[0] + 0.035, wr[1] + 0.105, M_HANDBAG)
            P.limb((wr[0] - 0.015, wr[1] + 0.032), (wr[0], wr[1] + 0.012), 0.008, 0.008, M_HANDBAG, caps=False)
        # hats last
        if head["hat"] == "cap":
            P.ellipse(0, 0.035, 0.056, 0.038, M_HAT)
            if view == "front":
                P.ellipse(0, 0.052, 0.06, 0.012, M_HAT)
        elif head["hat"] == "beanie":
            P.ellipse(0, 0.03, 0.056, 0.044, M_HAT)
        geo["print_visible"] = view == "front" and up["pattern"] == "print"
        geo["backpack_visible"] = kind == "backpack" and view == "back"
        return geo

    # ---- side view: +u is the walking direction ----
    d = 0.062 * wf
    near_left = pose.facing == 1  # walking right: the person's left side faces the camera
    a = CALIBRATION.arm_swing * pose.arm_amp * s
    t = CALIBRATION.leg_swing * s
    sh = (0.0, 0.2)
    hip = (0.0, 0.52)

    def arm(angle):
        el = _rot(sh, 0.145, angle)
        wr = _rot(el, 0.135, angle + 12 + max(0.0, angle) * 0.4)
        P.limb(sh, el, 0.05 * wf, 0.042 * wf, M_ARM)
        P.limb(el, wr, 0.042 * wf, 0.036 * wf, M_ARM)
        P.ellipse(wr[0], wr[1] + 0.01, 0.022, 0.026, M_ARM)
        if sleeve_end is None:
            P.limb(sh, el, 0.058 * wf, 0.05 * wf, M_UPPER1)
            P.limb(el, _rot(el, 0.12, angle + 12 + max(0.0, angle) * 0.4), 0.05 * wf, 0.045 * wf, M_UPPER1)
        else:
            P.limb(sh, _rot(sh, 0.11, angle), 0.06 * wf, 0.054 * wf, M_UPPER1)
        return wr

    def leg(angle):
        knee = _rot(hip, 0.205, angle)
        bend = 18.0 * (1 - math.cos(pose.phase)) / 2 if angle < 0 else 4.0
        ankle = _rot(knee, 0.205, angle - bend)
        P.limb(hip, knee, 0.078 * wf, 0.058 * wf, legs)
        P.limb(knee, ankle, 0.058 * wf, 0.046 * wf, legs)
        if lower_kind == "trousers":
            P.limb(hip, knee, 0.088 * wf, 0.068 * wf, M_LOWER)
            P.limb(knee, ankle, 0.068 * wf, 0.058 * wf, M_LOWER, caps=False)
        elif lower_kind == "shorts":
            P.limb(hip, _rot(hip, 0.12, angle), 0.09 * wf, 0.08 * wf, M_LOWER, caps=False)
        P.ellipse(ankle[0] + 0.028, ankle[1] + 0.028, 0.05, 0.022, M_SHOE)
        return ankle

    kind, cside = car["kind"], car["side"]
    bag_near = cside is not None and ((cside == "left") == near_left)
    wr_far = arm(-a)
    if kind == "handbag" and not bag_near:
        P.rect(wr_far[0] - 0.03, wr_far[1] + 0.03, wr_far[0] + 0.03, wr_far[1] + 0.1, M_HANDBAG)
    if kind == "backpack":
        P.rect(-d - 0.075, 0.19, -d + 0.02, 0.43, M_BAG)
    leg(-t)
    leg(t)
    if lower_kind == "skirt":
        P.poly([(-d - 0.005, 0.47), (d + 0.005, 0.47), (d + 0.05, 0.71), (-d - 0.06, 0.71)], M_LOWER)
    else:
        P.poly([(-d - 0.004, 0.47), (d + 0.004, 0.47), (d + 0.01, 0.57), (-d - 0.01, 0.57)], M_LOWER)
    if kind == "shoulder_bag" and not bag_near:
        P.rect(-0.05, 0.44, 0.02, 0.54, M_BAG)
    torso = [(-d * 0.95, 0.17), (d * 0.9, 0.17), (d * 1.08, 0.38), (d + 0.004, 0.535), (-d - 0.004, 0.535), (-d * 1.05, 0.40)]
    P.poly(torso, M_UPPER1)
    P.rect(-0.018, 0.12, 0.02, 0.185, M_FACE)
    xa, xb = sorted((P.pt(-d, 0.17)[0], P.pt(d, 0.17)[0]))
    geo["torso_box"] = (xa, P.pt(0, 0.17)[1], xb, P.pt(0, 0.535)[1])
    if kind == "backpack":
        P.limb((-d * 0.4, 0.18), (-d * 0.6, 0.36), 0.016, 0.016, M_BAG_DARK, caps=False)
    if hair_style == "long":
        P.poly([(-0.05, 0.06), (0.0, 0.06), (-0.01, 0.24), (-0.06, 0.24)], M_HAIR)
    P.ellipse(0.008, 0.075, 0.048, 0.068, M_FACE)
    if hair_style != "bald":
        P.ellipse(-0.012, 0.062, 0.046, 0.06, M_HAIR)
    if hair_style == "ponytail":
        P.limb((-0.045, 0.08), (-0.07, 0.17), 0.026, 0.018, M_HAIR)
    elif hair_style == "bun":
        P.ellipse(-0.04, 0.025, 0.022, 0.02, M_HAIR)
    if head["glasses"]:
        P.rect(0.012, 0.072, 0.056, 0.084, M_GLASSES)
    if head["hat"] == "cap":
        P.ellipse(0, 0.035, 0.054, 0.036, M_HAT)
        P.ellipse(0.055, 0.05, 0.03, 0.01, M_HAT)
    elif head["hat"] == "beanie":
        P.ellipse(-0.004, 0.03, 0.054, 0.042, M_HAT)
    wr_near = arm(a)
    if kind == "shoulder_bag":
        if bag_near:
            P.limb((0.02, 0.18), (-0.03, 0.45), 0.014, 0.014, M_BAG_DARK, caps=False)
            P.rect(-0.05, 0.44, 0.03, 0.55, M_BAG)
    elif kind == "handbag" and bag_near:
        P.rect(wr_near[0] - 0.03, wr_near[1] + 0.03, wr_near[0] + 0.03, wr_near[1] + 0.1, M_HANDBAG)
    geo["print_visible"] = False
    geo["backpack_visible"] = kind == "backpack"
    return geo


def colour_table(att: dict, rng: np.random.Generator, noise: float) -> np.ndarray:
    """``(N_MATERIALS, 3)`` float32 RGB of every material for one image (with colour noise)."""
    t = np.zeros((N_MATERIALS, 3), dtype=np.float32)
    head, up, lo, car = att["head"], att["upper"], att["lower"], att["carried"]
    t[M_HAIR] = head["hair_colour"]
    t[M_FACE] = head["skin"]
    t[M_HAT] = head["hat_colour"] or (0, 0, 0)
    t[M_GLASSES] = (20, 20, 25)
    t[M_UPPER1] = up["colour"]
    t[M_UPPER2] = up["colour2"]
    t[M_ARM] = head["skin"]
    bag = car["colour"] or (0, 0, 0)
    t[M_BAG] = bag
    t[M_BAG_DARK] = np.asarray(bag, dtype=np.float32) * 0.62
    t[M_LOWER] = lo["colour"]
    t[M_LEG] = lo["legwear"] if lo["legwear"] is not None else head["skin"]
    t[M_SHOE] = lo["shoes"]
    t[M_HANDBAG] = bag
    t[1:] += rng.normal(0.0, noise, (N_MATERIALS - 1, 3)).astype(np.float32)
    return t


def apply_pattern(mat: np.ndarray, up: dict, torso_box, ph: float, grids) -> None:
    """Turn part of the upper garment (material UPPER1) into UPPER2 following the pattern (in place)."""
    pattern = up["pattern"]
    if pattern in ("plain", "print"):
        return
    x0, y0, x1, y1 = (int(round(v)) for v in torso_box)
    H, W = mat.shape
    # the garment's extent: torso plus sleeves
    y0, y1 = max(0, y0 - 2), min(H, int(y1 + 2))
    xa, xb = max(0, int(x0 - 0.12 * ph)), min(W, int(x1 + 0.12 * ph))
    if y1 <= y0 or xb <= xa:
        return
    win = mat[y0:y1, xa:xb]
    yy = grids[0][y0:y1, None] - y0
    xx = grids[1][None, xa:xb] - (x0 + x1) / 2.0
    if pattern == "split":
        sel = (yy > (y1 - y0) * 0.45) if up["pattern_param"] == "horizontal" else (xx > 0)
        sel = np.broadcast_to(sel, win.shape)
    else:
        period = max(2.0, up["pattern_param"] * ph)
        hs = (np.floor(yy / (period / 2)) % 2) == 1
        vs = (np.floor(xx / (period / 2)) % 2) == 1
        sel = {"hstripes": hs, "vstripes": vs, "checks": hs ^ vs}[pattern]
        sel = np.broadcast_to(sel, win.shape)
    win[(win == M_UPPER1) & sel] = M_UPPER2


@dataclass
class Camera:
    """One camera: background, illumination, white balance, viewpoint mix, optics, detector."""

    index: int
    gain: float
    white_balance: tuple[float, float, float]
    view_probs: tuple[float, float, float]  # front, back, side
    downscale: float
    blur: float  # radius in pixels at 256x128
    light_dir: float  # -1..1, where the shading highlight sits
    wall: tuple[int, int, int]
    floor: tuple[int, int, int]
    horizon: float
    wall_style: str
    floor_style: str
    clutter: list = field(default_factory=list)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        return d


WALL_STYLES = ("bricks", "panels", "windows", "foliage", "plain")
FLOOR_STYLES = ("tiles", "asphalt", "stripes")

# designed viewpoint mixes (front, back, side), one per camera; perturbed by the seed
_VIEW_MIXES = ((0.6, 0.15, 0.25), (0.15, 0.6, 0.25), (0.2, 0.2, 0.6), (0.4, 0.4, 0.2), (0.35, 0.25, 0.4), (0.25, 0.35, 0.4))


def _muted(rng, lo: int, hi: int, sat: float = 0.45) -> tuple[int, int, int]:
    """A random colour pulled towards grey (street scenes are not saturated)."""
    c = rng.integers(lo, hi, 3).astype(np.float64)
    c = c.mean() + sat * (c - c.mean())
    return tuple(int(v) for v in c.round())


def make_cameras(seed: int, n: int = 6) -> list[Camera]:
    from .calibration import SYNTHPEDS_VERSION

    cal = CALIBRATION
    rng = np.random.default_rng([seed, 7003, SYNTHPEDS_VERSION])
    cams = []
    for i in range(n):
        vm = np.asarray(_VIEW_MIXES[i % len(_VIEW_MIXES)]) + rng.uniform(0, 0.08, 3)
        vm = vm / vm.sum()
        wb = 1.0 + rng.uniform(-cal.white_balance, cal.white_balance, 3)
        wb = wb / wb.mean()
        clutter = []
        for _ in range(int(rng.integers(2, 6))):
            clutter.append((float(rng.uniform(0, 1)), float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.05, 0.3)),
                            float(rng.uniform(0.05, 0.4)), _muted(rng, 30, 220)))
        cams.append(Camera(
            index=i, gain=float(rng.uniform(*cal.illumination)), white_balance=tuple(float(v) for v in wb),
            view_probs=tuple(float(v) for v in vm), downscale=float(rng.uniform(*cal.downscale)),
            blur=float(rng.uniform(*cal.blur)), light_dir=float(rng.uniform(-0.6, 0.6)),
            wall=_muted(rng, 70, 200), floor=_muted(rng, 50, 160),
            horizon=float(rng.uniform(0.45, 0.75)), wall_style=WALL_STYLES[int(rng.integers(len(WALL_STYLES)))],
            floor_style=FLOOR_STYLES[int(rng.integers(len(FLOOR_STYLES)))], clutter=clutter,
        ))
    return cams


def _lowfreq(rng, h, w, gh=6, gw=4) -> np.ndarray:
    small = (rng.random((gh, gw)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0 - 0.5


def camera_background(cam: Camera, seed: int, Hc: int, Wc: int) -> np.ndarray:
    """A float32 ``(1.25 Hc, 1.5 Wc, 3)`` background texture for the camera (per-image windows are cut from it)."""
    from .calibration import SYNTHPEDS_VERSION

    rng = np.random.default_rng([seed, 7004, cam.index, Hc, Wc, SYNTHPEDS_VERSION])
    TH, TW = int(Hc * 1.25), int(Wc * 1.5)
    yy = np.arange(TH, dtype=np.float32)[:, None]
    xx = np.arange(TW, dtype=np.float32)[None, :]
    hz = int(cam.horizon * TH)
    bg = np.empty((TH, TW, 3), dtype=np.float32)
    wall = np.asarray(cam.wall, np.float32)
    floor = np.asarray(cam.floor, np.float32)
    lf = _lowfreq(rng, TH, TW)[..., None]
    bg[:hz] = wall * (1 + 0.35 * lf[:hz])
    bg[hz:] = floor * (1 + 0.3 * lf[hz:]) * (0.85 + 0.3 * (yy[hz:, :, None] - hz) / max(1, TH - hz))
    u = Hc / 64.0  # texture unit
    style = cam.wall_style
    wy, wx = yy[:hz], xx
    if style == "bricks":
        bh = 4 * u
        row = np.floor(wy / bh)
        mortar = ((wy % bh) < 0.6 * u) | (((wx + (row % 2) * 4 * u) % (8 * u)) < 0.6 * u)
        bg[:hz][mortar] *= 0.7
    elif style == "panels":
        bg[:hz][np.broadcast_to((wx // (10 * u)) % 2 == 1, (hz, TW))] *= 0.82
    elif style == "windows":
        win = ((wy % (18 * u)) > 6 * u) & ((wx % (14 * u)) > 5 * u)
        bg[:hz][win] = bg[:hz][win] * 0.45 + np.asarray((90, 120, 150), np.float32) * 0.3
    elif style == "foliage":
        f = _lowfreq(rng, hz, TW, 14, 10)[..., None]
        bg[:hz] = bg[:hz] * 0.5 + np.asarray((50, 110, 50), np.float32) * (0.8 + 1.2 * f)
    fy = yy[hz:] - hz
    if cam.floor_style == "tiles":
        t = 6 * u
        lines = ((fy % t) < 0.5 * u) | (((xx - TW / 2) * (0.6 + fy / TH) % (2 * t)) < 0.6 * u)
        bg[hz:][lines] *= 0.8
    elif cam.floor_style == "asphalt":
        bg[hz:] *= (1 + 0.25 * (rng.random((TH - hz, TW, 1)).astype(np.float32) - 0.5))
    else:
        bg[hz:][np.broadcast_to((fy // (5 * u)) % 3 == 0, (TH - hz, TW))] *= 0.88
    # the camera's fixed clutter (benches, bins, doors, signs)
    for cx, cy, w, h, col in cam.clutter:
        x0, y0 = int(cx * TW), int(cy * TH)
        x1, y1 = min(TW, x0 + int(w * TW)), min(TH, y0 + int(h * TH))
        bg[y0:y1, x0:x1] = np.asarray(col, np.float32) * (0.9 + 0.2 * lf[y0:y1, x0:x1])
    return np.clip(bg, 0, 255)


# ---------------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------------
OCCLUDER_KINDS = ("pole", "box", "person", "luggage", "board")
_OCC_POLE, _OCC_BOX, _OCC_TAPE, _OCC_LUG, _OCC_HANDLE, _OCC_BOARD, _OCC_BOARD2 = range(1, 8)

#: image modes: normal pedestrian; distractor (pid 0: a bad detection); junk (pid -1);
#: occluded (an occluder over the body); source (holistic source of a partial crop:
#: the removed part is hidden behind an occluder)
RENDER_MODES = ("normal", "distractor", "junk", "occluded", "source")


def _box_down(a: np.ndarray, ss: int) -> np.ndarray:
    """Average ``ss x ss`` blocks of an ``(H*ss, W*ss, C)`` float array (strided adds: fast)."""
    rows = a[0::ss].copy()
    for k in range(1, ss):
        rows += a[k::ss]
    out = rows[:, 0::ss].copy()
    for k in range(1, ss):
        out += rows[:, k::ss]
    out *= 1.0 / (ss * ss)
    return out


class Renderer:
    """Renders scenes of one seed at one output size ``(H, W)``."""

    def __init__(self, seed: int, size: tuple[int, int], identities, cameras: list[Camera]):
        self.seed = int(seed)
        self.H, self.W = int(size[0]), int(size[1])
        self.ss = max(1, int(round(CALIBRATION.canvas_height / self.H)))
        self.Hc, self.Wc = self.H * self.ss, self.W * self.ss
        self.identities = identities
        self.cameras = cameras
        self.grids = (np.arange(self.Hc, dtype=np.float32), np.arange(self.Wc, dtype=np.float32))
        self._bg: dict[int, np.ndarray] = {}
        nrng = np.random.default_rng([self.seed, 7005, self.H, self.W])
        self._noise = (nrng.normal(0, 1, (2 * self.H, 2 * self.W, 3)) * CALIBRATION.noise_std).astype(np.float32)

    def __getstate__(self):  # caches are rebuilt in the worker
        d = dict(self.__dict__)
        d["_bg"] = {}
        return d

    def background(self, cam: int) -> np.ndarray:
        if cam not in self._bg:
            self._bg[cam] = camera_background(self.cameras[cam], self.seed, self.Hc, self.Wc)
        return self._bg[cam]

    # -- the person -----------------------------------------------------------
    def _pose(self, rng, cam: Camera) -> Pose:
        view = VIEWS[int(rng.choice(3, p=np.asarray(cam.view_probs)))]
        facing = 1 if (view != "side" or rng.random() < 0.5) else -1
        return Pose(view=view, facing=facing, phase=float(rng.uniform(0, 2 * math.pi)),
                    arm_amp=float(rng.uniform(0.3, 1.0)))

    def _placement(self, rng, att: dict, mode: str) -> tuple[float, float, float]:
        cal = CALIBRATION
        Hc, Wc = self.Hc, self.Wc
        if mode == "distractor" and rng.random() < 0.5 or mode == "junk" and rng.random() < 0.7:
            frac = float(rng.uniform(1.4, 2.6))  # a too-tight box: a fragment of a person
            ph = frac * Hc
            return ph, Wc * float(rng.uniform(0.0, 1.0)), -float(rng.uniform(0.0, ph - 0.5 * Hc))
        if mode in ("distractor", "junk"):
            frac = float(rng.uniform(0.3, 0.6))  # a too-loose box: mostly background
            ph = frac * Hc
            return ph, Wc * float(rng.uniform(0.15, 0.85)), float(rng.uniform(0, Hc - ph))
        frac = float(rng.uniform(*cal.box_scale)) * att["shape"]["height"]
        ph = frac * Hc
        xc = Wc / 2 + float(rng.normal(0, cal.box_offset)) * Wc
        ytop = (Hc - ph) * float(rng.uniform(0.3, 0.7)) + float(rng.normal(0, cal.box_offset)) * Hc * 0.5
        return ph, xc, ytop

    # -- occluders --------------------------------------------------------------
    def _occluder(self, rng, kind: str, draw_o, pbox, ph, over_body: bool):
        """Draw an occluder of ``kind`` into the occluder map; ``pbox`` in canvas pixels."""
        Hc, Wc = self.Hc, self.Wc
        x0, y0, x1, y1 = pbox
        cx = (x0 + x1) / 2
        if kind == "pole":
            w = float(rng.uniform(0.08, 0.16)) * Wc
            xm = cx + float(rng.uniform(-0.3, 0.3)) * (x1 - x0) if over_body else float(rng.uniform(0, Wc))
            draw_o.rectangle((xm - w / 2, -1, xm + w / 2, Hc + 1), fill=_OCC_POLE)
        elif kind == "box":
            w = float(rng.uniform(0.55, 1.0)) * Wc
            h = float(rng.uniform(0.3, 0.55) if over_body else rng.uniform(0.15, 0.4)) * ph
            xm = cx + float(rng.uniform(-0.35, 0.35)) * Wc
            yb = min(Hc + 1, y1 + float(rng.uniform(0, 0.05)) * ph)
            draw_o.rectangle((xm - w / 2, yb - h, xm + w / 2, Hc + 1), fill=_OCC_BOX)
            draw_o.rectangle((xm - w / 2, yb - h * 0.6, xm + w / 2, yb - h * 0.5), fill=_OCC_TAPE)
        elif kind == "luggage":
            w = float(rng.uniform(0.3, 0.55)) * Wc
            h = float(rng.uniform(0.28, 0.42)) * ph
            xm = cx + float(rng.uniform(-0.25, 0.25)) * (x1 - x0) * (1 if over_body else 2)
            yb = min(Hc + 1, y1 + 0.01 * ph)
            draw_o.rounded_rectangle((xm - w / 2, yb - h, xm + w / 2, yb), radius=max(1, w * 0.12), fill=_OCC_LUG)
            draw_o.rectangle((xm - w * 0.08, yb - h * 1.35, xm + w * 0.08, yb - h), fill=_OCC_HANDLE)
            draw_o.rectangle((xm - w * 0.3, yb - h * 0.55, xm + w * 0.3, yb - h * 0.5), fill=_OCC_HANDLE)

    def _occ_colours(self, rng) -> np.ndarray:
        t = np.zeros((8, 3), dtype=np.float32)
        t[_OCC_POLE] = rng.choice([[150, 150, 155], [60, 60, 65], [40, 90, 60], [180, 170, 60]])
        t[_OCC_BOX] = np.asarray((170, 130, 85)) * rng.uniform(0.7, 1.15)
        t[_OCC_TAPE] = t[_OCC_BOX] * 0.7
        t[_OCC_LUG] = rng.integers(20, 200, 3)
        t[_OCC_HANDLE] = (30, 30, 30)
        t[_OCC_BOARD] = rng.integers(30, 220, 3)
        t[_OCC_BOARD2] = t[_OCC_BOARD] * 0.75
        return t

    # -- the scene -------------------------------------------------------------
    def render(self, rng: np.random.Generator, att: dict, camid: int, mode: str = "normal",
               crop_spec=None, clean: bool = False, allow_occluder: bool = True, layers: bool = False) -> dict:
        """Render one image.  Returns ``{"image", "mask", "info"}`` (image RGB uint8 (H, W, 3),
        mask uint8 (H, W)).  ``mode`` is one of :data:`RENDER_MODES`; ``crop_spec`` (a
        :class:`~reidlib.data.partial.CropSpec`) is required for ``mode="source"``.
        ``clean=True`` skips the camera degradations (resolution, blur, noise; for tests);
        ``allow_occluder=False`` draws no random occluder in ``normal`` mode (whole-body galleries).
        ``layers=True`` (with ``clean=True``) adds ``"background"`` (the same image without person
        and occluders) and ``"support"`` (output pixels touched by the person or an occluder)."""
        if mode not in RENDER_MODES:
            raise ValueError(f"unknown render mode {mode!r}; accepted: {', '.join(RENDER_MODES)}")
        cal = CALIBRATION
        H, W, Hc, Wc, ss = self.H, self.W, self.Hc, self.Wc, self.ss
        cam = self.cameras[camid]
        pose = self._pose(rng, cam)
        ph, xc, ytop = self._placement(rng, att, mode)
        img = Image.new("L", (Wc, Hc), 0)
        geo = draw_person(ImageDraw.Draw(img), att, pose, xc, ytop, ph)
        M = np.array(img)
        apply_pattern(M, att["upper"], geo["torso_box"], ph, self.grids)
        person = M > 0
        # the person box (output pixels, x1 / y1 exclusive) from the drawn person
        rows, cols = np.flatnonzero(person.any(1)), np.flatnonzero(person.any(0))
        if len(rows):
            pbox_c = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        else:
            pbox_c = (0, 0, 0, 0)
        pbox = (pbox_c[0] // ss, pbox_c[1] // ss, -(-pbox_c[2] // ss), -(-pbox_c[3] // ss))
        # occluders
        occ_img = None
        occ_kind = None
        crop_box = crop_side = None
        kinds = [k for k, _ in cal.occluder_kinds]
        weights = np.asarray([w for _, w in cal.occluder_kinds], dtype=np.float64)
        if mode == "source":
            from ..partial import sample_box

            bw, bh = pbox[2] - pbox[0], pbox[3] - pbox[1]
            (cx0, cy0, cx1, cy1), crop_side = sample_box(bw, bh, crop_spec, rng)
            crop_box = (pbox[0] + cx0, pbox[1] + cy0, pbox[0] + cx1, pbox[1] + cy1)
            # hide the removed part of the body behind a board (an occluder); the crop keeps the rest
            occ_img = Image.new("L", (Wc, Hc), 0)
            do = ImageDraw.Draw(occ_img)
            X0, Y0, X1, Y1 = (v * ss for v in crop_box)
            rect = {"top": (-1, Y1, Wc + 1, Hc + 1), "bottom": (-1, -1, Wc + 1, Y0 - 1),
                    "left": (X1, -1, Wc + 1, Hc + 1), "right": (-1, -1, X0 - 1, Hc + 1)}[crop_side]
            if rect[2] > rect[0] and rect[3] > rect[1]:
                do.rectangle(rect, fill=_OCC_BOARD)
                step = max(2, int(rng.integers(4, 10)) * ss)
                for y in range(int(rect[1]) + step // 2, int(rect[3]), step):
                    do.rectangle((rect[0], y, rect[2], y + ss - 1), fill=_OCC_BOARD2)
                occ_kind = "board"
        elif mode == "occluded" or (mode == "normal" and rng.random() < cal.occluder_prob and allow_occluder):
            occ_kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            occ_img = Image.new("L", (Wc, Hc), 0)
            if occ_kind == "person":
                row = self.identities.random_rows(rng, 1)[0]
                att2 = self.identities.attributes(row)
                pose2 = self._pose(rng, cam)
                shift = float(rng.uniform(0.22, 0.4) if mode == "occluded" else rng.uniform(0.3, 0.6)) * Wc
                xc2 = xc + (shift if rng.random() < 0.5 else -shift)
                ph2 = ph * float(rng.uniform(1.0, 1.12))
                geo2 = draw_person(ImageDraw.Draw(occ_img), att2, pose2, xc2, ytop + (ph - ph2) + 0.02 * ph, ph2)
                M2 = np.array(occ_img)
                apply_pattern(M2, att2["upper"], geo2["torso_box"], ph2, self.grids)
                occ_img = M2
                occ_table = colour_table(att2, rng, cal.colour_noise)
            else:
                self._occluder(rng, occ_kind, ImageDraw.Draw(occ_img), pbox_c, ph, over_body=(mode == "occluded"))
        if occ_img is not None and occ_kind != "person":
            occ_img = np.asarray(occ_img)
            occ_table = self._occ_colours(rng)
        # colours, shading, background
        table = colour_table(att, rng, cal.colour_noise)
        wf = att["shape"]["width"]
        sx = (self.grids[1] - xc) / (0.15 * ph * wf) - cam.light_dir * 0.4
        shade = (1.0 - cal.shading * np.clip(sx * sx, 0.0, 1.0)).astype(np.float32)
        idx = np.flatnonzero(M)  # person pixels only (a fraction of the canvas)
        fg = np.take(table, M.ravel()[idx], axis=0)
        fg *= shade[idx % Wc][:, None]
        tex = self.background(camid)
        oy = int(rng.integers(0, tex.shape[0] - Hc + 1))
        ox = int(rng.integers(0, tex.shape[1] - Wc + 1))
        bgain = float(rng.uniform(0.85, 1.15))
        bg = tex[oy:oy + Hc, ox:ox + Wc] * np.float32(bgain)
        for _ in range(int(rng.integers(0, 3))):  # per-image clutter (passing objects, signs)
            cx0, cy0 = int(rng.integers(0, Wc)), int(rng.integers(0, Hc))
            bg[cy0:cy0 + int(rng.integers(Hc // 16, Hc // 3)), cx0:cx0 + int(rng.integers(Wc // 10, Wc // 2))] = np.float32(bgain) * np.asarray(_muted(rng, 30, 220, 0.6), np.float32)
        # a soft shadow under the feet
        fy = ytop + ph
        if 0 <= fy < Hc + 0.05 * ph:
            y0s, y1s = max(0, int(fy - 0.03 * ph)), min(Hc, int(fy + 0.03 * ph) + 1)
            if y1s > y0s:
                gy = (self.grids[0][y0s:y1s, None] - fy) / (0.03 * ph)
                gx = (self.grids[1][None, :] - xc) / (0.13 * ph * wf)
                bg[y0s:y1s] *= (1.0 - 0.45 * np.clip(1.0 - gy * gy - gx * gx, 0.0, 1.0))[..., None]
        if layers:
            bg_layer = bg.copy()
        out = bg
        out.reshape(-1, 3)[idx] = fg
        occ_mask = None
        if occ_img is not None:
            occ_mask = occ_img > 0
            oidx = np.flatnonzero(occ_img)
            ofg = np.take(occ_table, occ_img.ravel()[oidx], axis=0)
            if occ_kind == "person":
                oshade = (1.0 - cal.shading * np.clip(((self.grids[1] - xc2) / (0.15 * ph2)) ** 2, 0, 1)).astype(np.float32)
                ofg *= oshade[oidx % Wc][:, None]
            out.reshape(-1, 3)[oidx] = ofg
        # output resolution: box-downsample the image, sample the mask at pixel centres
        if ss > 1:
            out = _box_down(out, ss)
            c = ss // 2
            Ms = M[c::ss, c::ss]
            occ_s = occ_mask[c::ss, c::ss] if occ_mask is not None else None
        else:
            Ms, occ_s = M, occ_mask
        mask = MATERIAL_PART[Ms]
        n_person = int(np.count_nonzero(mask))
        n_occ = 0
        if occ_s is not None:
            hidden = occ_s & (mask > 0)
            n_occ = int(np.count_nonzero(hidden))
            mask[hidden] = OCCLUDED
        # camera: gain and white balance, resolution, blur, noise
        gain = cam.gain * (1.0 + cal.illum_jitter * float(rng.normal()))
        cgain = (gain * np.asarray(cam.white_balance, dtype=np.float32)).astype(np.float32)
        out *= cgain
        image = np.clip(out, 0, 255).astype(np.uint8)
        extra = {}
        if layers:
            if not clean:
                raise ValueError("layers=True needs clean=True (the degradations mix person and background)")
            b = _box_down(bg_layer, ss) if ss > 1 else bg_layer
            extra["background"] = np.clip(b * cgain, 0, 255).astype(np.uint8)
            sup = person if occ_mask is None else (person | occ_mask)
            extra["support"] = sup.reshape(H, ss, W, ss).any(axis=(1, 3)) if ss > 1 else sup
        ny, nx = int(rng.integers(0, H)), int(rng.integers(0, W))
        if not clean:
            # resolution loss (downscale, blur at the low resolution, upscale): the blur is applied
            # on the small image with its radius scaled down accordingly (cheaper, same look)
            pil = Image.fromarray(image)
            d = cam.downscale if cam.downscale > 1.05 else 1.0
            if d > 1.0:
                pil = pil.resize((max(4, round(W / d)), max(8, round(H / d))), Image.BILINEAR)
            radius = cam.blur * W / 128.0 / d
            if radius > 0.05:
                pil = pil.filter(ImageFilter.GaussianBlur(radius))
            if d > 1.0:
                pil = pil.resize((W, H), Image.BILINEAR)
            noisy = np.asarray(pil, dtype=np.float32) + self._noise[ny:ny + H, nx:nx + W]
            image = np.clip(noisy, 0, 255).astype(np.uint8)
        info = {
            "view": pose.view, "facing": pose.facing, "phase": pose.phase,
            "person_box": tuple(int(v) for v in pbox), "occluder": occ_kind,
            "occluded_fraction": n_occ / max(1, n_person), "camera": camid,
            "print_visible": bool(geo["print_visible"]), "backpack_visible": bool(geo["backpack_visible"]),
            "background_offset": (oy, ox), "background_gain": bgain,
        }
        if mode == "source":
            info["crop_box"] = tuple(int(v) for v in crop_box)
            info["crop_side"] = crop_side
        return {"image": image, "mask": mask, "info": info, **extra}
