# Copyright (c) mmpsearch contributors. All rights reserved.
"""Pre-train → fine-tune weight transfer of SPNet (spnet.md §5, supplement Fig. 8).

Every supplement result starts from a COCOPersons pre-trained SPNet (C = 0, shared heads,
d_r = 128) loaded into a fine-tuning model that may have another shape. The rules, in
mmpsearch's module names (released names in brackets):

1. **Dropped**: the EMA teacher ``teacher.*`` [``moco_*``], the LwF trunk and classifier
   ``lwf_teacher.*``, ``lwf_classifier.*`` [``lwf_backbone.*``], the re-id loss buffers
   ``roi_head.loss_reid.*`` [``head.reid_loss.*``: LUT / queue], and the trunk's ImageNet
   head ``backbone.{classifier,head,norm}*`` [``backbone.{classifier,head,norm}.*``].
2. **QC pre-training**: the OC bridges ``bbox_head.bridge.*`` (and ``cascade.bridges.*``)
   are dropped, so they start at their zero init (``x_o = -x_a``).
3. ``load_share`` (shared-head pre-train → separate-head fine-tune, SPNet-L): the NAE
   projectors ``roi_head.reid_proj.*`` are dropped (their size may change, 128 → 2048), and
   the pre-trained conv5 copy ``roi_head.reid_stage.*`` is copied into loc head 1
   ``roi_head.loc_stages.0.*`` (whose final linear ``loc_projs.0`` stays at its init).
4. ``replicate_cascade`` ("PT-Rep"): the stage-0 box regression ``bbox_head.reg_head.*``
   and (if still present) bridge ``bbox_head.bridge.*`` are copied into every cascade
   stage (``cascade.reg_heads.i``, ``cascade.bridges.i``), and loc head 1 into loc head 2
   (``roi_head.loc_stages.1``). Without it ("PT") the cascade starts from its init.
5. Everything else loads by name; a key the model lacks or whose shape differs is
   reported as dropped, a model key the checkpoint does not give is reported as
   re-initialised. A checkpoint from which *nothing* loads is refused: a wrong file must
   not silently leave a randomly initialised model.

:func:`convert_pretrained_state` applies the rules to state dicts;
:class:`SPNetPretrainedInit` (``init_cfg=dict(type='SPNetPretrained', checkpoint=...)``)
loads a checkpoint into a model with them (safe loading stays on), and
``tools/model_converters/spnet_pretrain_to_finetune.py`` writes the result as a plain
fine-tuning checkpoint.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from mmpsearch.registry import WEIGHT_INITIALIZERS

__all__ = ['TransferReport', 'convert_pretrained_state', 'pretrain_path_of',
           'SPNetPretrainedInit', 'load_pretrained_checkpoint', 'split_transfer_cfg']

# rule 1: never part of a fine-tuning model
_ALWAYS_DROPPED = (r'teacher\.', r'lwf_teacher\.', r'lwf_classifier\.', r'roi_head\.loss_reid\.',
                   r'backbone\.(classifier|head|norm)')
_BRIDGES = (r'bbox_head\.bridge\.', r'cascade\.bridges\.')
PRETRAIN_PATHS = ('qc', 'oc', 'auto')


@dataclass
class TransferReport:
    """What happened to every key (for the table printed at load time)."""
    loaded: List[str] = field(default_factory=list)
    copied: Dict[str, str] = field(default_factory=dict)  # target key -> source key
    dropped: Dict[str, str] = field(default_factory=dict)  # source key -> reason
    reinitialised: List[str] = field(default_factory=list)

    def table(self, max_rows: int = 12) -> str:
        """A summary table, grouped by module prefix."""

        def groups(keys):
            out = OrderedDict()
            for k in keys:
                p = '.'.join(k.split('.')[:3])
                out[p] = out.get(p, 0) + 1
            return out

        lines = [f'loaded {len(self.loaded)} | copied {len(self.copied)} | dropped '
                 f'{len(self.dropped)} | re-initialised {len(self.reinitialised)}']
        for title, keys in (('copied', list(self.copied)),
                            ('dropped', [f'{k} ({r})' for k, r in self.dropped.items()]),
                            ('re-initialised', self.reinitialised)):
            if not keys:
                continue
            lines.append(f'{title}:')
            if title == 'dropped':
                reasons = OrderedDict()
                for k, r in self.dropped.items():
                    p = '.'.join(k.split('.')[:3])
                    reasons.setdefault((p, r), 0)
                    reasons[(p, r)] += 1
                rows = [f'  {p}.* ({n} keys): {r}' for (p, r), n in reasons.items()]
            elif title == 'copied':
                pairs = OrderedDict()
                for t, s in self.copied.items():
                    key = ('.'.join(s.split('.')[:3]), '.'.join(t.split('.')[:3]))
                    pairs[key] = pairs.get(key, 0) + 1
                rows = [f'  {s}.* -> {t}.* ({n} keys)' for (s, t), n in pairs.items()]
            else:
                rows = [f'  {p}.* ({n} keys)' for p, n in groups(keys).items()]
            lines += rows[:max_rows] + ([f'  ... {len(rows) - max_rows} more']
                                        if len(rows) > max_rows else [])
        return '\n'.join(lines)


def _matches(key: str, patterns) -> bool:
    return any(re.match(p, key) for p in patterns)


def pretrain_path_of(state: Mapping[str, Tensor]) -> str:
    """``'qc'`` if the stage-0 bridge is still exactly at its zero init, else ``'oc'``.

    QC pre-training never puts a gradient on the OC bridge, so its weights keep their
    zero init (AdamW skips parameters without gradients); OC training moves them.
    """
    bridge = [v for k, v in state.items() if k.startswith('bbox_head.bridge.')]
    if not bridge:
        return 'qc'  # nothing to drop either way
    return 'qc' if all(not torch.count_nonzero(v) for v in bridge) else 'oc'


def convert_pretrained_state(state: Mapping[str, Tensor],
                             target: Mapping[str, Tensor],
                             pretrain_path: str = 'auto',
                             load_share: bool = False,
                             replicate_cascade: bool = False
                             ) -> Tuple['OrderedDict[str, Tensor]', TransferReport]:
    """Apply the §5 rules to a pre-training state dict for a fine-tuning model.

    Args:
        state (Mapping[str, Tensor]): the pre-training checkpoint's ``state_dict``.
        target (Mapping[str, Tensor]): the fine-tuning model's ``state_dict`` (names and
            shapes; values are not used).
        pretrain_path (str): ``'qc'``, ``'oc'`` or ``'auto'`` (:func:`pretrain_path_of`).
        load_share (bool): shared-head pre-train → separate-head fine-tune (rule 3).
        replicate_cascade (bool): PT-Rep (rule 4).

    Returns:
        tuple[OrderedDict, TransferReport]: the state to load (target names only, shapes
        checked) and the report.

    Raises:
        ValueError: nothing of ``state`` fits ``target``, or an unknown path.
    """
    if pretrain_path not in PRETRAIN_PATHS:
        raise ValueError(f'pretrain_path must be one of {PRETRAIN_PATHS}, got {pretrain_path!r}')
    state = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                        for k, v in state.items())
    path = pretrain_path_of(state) if pretrain_path == 'auto' else pretrain_path
    report = TransferReport()
    src = OrderedDict()
    for k, v in state.items():
        if _matches(k, _ALWAYS_DROPPED):
            report.dropped[k] = 'pre-training only'
        elif path == 'qc' and _matches(k, _BRIDGES):
            report.dropped[k] = 'bridge after QC pre-training (starts at zero init)'
        elif load_share and k.startswith('roi_head.reid_proj.'):
            report.dropped[k] = 'load_share: NAE projector re-initialised'
        else:
            src[k] = v
    out = OrderedDict()
    copies = []  # (target key, source key) in rule order
    if load_share:
        copies += [('roi_head.loc_stages.0.' + k[len('roi_head.reid_stage.'):], k)
                   for k in src if k.startswith('roi_head.reid_stage.')]
    if replicate_cascade:
        stage0 = {k: k for k in src if k.startswith(('bbox_head.reg_head.', 'bbox_head.bridge.'))}
        for t in target:
            m = re.match(r'cascade\.(reg_heads|bridges)\.(\d+)\.(.*)', t)
            if m:
                part = 'reg_head' if m.group(1) == 'reg_heads' else 'bridge'
                s = f'bbox_head.{part}.{m.group(3)}'
                if s in stage0:
                    copies.append((t, s))
        # loc head 1 (loaded or just copied from the re-id head) into loc head 2
        loc1 = {t[len('roi_head.loc_stages.0.'):]: s for t, s in copies
                if t.startswith('roi_head.loc_stages.0.')}
        loc1.update({k[len('roi_head.loc_stages.0.'):]: k for k in src
                     if k.startswith('roi_head.loc_stages.0.')})
        copies += [(f'roi_head.loc_stages.1.{rest}', s) for rest, s in loc1.items()]
    for k, v in src.items():
        if k not in target:
            report.dropped[k] = 'not in the fine-tuning model'
        elif tuple(target[k].shape) != tuple(v.shape):
            report.dropped[k] = (f'shape {tuple(v.shape)} != model '
                                 f'{tuple(target[k].shape)}')
        else:
            out[k] = v
            report.loaded.append(k)
    for t, s in copies:
        if t in target and tuple(target[t].shape) == tuple(src[s].shape):
            out[t] = src[s].clone()
            report.copied[t] = s
    report.reinitialised = [k for k in target if k not in out]
    if not out:
        raise ValueError(
            'no weight of the pre-training checkpoint fits the fine-tuning model (0 of '
            f'{len(state)} keys loaded; e.g. {list(state)[:3]}): is this an SPNet '
            'checkpoint of the same backbone?')
    return out, report


def load_pretrained_checkpoint(filename: str) -> Dict[str, Tensor]:
    """The ``state_dict`` of a checkpoint file, loaded safely (no code runs)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    ckpt = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'{filename} is not a checkpoint dict')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'{filename} has no state_dict of tensors')
    return state


@WEIGHT_INITIALIZERS.register_module(name='SPNetPretrained')
class SPNetPretrainedInit:
    """Load an SPNet pre-training checkpoint into a fine-tuning SPNet (spnet.md §5).

    Set as the detector's ``init_cfg``; :class:`~mmpsearch.models.detectors.SPNet` applies
    it after every other initialisation (ImageNet trunk, stage-4 copies), so the
    pre-trained weights win and what the checkpoint lacks keeps its init.

    Args:
        checkpoint (str): path or URL of the pre-training checkpoint.
        pretrain_path (str): ``'qc'``, ``'oc'`` or ``'auto'``. Defaults to ``'auto'``.
        load_share (bool): rule 3 (SPNet-L: True). Defaults to False.
        replicate_cascade (bool): rule 4, PT-Rep (SPNet-L: True). Defaults to False.
    """

    def __init__(self, checkpoint: str, pretrain_path: str = 'auto',
                 load_share: bool = False, replicate_cascade: bool = False):
        self.checkpoint = checkpoint
        self.pretrain_path = pretrain_path
        self.load_share = load_share
        self.replicate_cascade = replicate_cascade

    def __call__(self, module: nn.Module) -> TransferReport:
        state = load_pretrained_checkpoint(self.checkpoint)
        new, report = convert_pretrained_state(state, module.state_dict(), self.pretrain_path,
                                               self.load_share, self.replicate_cascade)
        module.load_state_dict(new, strict=False)
        print_log(f'SPNet pre-trained weights from {self.checkpoint}:\n{report.table()}',
                  logger='current')
        return report

    def _get_init_info(self) -> str:
        return (f'{type(self).__name__}: {self.checkpoint} (path {self.pretrain_path}, '
                f'load_share {self.load_share}, replicate_cascade {self.replicate_cascade})')


def split_transfer_cfg(init_cfg) -> Tuple[Optional[object], List[dict]]:
    """Separate ``SPNetPretrained`` entries from the rest of an ``init_cfg``.

    Returns:
        tuple: the other entries (as given: None, one dict or a list) and the
        ``SPNetPretrained`` dicts.
    """
    if init_cfg is None:
        return None, []
    cfgs = list(init_cfg) if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    is_transfer = [str(c.get('type', '')).split('.')[-1] == 'SPNetPretrained' for c in cfgs]
    rest = [c for c, t in zip(cfgs, is_transfer) if not t]
    mine = [c for c, t in zip(cfgs, is_transfer) if t]
    if not isinstance(init_cfg, (list, tuple)):
        rest = rest[0] if rest else None
    return rest, mine
