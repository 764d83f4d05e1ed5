# Copyright (c) mmpsearch contributors. All rights reserved.
"""A synthetic person-search data set, written in the PRW or the CUHK-SYSU raw layout.

The set is deterministic from a seed and small by default (600 training and 120 test
frames of 384×288, 100 training and 20 test identities; generated in about 10 s), so tests
and the CPU quickstart read it through the real loaders (:class:`PRWDataset`,
:class:`CUHKSYSUDataset`). The training split has many identities for its size because a
re-id embedding learnt from a few dozen identities does not carry over to unseen ones. It is
built to make person search a real task:

* identities are combinations of appearance attributes (top colour and pattern, sleeves,
  trousers/shorts/skirt and colour, shoes, skin, hair, height, build, accessory); a
  fraction are near-duplicates of another identity (one attribute changed);
* articulated figures in four views with a walking phase, at perspective-dependent
  scales; people overlap and are partly hidden by foreground objects;
* several cameras, each with its own background (street, park, plaza, indoor), static
  and per-frame clutter (trees, lamps, benches, bins, signs, person-sized pillars, cars,
  bikes, boxes), colour cast, gamma, blur and noise; one camera has a smaller frame size;
* unknown (unlabelled) people; train and test identities are disjoint; a few training
  identities also walk through test frames (as in PRW);
* a long-tailed number of appearances per identity (the most frequent identity of a
  split appears ``long_tail`` times as often as the rarest), every identity in at least
  two cameras, so each query has targets in other cameras.

Usage::

    from mmpsearch.datasets.synthetic import SyntheticConfig, make_synthetic
    make_synthetic('data/synthetic_prw', layout='prw', seed=0)

or ``python tools/make_synthetic.py --out DIR --layout prw|cuhk|coco --seed 0``. The COCO
layout (pre-training, spnet.md §8.3) holds crowded frames of unlabelled people from a random
stream of its own (other scenes and people than the PRW/CUHK-SYSU sets).
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from ._synthetic_render import (Appearance, CameraStyle, camera_background, draw_object,
                                finish_camera, near_duplicate, paste, render_person,
                                sample_appearance, sample_camera, sample_pose)

OCCLUDERS = ('bench', 'car', 'bin', 'box', 'sign', 'pillar', 'bike')
FRAME_CLUTTER = ('bin', 'box', 'bike', 'pillar', 'sign', 'lamp')


@dataclass
class SyntheticConfig:
    """Size and difficulty of the synthetic set (defaults: the quickstart set).

    Args:
        image_size: (width, height) of the frames of all cameras but the last.
        num_cameras: cameras (PRW names ``c1``…; CUHK-SYSU has no camera ids).
        num_train_frames, num_test_frames: frames per split.
        num_train_ids, num_test_ids: labelled identities per split (disjoint).
        labelled_per_frame: mean labelled people per frame (sets the appearance budget).
        unknown_per_frame: mean unlabelled people per frame (Poisson).
        max_persons: people per frame at most.
        long_tail: appearances of the most frequent / the rarest identity of a split.
        min_appearances: appearances of the rarest identity (≥ 2: CUHK needs a query
            and a gallery image).
        near_duplicate_frac: share of identities copied from another with one change.
        occluder_prob: chance per person of a foreground object in front of it.
        train_ids_in_test: share of test frames that also show a training identity.
        last_camera_scale: size factor of the last camera's frames (PRW's camera 6 is
            SD while the others are HD).
        min_height_frac, max_height_frac: person heights relative to the frame height.
        gallery_sizes: CUHK-SYSU ``TestG<N>`` files to write (N < number of test frames).
        quirks: reproduce the real CUHK-SYSU list quirks once each (a query whose own
            image is in its gallery, a gallery image listed twice).
        jpeg_quality: JPEG quality of the frames.
        prw_pids: how the PRW layout numbers identities. ``'dense'``: training ids
            ``1..T``, test ids ``T+1..``. ``'real'``: as in the real PRW (raw_formats.md
            §2.3, ID ranges), so the label maps meet the ids they treat specially: the
            last two training identities are 483 and 932 (training ids that OIMNet++'s
            map, ``label_mode='oimnetpp'``, makes unlabelled), the others ``1..T-2``
            (skipping 479); test ids are 479 (a test id below 483, whose OIMNet++ LUT row
            is never filled) and then 484, 485, ... (skipping 932). Needs
            ``num_train_ids <= 483`` and ``num_test_ids <= 450``.
    """
    image_size: Tuple[int, int] = (384, 288)
    num_cameras: int = 4
    num_train_frames: int = 600
    num_test_frames: int = 120
    num_train_ids: int = 100
    num_test_ids: int = 20
    labelled_per_frame: float = 2.0
    unknown_per_frame: float = 0.9
    max_persons: int = 7
    long_tail: float = 20.0
    min_appearances: int = 2
    near_duplicate_frac: float = 0.2
    occluder_prob: float = 0.3
    train_ids_in_test: float = 0.05
    last_camera_scale: float = 0.8
    min_height_frac: float = 0.16
    max_height_frac: float = 0.78
    gallery_sizes: Tuple[int, ...] = (50, 100)
    quirks: bool = True
    jpeg_quality: int = 90
    prw_pids: str = 'dense'

    def validate(self) -> None:
        if self.num_cameras < 2:
            raise ValueError('num_cameras must be >= 2 (queries need other cameras)')
        if self.min_appearances < 2:
            raise ValueError('min_appearances must be >= 2')
        if self.prw_pids not in ('dense', 'real'):
            raise ValueError(f"prw_pids must be 'dense' or 'real', got {self.prw_pids!r}")
        if self.prw_pids == 'real' and (self.num_train_ids > 483 or self.num_test_ids > 450):
            raise ValueError("prw_pids='real' numbers at most 483 training and 450 test "
                             'identities, as the real PRW')
        for n in ('num_train_frames', 'num_test_frames', 'num_train_ids', 'num_test_ids'):
            if getattr(self, n) < 2:
                raise ValueError(f'{n} must be >= 2 (the raw formats forbid singleton '
                                 'lists)')


@dataclass
class Identity:
    """A labelled synthetic identity."""
    index: int
    split: str
    appearance: Appearance
    count: int
    twin_of: Optional[int] = None


@dataclass
class PersonInstance:
    """One person drawn in a frame. ``identity`` is -1 for an unknown person."""
    identity: int
    box: List[float]
    visible: float
    height: float


@dataclass
class Frame:
    """One rendered frame (its JPEG bytes and its people)."""
    index: int
    split: str
    camera: int
    time: int
    size: Tuple[int, int]
    persons: List[PersonInstance] = field(default_factory=list)
    jpeg: bytes = b''


@dataclass
class SyntheticWorld:
    """Everything the raw-layout writers need."""
    config: SyntheticConfig
    seed: int
    cameras: List[CameraStyle]
    identities: List[Identity]
    frames: List[Frame]

    def split_frames(self, split: str) -> List[Frame]:
        return [f for f in self.frames if f.split == split]

    def appearances(self, identity: int) -> List[Tuple[Frame, int]]:
        """(frame, person position) of every appearance of ``identity``."""
        return [(f, k) for f in self.frames for k, p in enumerate(f.persons)
                if p.identity == identity]


# Random streams: the person-search layouts share one; the COCO layout has its own, so its
# scenes (camera styles, backgrounds) and people differ from the PRW/CUHK-SYSU sets.
SEARCH_STREAM, COCO_STREAM = 20240611, 20261205


def coco_config(cfg: SyntheticConfig) -> SyntheticConfig:
    """The COCO-layout variant of ``cfg``: crowded frames of unlabelled people.

    COCO has no identities; the generator still plans two (two appearances each) because
    its planner needs them, and the COCO writer drops every identity label anyway.
    """
    return SyntheticConfig(**{**asdict(cfg), 'num_train_ids': 2, 'num_test_ids': 2,
                              'labelled_per_frame': 0.01, 'unknown_per_frame': 2.5,
                              'train_ids_in_test': 0.0, 'gallery_sizes': (),
                              'quirks': False})


def generate_world(config: Optional[SyntheticConfig] = None, seed: int = 0,
                   stream: int = SEARCH_STREAM) -> SyntheticWorld:
    """Plan and render the synthetic set (no files written).

    Args:
        config (SyntheticConfig, optional): sizes and difficulty.
        seed (int): everything is a deterministic function of ``(config, seed, stream)``.
        stream (int): random stream (``COCO_STREAM`` for the COCO layout).

    Returns:
        SyntheticWorld: identities, cameras and rendered frames.
    """
    cfg = config or SyntheticConfig()
    cfg.validate()
    ss = np.random.SeedSequence([seed, stream])
    r_cam, r_id, r_plan, r_render = (np.random.default_rng(s) for s in ss.spawn(4))
    cameras = [sample_camera(r_cam, k) for k in range(cfg.num_cameras)]
    sizes = [tuple(cfg.image_size)] * cfg.num_cameras
    last = cfg.last_camera_scale
    sizes[-1] = (int(cfg.image_size[0] * last) // 2 * 2, int(cfg.image_size[1] * last) // 2 * 2)
    backgrounds = [camera_background(c, s, r_cam) for c, s in zip(cameras, sizes)]
    identities = _make_identities(cfg, r_id)
    frames = _plan_frames(cfg, identities, sizes, r_plan)
    for frame in frames:
        _render_frame(frame, cfg, identities, cameras[frame.camera],
                      backgrounds[frame.camera], r_render)
    return SyntheticWorld(cfg, seed, cameras, identities, frames)


def _long_tail_counts(n_ids: int, n_frames: int, cfg: SyntheticConfig) -> List[int]:
    """Geometric appearance counts from ``long_tail × m`` down to ``m``."""
    t = np.linspace(1.0, 0.0, n_ids)
    weights = cfg.long_tail ** t
    budget = cfg.labelled_per_frame * n_frames
    m = max(cfg.min_appearances, budget / weights.sum())
    counts = np.minimum(np.round(m * weights).astype(int), n_frames)
    return np.maximum(counts, cfg.min_appearances).tolist()


def _make_identities(cfg: SyntheticConfig, rng: np.random.Generator) -> List[Identity]:
    identities = []
    for split, n_ids, n_frames in (('train', cfg.num_train_ids, cfg.num_train_frames),
                                   ('test', cfg.num_test_ids, cfg.num_test_frames)):
        counts = _long_tail_counts(n_ids, n_frames, cfg)
        rng.shuffle(counts)
        first = len(identities)
        for k in range(n_ids):
            twin = None
            if k > 0 and rng.random() < cfg.near_duplicate_frac:
                twin = first + int(rng.integers(k))
                app = near_duplicate(identities[twin].appearance, rng)
            else:
                app = sample_appearance(rng)
            identities.append(Identity(len(identities), split, app, int(counts[k]), twin))
    return identities


def _plan_frames(cfg: SyntheticConfig, identities: List[Identity], sizes,
                 rng: np.random.Generator) -> List[Frame]:
    frames = []
    times = [int(rng.integers(100, 5000)) for _ in range(cfg.num_cameras)]
    for split, n in (('train', cfg.num_train_frames), ('test', cfg.num_test_frames)):
        for _ in range(n):
            cam = int(rng.integers(cfg.num_cameras))
            times[cam] += int(rng.integers(1, 60))
            frames.append(Frame(len(frames), split, cam, times[cam], sizes[cam]))
    members: Dict[int, List[int]] = {f.index: [] for f in frames}
    cap = max(2, cfg.max_persons - 1)
    for ident in sorted(identities, key=lambda i: -i.count):
        pool = [f for f in frames if f.split == ident.split]
        rng.shuffle(pool)
        chosen, cams = [], set()
        for f in sorted(pool, key=lambda f: len(members[f.index]) >= cap):
            if len(chosen) >= ident.count:
                break
            if len(chosen) == 1 and f.camera in cams and len(pool) > 1:
                continue  # the second appearance comes from another camera
            chosen.append(f)
            cams.add(f.camera)
        if len(cams) < 2:  # fall back: replace the last choice by another camera's frame
            other = [f for f in pool if f.camera not in cams and f not in chosen]
            if other:
                chosen[-1] = other[0]
        for f in chosen:
            members[f.index].append(ident.index)
    train_ids = [i.index for i in identities if i.split == 'train']
    for f in frames:
        people = list(members[f.index])
        if f.split == 'test' and train_ids and rng.random() < cfg.train_ids_in_test:
            extra = int(rng.choice(train_ids))
            if extra not in people:
                people.append(extra)
        n_unknown = int(rng.poisson(cfg.unknown_per_frame))
        if not people:
            n_unknown = max(n_unknown, 1)
        n_unknown = min(n_unknown, max(0, cfg.max_persons - len(people)))
        f.persons = [PersonInstance(i, [], 0.0, 0.0) for i in people]
        f.persons += [PersonInstance(-1, [], 0.0, 0.0) for _ in range(n_unknown)]
        rng.shuffle(f.persons)
    return frames


def _render_frame(frame: Frame, cfg: SyntheticConfig, identities: List[Identity],
                  style: CameraStyle, background: np.ndarray, rng: np.random.Generator
                  ) -> None:
    W, H = frame.size
    hy = style.horizon * H
    img = background.copy()
    owner = np.full((H, W), -1, np.int32)
    for _ in range(int(rng.integers(0, 3))):  # per-frame clutter behind the people
        fy = float(rng.uniform(hy + 2, H))
        draw_object(img, None, str(rng.choice(FRAME_CLUTTER)), float(rng.uniform(0, W)), fy,
                    _person_height(fy, hy, H, cfg), rng)
    placed = []
    for p in frame.persons:  # choose foot points, avoiding heavy overlaps
        app = (identities[p.identity].appearance if p.identity >= 0 else
               sample_appearance(rng))
        for _ in range(12):
            t = rng.uniform(0.0, 1.0)
            fy = hy + (0.2 + 0.82 * t) * (H - hy)
            h = _person_height(fy, hy, H, cfg) * app.height
            fx = rng.uniform(0.03 * W, 0.97 * W)  # near the borders people are cut
            box = (fx - 0.25 * h, fy - h, fx + 0.25 * h, fy)
            if all(_iou(box, q[3]) < 0.35 for q in placed):
                break
        placed.append((p, app, (fx, fy, h), box))
    placed.sort(key=lambda q: q[2][1])  # far (high on screen) first: near people occlude
    areas = {}
    for label, (p, app, (fx, fy, h), _) in enumerate(placed):
        patch, mask, foot = render_person(app, sample_pose(rng), int(round(h)))
        x0, y0 = int(round(fx - foot[0])), int(round(fy - foot[1]))
        p.box, areas[label] = paste(img, owner, patch, mask, x0, y0, label)
        p.height = float(p.box[3] - p.box[1])
        if rng.random() < cfg.occluder_prob:  # a foreground object in front of this person
            kind = str(rng.choice(OCCLUDERS))
            ofy = fy + rng.uniform(0.0, 0.06) * h
            # low objects hide the legs; tall thin ones a vertical strip, off-centre
            off = rng.uniform(0.12, 0.3) if kind in ('sign', 'pillar') else rng.uniform(0, 0.3)
            ox = fx + (off if rng.random() < 0.5 else -off) * h
            draw_object(img, owner, kind, ox, ofy, _person_height(ofy, hy, H, cfg), rng)
    counts = np.bincount(owner[owner >= 0].ravel(), minlength=len(placed))
    frame.persons = []
    for label, (p, _, _, _) in enumerate(placed):
        p.visible = float(counts[label] / max(areas[label], 1))
        frame.persons.append(p)
    img = finish_camera(img, style, rng)
    ok, enc = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    frame.jpeg = enc.tobytes()


def _person_height(foot_y: float, horizon: float, H: int, cfg: SyntheticConfig) -> float:
    """Perspective: height grows linearly with the distance of the feet below the horizon."""
    t = np.clip((foot_y - horizon) / max(H - horizon, 1), 0, 1.1)
    return float(H * (cfg.min_height_frac + (cfg.max_height_frac - cfg.min_height_frac) * t))


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def make_synthetic(out_dir: str, layout: str = 'prw', seed: int = 0,
                   config: Optional[SyntheticConfig] = None, **overrides) -> dict:
    """Generate the set and write it in a raw layout.

    Args:
        out_dir (str): output root (PRW: the ``PRW-v16.04.20`` equivalent; CUHK-SYSU: the
            folder holding ``Image/`` and ``annotation/``; COCO: the folder holding
            ``train2017/``, ``val2017/`` and ``annotations/``).
        layout (str): ``'prw'``, ``'cuhk'`` or ``'coco'`` (pre-training: unlabelled
            people in scenes of their own, :func:`coco_config`).
        seed (int): random seed.
        config (SyntheticConfig, optional): base configuration.
        **overrides: ``SyntheticConfig`` fields to change.

    Returns:
        dict: a summary (counts) of what was written.
    """
    from ._synthetic_writers import write_coco, write_cuhk, write_prw
    cfg = config or SyntheticConfig()
    if overrides:
        cfg = SyntheticConfig(**{**asdict(cfg), **overrides})
    if layout == 'coco':
        return write_coco(generate_world(coco_config(cfg), seed, COCO_STREAM), out_dir)
    if layout not in ('prw', 'cuhk'):
        raise ValueError(f'layout must be "prw", "cuhk" or "coco", got {layout!r}')
    world = generate_world(cfg, seed)
    return write_prw(world, out_dir) if layout == 'prw' else write_cuhk(world, out_dir)


__all__ = ['SyntheticConfig', 'SyntheticWorld', 'generate_world', 'make_synthetic',
           'coco_config']
