# Copyright (c) mmpsearch contributors. All rights reserved.
"""Stop training at the first non-finite loss or gradient; never save non-finite weights.

Without it, a diverging run (say, a learning rate 100x too high) logs ``loss: nan`` from
its second iteration on, keeps training for every remaining epoch and writes checkpoints
full of NaN, which a later ``--resume`` happily continues from; only the final evaluation
fails. mmdet's ``CheckInvalidLossHook`` covers part of this, but not enough to reuse: it
looks at the summed loss every 50 iterations only (after 49 NaN updates), uses ``assert``
(gone under ``python -O``, and its message is ``None``), ignores gradients, would stop a
mixed-precision run at a step the loss scaler skips on purpose, and does not guard
checkpoints. This hook does four things:

1. **Gradients, before the optimiser step.** A pre-hook on every optimiser
   (``torch.optim.Optimizer.register_step_pre_hook``) checks that all gradients are finite
   and raises before the weights change. Under mixed precision (``AmpOptimWrapper``) the
   loss scaler unscales the gradients and calls ``optimizer.step`` only when they are
   finite; a step it skips never reaches the pre-hook, so an overflow that the scaler
   handles by lowering its scale is not an error.
2. **Loss terms, after each iteration.** Every loss entry of the iteration's log
   variables (the summed ``loss`` and each ``loss_*`` term) must be finite. Under a loss
   scaler, a non-finite loss is tolerated for ``amp_patience`` consecutive iterations
   (the scaler skips those steps, so the weights stay finite); a longer streak stops the
   run.
3. **The state, before a checkpoint is due.** At the iterations/epochs where a
   ``CheckpointHook`` will save, the model and optimiser state must be finite. This runs
   before ``CheckpointHook`` (which deletes its oldest file *before* writing the new one),
   so with ``max_keep_ckpts=1`` the last good checkpoint is not lost either.
4. **Every checkpoint, before it is written** (``before_save_checkpoint``): any non-finite
   floating-point tensor in it (weights, buffers such as the OIM lookup table, optimiser
   state, EMA weights) refuses the save; ``work_dir/last_checkpoint`` keeps naming the last
   good checkpoint, which ``--resume`` then continues from.

Each stop raises :class:`NonFiniteError` with the iteration (as the log counts it), the
loss terms with their values, and the offending parameters or tensors. Under distributed
training the loss verdict is agreed across ranks (one tiny all-reduce per iteration), so
every process stops at the same iteration instead of one hanging in the next collective.
"""
import math
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from mmpsearch.registry import HOOKS

_get_total_norm = getattr(torch.nn.utils, 'get_total_norm', None)


class NonFiniteError(FloatingPointError):
    """A loss, gradient or weight became NaN or infinite during training."""


def _as_float(value) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else 0.0
    if isinstance(value, (list, tuple)):
        return float(sum(_as_float(v) for v in value))
    return float(value)


def _all_finite(tensors: List[torch.Tensor]) -> bool:
    """Whether every element of every tensor is finite.

    One fused 2-norm over all tensors decides the common case (a NaN or an infinity makes
    the norm non-finite); only when the norm is not finite are the tensors checked one by
    one, so that finite values large enough to overflow the norm are not reported.
    """
    tensors = [t for t in tensors if t.numel() and not t.is_sparse]
    if not tensors:
        return True
    if _get_total_norm is not None:
        total = _get_total_norm(tensors, norm_type=2.0)
    else:  # torch < 2.6
        total = torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(t.float()).to(tensors[0].device) for t in tensors]))
    if bool(torch.isfinite(total)):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def non_finite_tensors(obj, prefix: str = '') -> List[str]:
    """Names (dotted paths) of the floating-point tensors in ``obj`` holding NaN or ±inf.

    Args:
        obj: a tensor, or dicts/lists/tuples of them (a state dict, an optimiser state,
            a whole checkpoint); other values are ignored.
        prefix (str): the path of ``obj`` itself.

    Returns:
        list[str]: the paths, in traversal order.
    """
    found: List[str] = []
    stack = [(prefix, obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, torch.Tensor):
            if (value.is_floating_point() or value.is_complex()) and value.numel() \
                    and not value.is_sparse and not _all_finite([value]):
                found.append(path or '<tensor>')
        elif isinstance(value, dict):
            stack.extend((f'{path}.{k}' if path else str(k), v)
                         for k, v in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            stack.extend((f'{path}.{i}' if path else str(i), v)
                         for i, v in reversed(list(enumerate(value))))
    return found


def _optim_wrappers(optim_wrapper) -> list:
    """The ``OptimWrapper`` instances of a runner (an ``OptimWrapperDict`` holds several)."""
    if optim_wrapper is None:
        return []
    if hasattr(optim_wrapper, 'optimizer'):
        return [optim_wrapper]
    if hasattr(optim_wrapper, 'values'):
        return list(optim_wrapper.values())
    return []


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Stop the run at the first NaN/inf loss or gradient; refuse non-finite checkpoints.

    On by default (``default_hooks.non_finite`` in ``configs/_base_/default_runtime.py``).
    See the module docstring for what is checked when.

    Args:
        check_grads (bool): check the gradients before each optimiser step. Costs one
            fused norm over the gradients per step.
        amp_patience (int): under a loss scaler (``AmpOptimWrapper``), the number of
            consecutive iterations with a non-finite loss that are tolerated (their steps
            are skipped by the scaler); the next one stops the run. Without a loss scaler
            the first non-finite loss stops the run.
        check_checkpoints (bool): refuse to write checkpoints holding non-finite tensors
            (and check the state just before a checkpoint is due).
        max_names (int): at most this many parameter/tensor names in a message.
    """

    priority = 'LOW'  # after LoggerHook (BELOW_NORMAL), before CheckpointHook (VERY_LOW)

    def __init__(self, check_grads: bool = True, amp_patience: int = 3,
                 check_checkpoints: bool = True, max_names: int = 5):
        if amp_patience < 0:
            raise ValueError(f'amp_patience must be >= 0, got {amp_patience}')
        self.check_grads = check_grads
        self.amp_patience = amp_patience
        self.check_checkpoints = check_checkpoints
        self.max_names = max_names
        self._handles: list = []
        self._param_names: Dict[int, str] = {}
        self._losses: Optional[dict] = None
        self._runner = None
        self._batch_idx = 0
        self._iter_open = False
        self._uses_scaler = False
        self._bad_loss_streak = 0

    # ------------------------------------------------------------------ life cycle
    def before_train(self, runner) -> None:
        self._remove_handles()
        self._runner = runner
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._param_names = {id(p): n for n, p in model.named_parameters()}
        # The model's raw loss dict, for the message when a gradient check fails (the
        # optimiser step runs inside train_step, before after_train_iter sees the losses).
        self._handles.append(model.register_forward_hook(self._record_losses))
        wrappers = _optim_wrappers(runner.optim_wrapper)
        self._uses_scaler = any(getattr(w, 'loss_scaler', None) is not None for w in wrappers)
        if self.check_grads:
            for w in wrappers:
                self._handles.append(w.optimizer.register_step_pre_hook(self._check_grads))
        self._bad_loss_streak = 0

    def after_train(self, runner) -> None:
        self._remove_handles()
        self._runner = None

    def _remove_handles(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._batch_idx = batch_idx
        self._iter_open = True
        self._losses = None

    # ------------------------------------------------------------------ checks
    def _record_losses(self, module, args, output) -> None:
        if module.training and isinstance(output, dict):
            self._losses = {k: (v.detach() if isinstance(v, torch.Tensor) else
                                [t.detach() for t in v] if isinstance(v, (list, tuple))
                                else v) for k, v in output.items()}

    def _check_grads(self, optimizer, args, kwargs) -> None:
        """Optimizer step pre-hook: every gradient must be finite (raise otherwise)."""
        grads = [p.grad for group in optimizer.param_groups for p in group['params']
                 if p.grad is not None]
        if _all_finite(grads):
            return
        bad = [self._param_names.get(id(p), f'<unnamed {tuple(p.shape)}>')
               for group in optimizer.param_groups for p in group['params']
               if p.grad is not None and p.grad.numel() and not p.grad.is_sparse
               and not bool(torch.isfinite(p.grad).all())]
        terms = self._non_finite_terms(self._losses or {})
        what = (f'Non-finite loss at {self._where()}: {", ".join(terms)}; found' if terms
                else f'Non-finite gradients at {self._where()} from a finite loss, found')
        raise NonFiniteError(
            f'{what} before the optimiser step (the weights were not updated); non-finite '
            f'gradients in {self._names(bad)}. Loss terms: '
            f'{self._format_losses(self._losses)}. {self._advice()}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        values = outputs if isinstance(outputs, dict) else {}
        bad = self._non_finite_terms(values)
        if self._agree(bool(bad), values):
            if self._uses_scaler and self._bad_loss_streak < self.amp_patience:
                self._bad_loss_streak += 1
                runner.logger.warning(
                    f'NonFiniteCheckHook: non-finite loss at {self._where()} '
                    f'({self._format_losses(values)}); the loss scaler skips this step '
                    f'({self._bad_loss_streak} of {self.amp_patience} tolerated in a row)')
                return
            streak = (f' ({self._bad_loss_streak + 1} iterations in a row under the loss '
                      'scaler)' if self._uses_scaler else '')
            terms = ', '.join(bad) if bad else 'on another process'
            raise NonFiniteError(
                f'Non-finite loss at {self._where()}{streak}: {terms}. Loss terms: '
                f'{self._format_losses(values)}. {self._advice()}')
        self._bad_loss_streak = 0
        if self.check_checkpoints and self._checkpoint_due(runner, epoch_end=False):
            self._check_state(runner)

    def after_train_epoch(self, runner) -> None:
        self._iter_open = False
        if self.check_checkpoints and self._checkpoint_due(runner, epoch_end=True):
            self._check_state(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not self.check_checkpoints:
            return
        bad = non_finite_tensors({k: v for k, v in checkpoint.items() if k != 'message_hub'})
        if bad:
            raise NonFiniteError(
                f'Refusing to save a checkpoint at {self._where(runner)}: non-finite values '
                f'in {self._names(bad)}. {self._advice(runner)}')

    # ------------------------------------------------------------------ helpers
    @classmethod
    def _non_finite_terms(cls, values: dict) -> List[str]:
        """The loss entries (keys containing ``'loss'``, the ones mmengine sums into the
        total) that are not finite; other logged values such as ``acc`` are not checked."""
        return [k for k, v in values.items() if 'loss' in k and cls._is_number(v)
                and not math.isfinite(_as_float(v))]

    @staticmethod
    def _is_number(value) -> bool:
        return isinstance(value, (torch.Tensor, float, int)) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, torch.Tensor)
                                                     for v in value))

    @staticmethod
    def _agree(flag: bool, values: dict) -> bool:
        """The flag, OR-ed over all processes when training is distributed."""
        if not is_distributed():
            return flag
        device = next((v.device for v in values.values() if isinstance(v, torch.Tensor)),
                      torch.device('cpu'))
        t = torch.tensor([int(flag)], device=device)
        all_reduce(t, op='max')
        return bool(t.item())

    def _check_state(self, runner) -> None:
        """Raise before a checkpoint is due if the model or optimiser state is non-finite
        (before CheckpointHook deletes its oldest file)."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = {'state_dict': model.state_dict()}
        for i, w in enumerate(_optim_wrappers(runner.optim_wrapper)):
            state[f'optimizer{i or ""}'] = w.optimizer.state_dict().get('state', {})
        bad = non_finite_tensors(state)
        if bad:
            raise NonFiniteError(
                f'Non-finite training state after {self._where(runner)} (a checkpoint was '
                f'due; it is not written): {self._names(bad)}. Loss terms of this '
                f'iteration: {self._format_losses(self._losses)}. {self._advice(runner)}')

    @staticmethod
    def _checkpoint_due(runner, epoch_end: bool) -> bool:
        """Whether a ``CheckpointHook`` saves at this point (its own condition)."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook):
                continue
            try:
                if epoch_end and hook.by_epoch and (
                        hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                        or (hook.save_last and hook.is_last_train_epoch(runner))):
                    return True
                if not epoch_end and not hook.by_epoch and (
                        hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                        or (hook.save_last and hook.is_last_train_iter(runner))):
                    return True
            except (AttributeError, TypeError):  # another mmengine version: check anyway
                return True
        return False

    def _where(self, runner=None) -> str:
        runner = runner or self._runner
        if runner is None:
            return 'an unknown iteration'
        # runner.iter counts finished iterations: inside one it is the 0-based index.
        where = f'iteration {runner.iter + int(self._iter_open)}'
        if isinstance(getattr(runner, '_train_loop', None), EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1}, batch {self._batch_idx + 1})'
        return where

    def _names(self, names: List[str]) -> str:
        shown = ', '.join(names[:self.max_names])
        more = len(names) - self.max_names
        return shown + (f' and {more} more' if more > 0 else '')

    @staticmethod
    def _format_losses(losses: Optional[dict]) -> str:
        if not losses:
            return 'not recorded'
        parts: List[Tuple[str, str]] = []
        for k, v in losses.items():
            try:
                parts.append((k, f'{_as_float(v):.4g}'))
            except (TypeError, ValueError):
                continue
        return ', '.join(f'{k}={v}' for k, v in parts) or 'not recorded'

    def _advice(self, runner=None) -> str:
        runner = runner or self._runner
        last = None
        if runner is not None:
            path = osp.join(runner.work_dir, 'last_checkpoint')
            if osp.isfile(path):
                with open(path) as f:
                    last = f.read().strip() or None
        where = (f'The last checkpoint written, {last}, holds finite values and can be '
                 'resumed (--resume).' if last else 'No checkpoint was written.')
        return (f'Training stopped. {where} Usual causes: a learning rate too high for the '
                'batch size (try a lower lr, a longer warm-up or optim_wrapper.clip_grad), '
                'or bad input data; switch this check off with '
                'default_hooks.non_finite=None.')

