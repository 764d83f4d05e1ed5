# Copyright (c) mmpsearch contributors. All rights reserved.
"""Drawing for the synthetic person-search set: articulated people, camera backgrounds,
clutter and occluders, camera colour casts. OpenCV primitives on BGR uint8 images.

A person is defined by an :class:`Appearance` (what makes the identity: clothing colours
and pattern, sleeves, trousers/shorts/skirt, shoes, skin, hair, height, build, an
accessory) and drawn in a :class:`Pose` (view, walking phase); the renderer returns a
patch with its mask, from which the tight box and the visible fraction are measured.
"""
import math
from dataclasses import dataclass, replace
from typing import List, Tuple

import cv2
import numpy as np

# clothing palette (RGB; distinct hues plus neutrals)
PALETTE = {
    'red': (200, 30, 35), 'maroon': (120, 25, 35), 'orange': (240, 130, 25),
    'yellow': (235, 210, 45), 'green': (45, 150, 60), 'olive': (110, 120, 40),
    'teal': (25, 150, 150), 'sky': (110, 175, 235), 'blue': (35, 65, 195),
    'navy': (25, 35, 95), 'purple': (125, 55, 165), 'pink': (235, 125, 175),
    'white': (235, 235, 230), 'grey': (150, 150, 150), 'charcoal': (65, 65, 70),
    'black': (25, 25, 28), 'brown': (120, 75, 40), 'beige': (215, 195, 150),
}
BOTTOM_COLORS = ('navy', 'black', 'charcoal', 'grey', 'beige', 'brown', 'blue', 'olive',
                 'white', 'red')
SKINS = ((240, 200, 170), (220, 175, 140), (185, 135, 95), (140, 95, 65), (95, 65, 45))
HAIRS = ((25, 20, 15), (70, 45, 25), (130, 90, 45), (210, 180, 110), (150, 150, 150))
PATTERNS = ('solid', 'solid', 'hstripes', 'vstripes', 'checks', 'split', 'logo')
ACCESSORIES = ('none', 'none', 'backpack', 'hat', 'bag', 'scarf')
VIEWS = ('front', 'back', 'left', 'right')


def _bgr(rgb) -> Tuple[int, int, int]:
    return int(rgb[2]), int(rgb[1]), int(rgb[0])


@dataclass(frozen=True)
class Appearance:
    """What identifies a synthetic person (all colours RGB)."""
    top: Tuple[int, int, int]
    top2: Tuple[int, int, int]
    pattern: str
    sleeves: str
    bottom: Tuple[int, int, int]
    bottom_kind: str
    shoes: Tuple[int, int, int]
    skin: Tuple[int, int, int]
    hair: Tuple[int, int, int]
    hair_style: str
    height: float
    build: float
    accessory: str
    accessory_color: Tuple[int, int, int]


@dataclass(frozen=True)
class Pose:
    view: str
    phase: float
    swing: float


def sample_appearance(rng: np.random.Generator) -> Appearance:
    names = list(PALETTE)
    top = names[rng.integers(len(names))]
    top2 = rng.choice([n for n in names if n != top])
    return Appearance(
        top=PALETTE[top], top2=PALETTE[top2], pattern=str(rng.choice(PATTERNS)),
        sleeves=str(rng.choice(('short', 'long'))),
        bottom=PALETTE[str(rng.choice(BOTTOM_COLORS))],
        bottom_kind=str(rng.choice(('trousers', 'trousers', 'shorts', 'skirt'))),
        shoes=PALETTE[str(rng.choice(('black', 'white', 'brown', 'red', 'grey')))],
        skin=SKINS[rng.integers(len(SKINS))], hair=HAIRS[rng.integers(len(HAIRS))],
        hair_style=str(rng.choice(('short', 'short', 'long', 'bald'))),
        height=float(rng.uniform(0.86, 1.14)), build=float(rng.uniform(0.8, 1.25)),
        accessory=str(rng.choice(ACCESSORIES)),
        accessory_color=PALETTE[str(rng.choice(names))])


def near_duplicate(app: Appearance, rng: np.random.Generator) -> Appearance:
    """``app`` with exactly one attribute changed (a deliberately confusable identity)."""
    kind = rng.choice(('pattern', 'accessory', 'bottom', 'hair', 'top2', 'sleeves'))
    if kind == 'pattern':
        # dict.fromkeys dedups in a fixed order (a set of strings would make the choice
        # depend on PYTHONHASHSEED, i.e. differ between processes).
        return replace(app, pattern=str(rng.choice([p for p in dict.fromkeys(PATTERNS)
                                                   if p != app.pattern])))
    if kind == 'accessory':
        acc = str(rng.choice([a for a in dict.fromkeys(ACCESSORIES)
                              if a != app.accessory]))
        return replace(app, accessory=acc)
    if kind == 'bottom':
        colors = [PALETTE[c] for c in BOTTOM_COLORS if PALETTE[c] != app.bottom]
        return replace(app, bottom=colors[rng.integers(len(colors))])
    if kind == 'hair':
        return replace(app, hair_style=str(rng.choice([h for h in ('short', 'long', 'bald')
                                                       if h != app.hair_style])))
    if kind == 'top2':
        colors = [c for c in PALETTE.values() if c not in (app.top, app.top2)]
        return replace(app, top2=colors[rng.integers(len(colors))],
                       pattern=app.pattern if app.pattern != 'solid' else 'hstripes')
    return replace(app, sleeves='long' if app.sleeves == 'short' else 'short')


def sample_pose(rng: np.random.Generator) -> Pose:
    return Pose(view=str(rng.choice(VIEWS)), phase=float(rng.uniform(0, 2 * math.pi)),
                swing=float(rng.uniform(0.3, 1.0)))


# ----------------------------------------------------------------------------- person
def render_person(app: Appearance, pose: Pose, height: int):
    """Draw one person.

    Args:
        app (Appearance): the identity's look.
        pose (Pose): view and walking phase.
        height (int): standing height in pixels (head to sole).

    Returns:
        tuple: ``(patch, mask, foot)``: BGR uint8 (h, w, 3), bool (h, w), and the (x, y)
        patch position of the point between the feet on the ground.
    """
    H = max(12, int(height))
    pw, ph = int(H * 0.95) + 8, H + 8
    img = np.zeros((ph, pw, 3), np.uint8)
    mask = np.zeros((ph, pw), np.uint8)
    cx, y0 = pw / 2.0, 3.0
    side = pose.view in ('left', 'right')
    face = 1 if pose.view == 'right' else -1
    b = app.build
    Y = lambda t: y0 + t * H  # noqa: E731

    def line(p, q, color, t):
        p = (int(round(p[0])), int(round(p[1])))
        q = (int(round(q[0])), int(round(q[1])))
        t = max(1, int(round(t)))
        cv2.line(img, p, q, _bgr(color), t)
        cv2.line(mask, p, q, 255, t)
        cv2.circle(img, q, max(1, t // 2), _bgr(color), -1)
        cv2.circle(mask, q, max(1, t // 2), 255, -1)

    def poly(points, color):
        pts = np.round(np.asarray(points)).astype(np.int32)
        cv2.fillConvexPoly(img, pts, _bgr(color))
        cv2.fillConvexPoly(mask, pts, 255)

    def ellipse(c, axes, color, angle=0, start=0, end=360):
        c = (int(round(c[0])), int(round(c[1])))
        axes = (max(1, int(round(axes[0]))), max(1, int(round(axes[1]))))
        cv2.ellipse(img, c, axes, angle, start, end, _bgr(color), -1)
        cv2.ellipse(mask, c, axes, angle, start, end, 255, -1)

    sw = (0.06 if side else 0.115) * H * b
    hw = (0.055 if side else 0.085) * H * b
    shoulder_y, hip_y = Y(0.175), Y(0.50)
    limb_arm, limb_leg = 0.048 * H * b, 0.066 * H * b
    s = math.sin(pose.phase) * pose.swing
    # ---- legs (feet on the ground line y0 + H)
    hips = [(cx - 0.45 * hw, hip_y), (cx + 0.45 * hw, hip_y)]
    leg_colors = []
    for k, hip in enumerate(hips):
        sign = 1 if k == 0 else -1
        if side:
            a = face * sign * 0.38 * s
            knee_bend = 0.25 * max(0.0, -sign * s)
        else:
            a = sign * -0.05 + 0.06 * s * sign
            knee_bend = 0.05 * abs(s)
        knee = (hip[0] + math.sin(a) * 0.25 * H, hip[1] + math.cos(a) * 0.25 * H)
        a2 = a - face * knee_bend if side else a
        foot = (knee[0] + math.sin(a2) * 0.23 * H, Y(1.0) - 0.02 * H)
        thigh = app.bottom
        shin = app.skin if app.bottom_kind in ('shorts', 'skirt') else app.bottom
        leg_colors.append((hip, knee, foot, thigh, shin))
    for hip, knee, foot, thigh, shin in leg_colors:
        line(hip, knee, thigh, limb_leg)
        line(knee, foot, shin, limb_leg * 0.9)
        ellipse((foot[0] + (face * 0.03 * H if side else 0), foot[1] + 0.005 * H),
                (0.045 * H if side else 0.032 * H, 0.018 * H), app.shoes)
    if app.bottom_kind == 'skirt':
        poly([(cx - hw, hip_y - 0.02 * H), (cx + hw, hip_y - 0.02 * H),
              (cx + 1.5 * hw, Y(0.70)), (cx - 1.5 * hw, Y(0.70))], app.bottom)
    # ---- arms behind the torso (far arm in side view)
    arm_pts = []
    for k in (0, 1):
        sign = 1 if k == 0 else -1
        sx = cx + (sign * sw * 0.92 if not side else 0.0)
        sh = (sx, shoulder_y + 0.02 * H)
        if side:
            a = -face * sign * 0.45 * s
        else:
            a = sign * (0.12 + 0.05 * s)
        elbow = (sh[0] + math.sin(a) * 0.17 * H, sh[1] + math.cos(a) * 0.17 * H)
        a2 = a + (face * 0.25 if side else sign * 0.05)
        hand = (elbow[0] + math.sin(a2) * 0.16 * H, elbow[1] + math.cos(a2) * 0.16 * H)
        arm_pts.append((sh, elbow, hand))
    lower = app.top if app.sleeves == 'long' else app.skin

    def draw_arm(sh, elbow, hand, shade=1.0):
        upper_c = tuple(int(c * shade) for c in app.top)
        lower_c = tuple(int(c * shade) for c in lower)
        line(sh, elbow, upper_c, limb_arm)
        line(elbow, hand, lower_c, limb_arm * 0.85)
        ellipse(hand, (limb_arm * 0.6, limb_arm * 0.6), app.skin)

    if side:
        draw_arm(*arm_pts[1], shade=0.75)
    if app.accessory == 'backpack' and side:
        bx = cx - face * (sw + 0.05 * H)
        poly([(bx - 0.05 * H, Y(0.2)), (bx + 0.05 * H, Y(0.2)), (bx + 0.05 * H, Y(0.43)),
              (bx - 0.05 * H, Y(0.43))], app.accessory_color)
    # ---- torso with pattern
    torso = np.array([(cx - sw, shoulder_y), (cx + sw, shoulder_y), (cx + hw, hip_y + 0.02 * H),
                      (cx - hw, hip_y + 0.02 * H)])
    tmask = np.zeros_like(mask)
    cv2.fillConvexPoly(tmask, np.round(torso).astype(np.int32), 255)
    _fill_pattern(img, tmask > 0, app, shoulder_y, hip_y, cx, H)
    mask |= tmask
    if app.accessory == 'backpack' and not side:
        if pose.view == 'back':
            poly([(cx - 0.75 * sw, Y(0.2)), (cx + 0.75 * sw, Y(0.2)), (cx + 0.7 * sw, Y(0.44)),
                  (cx - 0.7 * sw, Y(0.44))], app.accessory_color)
        else:
            for sign in (-1, 1):
                line((cx + sign * 0.6 * sw, shoulder_y), (cx + sign * 0.5 * sw, Y(0.38)),
                     app.accessory_color, max(1, 0.02 * H))
    if app.accessory == 'scarf':
        poly([(cx - 0.7 * sw, Y(0.15)), (cx + 0.7 * sw, Y(0.15)), (cx + 0.6 * sw, Y(0.21)),
              (cx - 0.6 * sw, Y(0.21))], app.accessory_color)
    # ---- arms in front
    if side:
        draw_arm(*arm_pts[0])
    else:
        draw_arm(*arm_pts[0])
        draw_arm(*arm_pts[1])
    if app.accessory == 'bag':
        hand = arm_pts[0][2]
        poly([(hand[0] - 0.05 * H, hand[1]), (hand[0] + 0.05 * H, hand[1]),
              (hand[0] + 0.055 * H, hand[1] + 0.1 * H), (hand[0] - 0.055 * H, hand[1] + 0.1 * H)],
             app.accessory_color)
    # ---- neck, head, hair, hat
    line((cx, Y(0.12)), (cx, shoulder_y), app.skin, 0.045 * H)
    head = (cx + (face * 0.01 * H if side else 0), Y(0.072))
    r = 0.063 * H
    if app.hair_style == 'long':
        poly([(head[0] - 1.05 * r, head[1]), (head[0] + 1.05 * r, head[1]),
              (head[0] + 1.1 * r, Y(0.2)), (head[0] - 1.1 * r, Y(0.2))], app.hair)
    ellipse(head, (r * (0.85 if side else 0.9), r), app.skin)
    if pose.view == 'back' and app.hair_style != 'bald':
        ellipse(head, (r * 0.92, r * 1.02), app.hair)
    elif app.hair_style != 'bald':
        if side:
            ellipse((head[0] - face * 0.25 * r, head[1] - 0.1 * r), (r * 0.75, r * 0.95),
                    app.hair, start=0, end=360)
            ellipse((head[0] + face * 0.35 * r, head[1] + 0.15 * r), (r * 0.5, r * 0.6), app.skin)
        else:
            ellipse(head, (r * 0.95, r * 0.75), app.hair, start=180, end=360)
    if app.accessory == 'hat':
        ellipse((head[0], head[1] - 0.45 * r), (r * 1.45, r * 0.28), app.accessory_color)
        ellipse((head[0], head[1] - 0.55 * r), (r * 0.95, r * 0.7), app.accessory_color,
                start=180, end=360)
    return img, mask > 0, (cx, y0 + H)


def _fill_pattern(img, region, app: Appearance, top: float, bottom: float, cx: float,
                  H: int) -> None:
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return
    c1, c2 = np.array(_bgr(app.top), np.uint8), np.array(_bgr(app.top2), np.uint8)
    period = max(2, int(round(0.045 * H)))
    if app.pattern == 'hstripes':
        alt = ((ys - int(top)) // period) % 2 == 1
    elif app.pattern == 'vstripes':
        alt = ((xs - int(cx)) // period) % 2 == 1
    elif app.pattern == 'checks':
        alt = (((ys - int(top)) // period) + ((xs - int(cx)) // period)) % 2 == 1
    elif app.pattern == 'split':
        alt = ys > (top + bottom) / 2
    elif app.pattern == 'logo':
        alt = (np.abs(ys - (top + 0.3 * (bottom - top))) < 0.05 * H) & (np.abs(xs - cx)
                                                                         < 0.045 * H)
    else:
        alt = np.zeros(ys.size, bool)
    img[ys, xs] = np.where(alt[:, None], c2, c1)


# ------------------------------------------------------------------------- background
@dataclass
class CameraStyle:
    """A camera's scene and imaging: background kind and colours, horizon, colour cast."""
    kind: str
    horizon: float
    sky: Tuple[int, int, int]
    wall: Tuple[int, int, int]
    ground: Tuple[int, int, int]
    gain: Tuple[float, float, float]
    bias: float
    gamma: float
    noise: float
    blur: float


def sample_camera(rng: np.random.Generator, k: int) -> CameraStyle:
    kinds = ('street', 'park', 'plaza', 'indoor')
    kind = kinds[k % len(kinds)] if k < len(kinds) else str(rng.choice(kinds))
    gain = rng.uniform(0.87, 1.13, 3)
    gain = gain / gain.mean() * rng.uniform(0.9, 1.1)
    return CameraStyle(
        kind=kind, horizon=float(rng.uniform(0.28, 0.42)),
        sky=tuple(int(v) for v in rng.integers(120, 230, 3)),
        wall=tuple(int(v) for v in rng.integers(70, 200, 3)),
        ground=tuple(int(v) for v in rng.integers(70, 170, 3)),
        gain=tuple(float(g) for g in gain), bias=float(rng.uniform(-15, 15)),
        gamma=float(rng.uniform(0.8, 1.25)), noise=float(rng.uniform(2, 7)),
        blur=float(rng.uniform(0.4, 1.0)))


def camera_background(style: CameraStyle, size: Tuple[int, int],
                      rng: np.random.Generator) -> np.ndarray:
    """The static background of a camera (BGR uint8), with background clutter."""
    W, H = size
    hy = int(style.horizon * H)
    img = np.zeros((H, W, 3), np.uint8)
    top = np.array(_bgr(style.sky if style.kind in ('park', 'street') else style.wall), float)
    for y in range(hy):
        img[y] = np.clip(top * (0.85 + 0.3 * y / max(hy, 1)), 0, 255)
    g = np.array(_bgr(style.ground), float)
    for y in range(hy, H):
        img[y] = np.clip(g * (0.8 + 0.35 * (y - hy) / max(H - hy, 1)), 0, 255)
    if style.kind in ('street', 'indoor'):  # building facades / walls with windows
        x = -int(rng.integers(0, 40))
        while x < W:
            bw = int(rng.integers(W // 8, W // 3))
            bh = int(rng.integers(hy // 2, hy + 5))
            col = tuple(int(v) for v in rng.integers(60, 200, 3))
            cv2.rectangle(img, (x, hy - bh), (x + bw, hy), col, -1)
            win = tuple(int(v) * 0.5 for v in col)
            for wy in range(hy - bh + 6, hy - 8, max(8, H // 18)):
                for wx in range(x + 5, x + bw - 8, max(9, W // 25)):
                    cv2.rectangle(img, (wx, wy), (wx + max(3, W // 60), wy + max(4, H // 40)),
                                  win, -1)
            x += bw + int(rng.integers(0, 12))
    if style.kind in ('plaza', 'indoor'):  # floor tiles in perspective
        for k in range(-12, 13):
            cv2.line(img, (W // 2 + k * W // 24, hy), (W // 2 + k * W // 5, H),
                     tuple(int(v * 0.8) for v in g), 1)
        y = hy
        step = 4
        while y < H:
            cv2.line(img, (0, y), (W, y), tuple(int(v * 0.8) for v in g), 1)
            y += step
            step = int(step * 1.35) + 1
    if style.kind == 'street':
        cv2.rectangle(img, (0, hy + (H - hy) // 3), (W, hy + (H - hy) // 3 + max(2, H // 60)),
                      (200, 200, 200), -1)
    for _ in range(int(rng.integers(2, 6))):  # static clutter behind everyone
        kind = str(rng.choice(('tree', 'lamp', 'bench', 'bin', 'sign', 'pillar')))
        fy = int(rng.uniform(hy + 2, hy + 0.45 * (H - hy)))
        draw_object(img, None, kind, float(rng.uniform(0, W)), fy,
                    (fy - hy) / max(H - hy, 1) * 0.75 * H, rng)
    return img


def draw_object(img, cover, kind: str, x: float, foot_y: float, person_h: float,
                rng: np.random.Generator) -> None:
    """A non-person object standing at (x, foot_y), scaled to the local person height.

    ``cover`` (int32 map or None) gets -1 where the object is drawn (occlusion bookkeeping).
    """
    s = max(person_h, 8.0)
    layer = np.zeros(img.shape[:2], np.uint8)
    col = tuple(int(v) for v in rng.integers(40, 220, 3))

    def rect(x0, y0, x1, y1, c):
        p, q = (int(x0), int(y0)), (int(x1), int(y1))
        cv2.rectangle(img, p, q, c, -1)
        cv2.rectangle(layer, p, q, 255, -1)

    def circ(cxy, r, c):
        cxy = (int(cxy[0]), int(cxy[1]))
        cv2.circle(img, cxy, max(1, int(r)), c, -1)
        cv2.circle(layer, cxy, max(1, int(r)), 255, -1)

    if kind == 'tree':
        rect(x - 0.04 * s, foot_y - 0.8 * s, x + 0.04 * s, foot_y, (30, 60, 100))
        for _ in range(4):
            circ((x + rng.uniform(-0.25, 0.25) * s, foot_y - rng.uniform(0.9, 1.3) * s),
                 rng.uniform(0.18, 0.3) * s, (int(rng.integers(20, 60)),
                                             int(rng.integers(90, 160)), 40))
    elif kind == 'lamp':
        rect(x - 0.02 * s, foot_y - 1.4 * s, x + 0.02 * s, foot_y, (80, 80, 80))
        circ((x, foot_y - 1.4 * s), 0.06 * s, (200, 240, 250))
    elif kind == 'bench':
        rect(x - 0.35 * s, foot_y - 0.28 * s, x + 0.35 * s, foot_y - 0.22 * s, col)
        rect(x - 0.35 * s, foot_y - 0.45 * s, x + 0.35 * s, foot_y - 0.4 * s, col)
        for dx in (-0.3, 0.3):
            rect(x + (dx - 0.02) * s, foot_y - 0.28 * s, x + (dx + 0.02) * s, foot_y, (50, 50, 50))
    elif kind == 'bin':
        rect(x - 0.12 * s, foot_y - 0.4 * s, x + 0.12 * s, foot_y, col)
        rect(x - 0.14 * s, foot_y - 0.44 * s, x + 0.14 * s, foot_y - 0.38 * s, (60, 60, 60))
    elif kind == 'sign':
        rect(x - 0.015 * s, foot_y - 1.1 * s, x + 0.015 * s, foot_y, (90, 90, 90))
        rect(x - 0.2 * s, foot_y - 1.25 * s, x + 0.2 * s, foot_y - 0.95 * s, col)
    elif kind == 'pillar':  # person-sized vertical shape: a detector's hard negative
        rect(x - 0.08 * s, foot_y - 1.05 * s, x + 0.08 * s, foot_y, col)
        circ((x, foot_y - 1.05 * s), 0.1 * s, col)
    elif kind == 'car':
        rect(x - 0.9 * s, foot_y - 0.5 * s, x + 0.9 * s, foot_y - 0.12 * s, col)
        rect(x - 0.5 * s, foot_y - 0.75 * s, x + 0.45 * s, foot_y - 0.5 * s, col)
        rect(x - 0.42 * s, foot_y - 0.7 * s, x + 0.37 * s, foot_y - 0.52 * s, (70, 50, 40))
        for dx in (-0.55, 0.55):
            circ((x + dx * s, foot_y - 0.12 * s), 0.13 * s, (20, 20, 20))
    elif kind == 'bike':
        for dx in (-0.25, 0.25):
            cv2.circle(img, (int(x + dx * s), int(foot_y - 0.14 * s)), max(1, int(0.14 * s)),
                       col, max(1, int(0.02 * s)))
            cv2.circle(layer, (int(x + dx * s), int(foot_y - 0.14 * s)), max(1, int(0.14 * s)),
                       255, max(1, int(0.02 * s)))
        rect(x - 0.25 * s, foot_y - 0.35 * s, x + 0.2 * s, foot_y - 0.32 * s, col)
    elif kind == 'box':
        rect(x - 0.2 * s, foot_y - 0.35 * s, x + 0.2 * s, foot_y, (60, 110, 160))
        cv2.line(img, (int(x - 0.2 * s), int(foot_y - 0.35 * s)), (int(x + 0.2 * s), int(foot_y)),
                 (50, 90, 130), 1)
    if cover is not None:
        cover[layer > 0] = -1


def finish_camera(img: np.ndarray, style: CameraStyle, rng: np.random.Generator
                  ) -> np.ndarray:
    """Apply the camera's colour cast, gamma, blur and sensor noise."""
    f = img.astype(np.float32) / 255.0
    f = np.power(np.clip(f, 0, 1), style.gamma)
    f = f * np.array(style.gain[::-1], np.float32) * rng.uniform(0.92, 1.08)
    f = f * 255.0 + style.bias
    if style.blur > 0:
        f = cv2.GaussianBlur(f, (0, 0), style.blur)
    f += rng.normal(0, style.noise, f.shape).astype(np.float32)
    return np.clip(f, 0, 255).astype(np.uint8)


def paste(img: np.ndarray, owner: np.ndarray, patch: np.ndarray, mask: np.ndarray,
          x0: int, y0: int, label: int) -> Tuple[List[int], int]:
    """Paste a person patch at (x0, y0); mark its pixels ``label`` in ``owner``.

    Returns:
        tuple: the tight box [x1, y1, x2, y2] of the full mask in image coordinates (may
        extend outside the image) and the mask's pixel count.
    """
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()) + x0, int(ys.min()) + y0, int(xs.max()) + 1 + x0,
           int(ys.max()) + 1 + y0]
    H, W = img.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    w = min(patch.shape[1] - sx0, W - dx0)
    h = min(patch.shape[0] - sy0, H - dy0)
    if w > 0 and h > 0:
        m = mask[sy0:sy0 + h, sx0:sx0 + w]
        img[dy0:dy0 + h, dx0:dx0 + w][m] = patch[sy0:sy0 + h, sx0:sx0 + w][m]
        owner[dy0:dy0 + h, dx0:dx0 + w][m] = label
    return box, int(mask.sum())
