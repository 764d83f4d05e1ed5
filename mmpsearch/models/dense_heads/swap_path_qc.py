# Copyright (c) mmpsearch contributors. All rights reserved.
"""Query-centric (QC) path of :class:`SwapPathHead` (spnet.md §4.4, §6.2).

In QC, ``x_q`` is the loc embedding of a real person box and ``x_o = x_q - x_a``. Training
(§4.4) pairs the batch's GT boxes (the *queries*) with batch images by ``algo1``
(:class:`QCPairSampler`), puts a dense focal loss on all anchors of every selected pair,
and regresses 64 selected anchors per pair. Inference (§6.2) keeps, per query, the 100
anchors nearest to ``x_q`` and runs the stage-0 heads on them.

Identities. A query's identity key is its ``person_id`` when the person is labelled. An
unlabelled person has no id shared across views; with the optional
``gt_instances.instance_ids`` (index of the box in its image's annotation list) the key is
``(img_id, instance_id)``, as the released code's unique per-annotation ids. Without it the
key is unique per box, and pairs of such a query with *another view of its own image* are
excluded from sampling, so no view is taught that a visible person is absent.
"""
from typing import List, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor

from .qc_pair_sampler import PAIR_NEG

__all__ = ['SwapPathQCMixin']


class SwapPathQCMixin:
    """QC training and inference; mixed into :class:`SwapPathHead`."""

    # ------------------------------------------------------------------ queries
    @staticmethod
    def qc_queries(batch_gt_instances: List[InstanceData],
                   batch_img_metas: List[dict]) -> Tuple[InstanceData, Tensor]:
        """Every GT box of the batch as a query, with identity keys (§4.4.1).

        Boxes whose identity occurs more than once in the same image are dropped.

        Args:
            batch_gt_instances (list[InstanceData]): ``bboxes``, ``person_ids``,
                ``person_labels``, ``known`` (and optionally ``instance_ids``).
            batch_img_metas (list[dict]): ``img_id`` identifies views of one image.

        Returns:
            tuple[InstanceData, Tensor]: the queries (``img_inds``, ``bboxes``, ``id_keys``,
            ``person_labels``, ``known``, ``fallback`` = unlabelled without
            ``instance_ids``, ``view_group`` = index of the source image's ``img_id``) and
            the (N,) ``view_group`` of every image.
        """
        key_ids, view_ids, out, groups = {}, {}, [], []
        for i, (gt, meta) in enumerate(zip(batch_gt_instances, batch_img_metas)):
            img_id = meta.get('img_id', meta.get('img_path', i))
            group = view_ids.setdefault(img_id, len(view_ids))
            groups.append(group)
            known = gt.known.bool().tolist()
            inst_ids = gt.instance_ids.tolist() if 'instance_ids' in gt else None
            keys, fallback = [], []
            for b in range(len(gt)):
                if known[b]:
                    key = ('pid', int(gt.person_ids[b]))
                elif inst_ids is not None:
                    key = ('inst', img_id, int(inst_ids[b]))
                else:
                    key = ('box', i, b)  # unique: no identity shared across views
                keys.append(key_ids.setdefault(key, len(key_ids)))
                fallback.append(not known[b] and inst_ids is None)
            device = gt.bboxes.device
            unique = torch.tensor([keys.count(k) == 1 for k in keys], dtype=torch.bool,
                                  device=device).reshape(-1)
            n = int(unique.sum())
            out.append(InstanceData(
                img_inds=torch.full((n,), i, dtype=torch.long, device=device),
                bboxes=gt.bboxes[unique].float(),
                id_keys=torch.tensor(keys, dtype=torch.long, device=device)[unique],
                person_labels=gt.person_labels[unique].long(),
                known=gt.known[unique].bool(),
                fallback=torch.tensor(fallback, dtype=torch.bool,
                                      device=device).reshape(-1)[unique],
                view_group=torch.full((n,), group, dtype=torch.long, device=device)))
        return InstanceData.cat(out), torch.tensor(groups, device=out[0].bboxes.device)

    def _pair_masks(self, queries: InstanceData, num_images: int,
                    view_groups: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``inst``, ``self`` and ``exclude`` (N, Q) masks."""
        inst, is_self = self.qc_sampler.pair_masks(queries.id_keys, queries.img_inds,
                                                   queries.id_keys, queries.img_inds,
                                                   num_images)
        other_view = (view_groups[:, None] == queries.view_group[None, :]) & ~is_self
        exclude = other_view & queries.fallback[None, :]
        return inst, is_self, exclude

    @staticmethod
    def _distances(anchor_embeds: Tensor, img_inds: Tensor, query_embeds: Tensor) -> Tensor:
        """``||x_q - x_a||`` of each (image, query) row against all anchors, (P, K).

        Computed as sqrt(|q|^2 + |a|^2 - 2 q.a) in fp32 per image, so the (P, K, d)
        offsets of the dense loss are never materialised.
        """
        out = anchor_embeds.new_zeros((img_inds.numel(), anchor_embeds.shape[1]),
                                      dtype=torch.float)
        with torch.autocast(device_type=anchor_embeds.device.type, enabled=False):
            for i in img_inds.unique().tolist():
                sel = (img_inds == i).nonzero().squeeze(1)
                xa = anchor_embeds[i].float()
                xq = query_embeds[sel].float()
                sq = (xq * xq).sum(1)[:, None] + (xa * xa).sum(1)[None, :] - 2 * xq @ xa.t()
                out = out.index_put((sel,), sq.clamp(min=1e-12).sqrt())
        return out

    # ------------------------------------------------------------------ training
    def loss_qc(self, anchor_embeds: Tensor, anchors: Tensor, query_embeds: Tensor,
                queries: InstanceData, view_groups: Tensor) -> Tuple[dict, InstanceData]:
        """QC stage-0 losses (§4.4) and the selected rows.

        Args:
            anchor_embeds (Tensor): x_a, (N, K, d).
            anchors (Tensor): (K, 4).
            query_embeds (Tensor): x_q of every query, (Q, d).
            queries (InstanceData): from :meth:`qc_queries`.
            view_groups (Tensor): (N,) ``view_group`` of every image.

        Returns:
            tuple[dict, InstanceData | None]: ``loss_anchor_cls``, ``loss_bbox0``; the rows
            (``groups`` = pair index, ``valid`` False for negative pairs), None when the
            batch has no query (zero losses).
        """
        num_images = anchor_embeds.shape[0]
        inst, is_self, exclude = self._pair_masks(queries, num_images, view_groups)
        pairs, kinds = self.qc_sampler.sample_pairs(inst, is_self, exclude)
        if pairs.shape[0] == 0:
            # No query in the batch (every box cropped away): zero losses that keep the
            # graph, as the OC path gives (§4.8); no rows for the re-id loss.
            zero = anchor_embeds.sum() * 0. + query_embeds.sum() * 0.
            return dict(loss_anchor_cls=zero, loss_bbox0=zero.clone()), None
        img_i, qry_j = pairs[:, 0], pairs[:, 1]
        dist = self._distances(anchor_embeds, img_i, query_embeds[qry_j])
        logits = self.logits.forward_norm(dist)  # (P, K)

        priors = InstanceData(priors=anchors)
        labels, rows = [], []
        for p in range(pairs.shape[0]):
            i, j = int(img_i[p]), int(qry_j[p])
            gious = None
            if int(kinds[p]) != PAIR_NEG:
                # The query person's own box in image i (unique after de-duplication);
                # its identity labels are the query's.
                t = ((queries.img_inds == i) & (queries.id_keys == queries.id_keys[j])).nonzero()[0]
                target = InstanceData(bboxes=queries.bboxes[t], labels=t.new_zeros((1,)),
                                      person_labels=queries.person_labels[j:j + 1],
                                      known=queries.known[j:j + 1])
                assign = self.assigner.assign(priors, target)
                lab = (assign.gt_inds > 0).long()
                lab[assign.gt_inds < 0] = -1
                gious = bbox_overlaps(anchors, target.bboxes, mode='giou')[:, 0]
            else:
                target = InstanceData(bboxes=anchors.new_zeros((0, 4)),
                                      labels=queries.id_keys.new_zeros((0,)),
                                      person_labels=queries.id_keys.new_zeros((0,)),
                                      known=queries.known.new_zeros((0,)))
                lab = anchors.new_zeros((anchors.shape[0],), dtype=torch.long)
            labels.append(lab)
            sel = self.qc_sampler.select_anchors(dist[p].detach(), gious)
            pos = lab[sel] == 1
            order = torch.cat([sel[pos], sel[~pos]])  # positives first, as in OC rows
            row = self._rows(i, p, order, order.new_zeros(order.numel()),
                             int(pos.sum()), target)
            row.query_inds = order.new_full((order.numel(),), j)
            rows.append(row)
        losses = dict(loss_anchor_cls=self.dense_cls_loss(logits.reshape(-1),
                                                          torch.cat(labels)))
        rows = InstanceData.cat(rows)
        offsets = query_embeds[rows.query_inds] - anchor_embeds[rows.img_inds,
                                                                rows.anchor_inds]
        rows.bboxes = self.decode(anchors[rows.anchor_inds], self.reg_head(offsets))
        losses['loss_bbox0'] = self.reg_loss(rows.bboxes, rows.target_bboxes, rows.is_pos)
        return losses, rows

    # ------------------------------------------------------------------ inference
    def predict_qc(self, anchor_embeds: Tensor, anchors: Tensor,
                   batch_query_embeds: List[Tensor],
                   batch_img_metas: List[dict]) -> List[InstanceData]:
        """QC detections per (image, query) (§6.2 steps 1-4).

        Args:
            anchor_embeds (Tensor): x_a, (N, K, d).
            anchors (Tensor): (K, 4).
            batch_query_embeds (list[Tensor]): loc embeddings (Q_i, d) of the queries
                searched in each image.
            batch_img_metas (list[dict]): need ``img_shape``.

        Returns:
            list[InstanceData]: ``bboxes``, ``scores``, ``logits`` and ``groups`` (the
            query's row in ``batch_query_embeds[i]``), NMS applied per query.
        """
        cfg = self.test_cfg
        k = min(cfg.get('qc_topk', 100), anchors.shape[0])
        # queries per distance block: bounds the (block, K) distance matrix (PRW at full
        # size: ~2,000 queries x ~250k anchors would be 2 GB at once)
        block = max(1, int(cfg.get('qc_query_block', 256)))
        results = []
        for i, (xq, meta) in enumerate(zip(batch_query_embeds, batch_img_metas)):
            num_q = xq.shape[0]
            rows = torch.arange(num_q, device=anchors.device)
            idx = rows.new_zeros((num_q, k))
            with torch.autocast(device_type=anchors.device.type, enabled=False):
                xa = anchor_embeds[i].float()
                sq_a = (xa * xa).sum(1)[None, :]  # shared by every query block
                for a in range(0, num_q, block):
                    q = xq[a:a + block].float()
                    # ||q - a||^2 = |q|^2 + |a|^2 - 2 q.a; the ordering needs no sqrt
                    sq = (q * q).sum(1)[:, None] + sq_a - 2 * q @ xa.t()
                    idx[a:a + block] = sq.topk(k, dim=1, largest=False).indices
            offsets = xq[:, None, :] - anchor_embeds[i][idx]
            logits = self.logits(offsets).reshape(-1)
            scores = logits.sigmoid()
            groups = rows[:, None].expand(num_q, k).reshape(-1)
            keep = scores > cfg.get('score_thr', 0.5)
            flat = idx.reshape(-1)[keep]
            deltas = self.reg_head(offsets.reshape(-1, offsets.shape[-1])[keep])
            boxes = self.decode(anchors[flat], deltas)
            results.append(self.nms_clip(boxes, scores[keep], logits[keep],
                                         meta['img_shape'], groups=groups[keep]))
        return results
