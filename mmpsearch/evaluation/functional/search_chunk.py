# Copyright (c) mmpsearch contributors. All rights reserved.
"""Exact protocol counts for one chunk of queries (the inner part of ``search.py``).

Steps, for all protocols of the chunk at once:

1. one float32 GEMM gives the bucket coordinate ``x`` of every (query, detection) pair
   (``rank_counts.BucketGrid``; bucket = ``floor(x)``);
2. true positives: for every (query, target image) the most similar detection over the
   IoU threshold, with its float64 similarity ``t`` (a "threshold");
3. one pass per query over its detections from two buckets under its lowest threshold
   up: the bucket histogram of each protocol's gallery items, and the "band" items, those
   in the three buckets around some threshold of the query;
4. each band item is compared with the thresholds of its query in neighbouring buckets,
   exactly (float64) where it is within ``eps`` of one of them;
5. ``#(s >= t)`` = items two or more buckets above ``t``'s bucket (histogram suffix;
   certainly larger, by the error bound) + band items ``>= t``; the same for ``> t``;
   then AP (precision at each true positive) and ranks (top-k), equal similarities
   ordered by the protocol's append order (``_ties_before``).

Optional CBGM (``cbgm.py``) runs before step 2 on full histograms and replaces some
similarities; those detections move to the bucket of their new value and are compared
with it.
"""
import numpy as np

from .cbgm import cbgm_rerank_image
from .gallery import ranges_to_indices
from .iou import match_threshold, paired_iou
from .rank_counts import ThresholdTable

_KEY = 1 << 32  # (chunk row, column) pair key = row * _KEY + column


class SearchChunk:
    """Evaluate every protocol on the queries ``rows`` (global query rows).

    Args:
        shared (SimpleNamespace): evaluation-wide state built by ``evaluate_search``
            (columns, grid, galleries and their indexes, outputs, options).
        rows (np.ndarray): (c,) query rows of this chunk.
        exact (object): float64 similarity cache of this chunk (``_ExactSims``).
        tables (dict, optional): per-chunk gallery tables shared with the other detection
            sets of the same chunk (filled on first use).
    """

    def __init__(self, shared, rows, exact, tables=None):
        self.sh = shared
        self.tables = {} if tables is None else tables
        self.rows = rows
        self.c = len(rows)
        self.nb = shared.grid.num_bins
        self.exact = exact
        grid = shared.grid
        self.x = grid.bucket_coords(grid.augment_queries(shared.q64[rows]), shared.g_aug)
        grid.check(self.x, shared.q64[rows], shared.cols.feats)

    # ------------------------------------------------------------------ structure
    def _state(self, gi):
        """Rows of this chunk in protocol ``gi`` and its membership tables."""
        sh = self.sh
        g, cols = sh.galleries[gi], sh.cols
        qi = sh.qi_of_row[gi][self.rows]
        local = np.nonzero(qi >= 0)[0]
        qi = qi[local]
        pmap = np.full(self.c, -1, np.int64)
        pmap[local] = np.arange(len(local))
        st = dict(local=local, qi=qi, pmap=pmap, mods=None, hist=None)
        if g.kind == 'all_but_query':
            own = sh.queries.image_idx[self.rows[local]]
            if g.cross_camera:
                st['lo'], st['hi'] = cols.cam_start[own], cols.cam_end[own]
            else:
                st['lo'] = cols.img_start[own]
                st['hi'] = st['lo'] + cols.img_count[own]
        else:
            # slot of each gallery image of each row (-1: not in the gallery)
            tab = self.tables.get(gi)
            if tab is None:
                tab = np.full((len(local), len(cols.img_count)), -1, np.int32)
                cnt = np.diff(g.gal_offsets)[qi]
                k = ranges_to_indices(g.gal_offsets[qi], cnt)
                tab[np.repeat(np.arange(len(local)), cnt), g.gal_images[k]] = g.gal_slots[k]
                self.tables[gi] = tab
            st['slot'] = tab
            st['n_items'] = sh.out[g.name].num_items[qi]
        return st

    def _slot(self, gi, st, p, img):
        """Gallery position deciding the append order of ``img`` for protocol row ``p``
        (first listing; the image index itself in all-but-query galleries, whose order
        is the test-image order)."""
        if self.sh.galleries[gi].kind == 'all_but_query':
            return np.asarray(img, np.int64)
        return st['slot'][p, img].astype(np.int64)

    def _members(self, gi, st, r, col):
        """Which (chunk row, column) pairs are items of their query's gallery."""
        p = st['pmap'][r]
        ok = p >= 0
        if not len(st['local']):
            return ok
        pp = np.maximum(p, 0)
        if self.sh.galleries[gi].kind == 'all_but_query':
            return ok & ~((col >= st['lo'][pp]) & (col < st['hi'][pp]))
        return ok & (st['slot'][pp, self.sh.cols.image[col]] >= 0)

    def _row_pass(self, states, rows, lo, hist_for, interest=None):
        """One pass per chunk row ``r``: bucket histograms of the gallery items with a
        bucket ``>= lo[r]`` for the protocols in ``hist_for`` and, with ``interest``, the
        row's band items. Lower items are never counted: ``lo`` is two buckets under the
        row's lowest threshold (0 when CBGM needs the whole row)."""
        sh, nb, cols = self.sh, self.nb, self.sh.cols
        for gi in hist_for:
            states[gi]['hist'] = np.zeros((len(states[gi]['local']), nb), np.int64)
        rs, cs = [], []
        for r in rows:
            xr = self.x[r]
            idx = np.flatnonzero(xr >= lo[r]) if lo[r] > 0 else None
            b = (xr if idx is None else xr[idx]).astype(np.intp)
            for gi in hist_for:
                st = states[gi]
                p = st['pmap'][r]
                if p < 0:
                    continue
                g = sh.galleries[gi]
                if g.kind == 'all_but_query':
                    a, e = st['lo'][p], st['hi'][p]
                    if idx is not None:
                        a, e = np.searchsorted(idx, a), np.searchsorted(idx, e)
                    h = np.bincount(b, minlength=nb) - np.bincount(b[a:e], minlength=nb)
                elif 8 * st['n_items'][p] < cols.num:  # small gallery: gather its items
                    q = st['qi'][p]
                    xg = xr[cols.cols_of(g.gal_images[g.gal_offsets[q]:g.gal_offsets[q + 1]])[0]]
                    h = np.bincount(xg[xg >= lo[r]].astype(np.intp), minlength=nb)
                else:
                    img = cols.image if idx is None else cols.image[idx]
                    h = np.bincount(b[st['slot'][p][img] >= 0], minlength=nb)
                st['hist'][p] = h
            if interest is not None:
                c = np.flatnonzero(interest[r][b])
                rs.append(np.full(len(c), r, np.int64))
                cs.append(c if idx is None else idx[c])
        if interest is None:
            return None
        z = np.zeros(0, np.int64)
        return (np.concatenate(rs) if rs else z), (np.concatenate(cs) if cs else z)

    # ------------------------------------------------------------------ main
    def run(self):
        sh = self.sh
        grid, nb = sh.grid, self.nb
        states = [self._state(gi) for gi in range(len(sh.galleries))]
        if sh.cbgm is not None:  # needs every row's histogram before the positives
            self._row_pass(states, range(self.c), np.zeros(self.c), range(len(states)))
            for gi, st in enumerate(states):
                st['mods'] = self._cbgm(gi, st)
        pos = [self._true_positives(gi, st) for gi, st in enumerate(states)]
        # all thresholds of the chunk ("union"), each tagged with its protocol
        u_g = np.concatenate([np.full(len(p['r']), gi) for gi, p in enumerate(pos)])
        u_k = np.concatenate([np.arange(len(p['r'])) for p in pos])
        u_r = np.concatenate([p['r'] for p in pos])
        u_t = np.concatenate([p['t'] for p in pos])
        beta = grid.bucket_of(u_t)
        # the band around every threshold; histograms only of rows with a threshold,
        # from two buckets under the row's lowest threshold up
        interest = np.zeros((self.c, nb), bool)
        for d in (-1, 0, 1):
            interest[u_r, np.clip(beta + d, 0, nb - 1)] = True
        lo = np.full(self.c, np.inf)
        np.minimum.at(lo, u_r, beta - 1.)
        lo = np.maximum(lo, 0.)
        todo = [gi for gi, st in enumerate(states) if st['hist'] is None]
        r, c = self._row_pass(states, np.unique(u_r), lo, todo, interest)
        table = ThresholdTable(u_r, u_t, grid, self.c, lookups=len(r))
        band = self._band_items(r, c, table, u_t)
        for gi, st in enumerate(states):
            self._finish(gi, st, pos[gi], band, table, u_g, u_k)

    def _true_positives(self, gi, st):
        sh = self.sh
        g, cols = sh.galleries[gi], sh.cols
        local, qi = st['local'], st['qi']
        n_t = g.tgt_offsets[qi + 1] - g.tgt_offsets[qi]
        tid = ranges_to_indices(g.tgt_offsets[qi], n_t)
        t_row, t_qi = np.repeat(local, n_t), np.repeat(qi, n_t)
        t_img, t_box = g.tgt_images[tid], g.tgt_boxes[tid]
        pcol, owner = cols.cols_of(t_img)
        ok = paired_iou(cols.bboxes[pcol], t_box[owner]) >= match_threshold(t_box)[owner]
        pcol, owner = pcol[ok], owner[ok]
        prow = t_row[owner]
        s = self._with_mods(st['mods'], prow, pcol, self.exact.get(prow, pcol))
        # per target the most similar; equal similarities: the first of the image's
        # sorted order (the higher index for 'reversed', the lower for 'stable')
        tb = cols.local[pcol] if sh.tie_order == 'reversed' else -cols.local[pcol]
        order = np.lexsort((tb, s, owner))
        own_sorted = owner[order]
        last = np.r_[own_sorted[1:] != own_sorted[:-1], True] if len(order) else \
            np.zeros(0, bool)
        pick = order[last]
        w = owner[pick]
        return dict(r=t_row[w], qi=t_qi[w], col=pcol[pick], t=s[pick], img=t_img[w],
                    slot=self._slot(gi, st, st['pmap'][t_row[w]], t_img[w]),
                    local=cols.local[pcol[pick]])

    @staticmethod
    def _with_mods(mods, r, c, s):
        if mods is None or len(mods[0]) == 0 or len(r) == 0:
            return s
        mkey, mval = mods
        key = r * _KEY + c
        pos = np.minimum(np.searchsorted(mkey, key), len(mkey) - 1)
        hit = mkey[pos] == key
        s = s.copy()
        s[hit] = mval[pos[hit]]
        return s

    def _band_items(self, r, c, table, u_t):
        """Band pairs (row, column), each paired with the thresholds of its row in
        neighbouring buckets; similarities exact (float64) wherever within ``eps`` of
        one of those thresholds, the float32 value otherwise (which then compares with
        every threshold as the exact value would)."""
        grid = self.sh.grid
        b = self.x[r, c].astype(np.int64)
        s = grid.sims_from_coords(self.x[r, c])
        pi, pj = table.neighbour_pairs(r, b)
        pu = table.order[pj]
        near = np.zeros(len(r), bool)
        near[pi[np.abs(s[pi] - u_t[pu]) <= grid.eps]] = True
        if near.any():
            s[near] = self.exact.get(r[near], c[near], cache=False)
        return dict(r=r, c=c, s=s, b=b, pi=pi, pu=pu)

    def _finish(self, gi, st, pos, band, table, u_g, u_k):
        """Counts, AP and ranks of protocol ``gi`` (see the module docstring)."""
        sh = self.sh
        g, nb, grid = sh.galleries[gi], self.nb, sh.grid
        res = sh.out[g.name]
        pmap = st['pmap']
        k_all = len(pos['r'])
        if k_all == 0:
            return
        which = np.unique(pmap[pos['r']])  # protocol rows with a threshold
        wmap = np.full(len(st['local']), -1, np.int64)
        wmap[which] = np.arange(len(which))
        hist = st['hist'][which]
        # band pairs of this protocol's thresholds whose item is in the gallery
        pi, pu = band['pi'], band['pu']
        sel = u_g[pu] == gi
        pi, pk = pi[sel], u_k[pu[sel]]
        keep = self._members(gi, st, band['r'][pi], band['c'][pi])
        ir, ic, isv = band['r'][pi[keep]], band['c'][pi[keep]], band['s'][pi[keep]]
        pk = pk[keep]
        if st['mods'] is not None and len(st['mods'][0]):
            # CBGM-replaced similarities: move the item to the bucket of its new value
            # and compare it there; drop its old band entry
            mkey, mval = st['mods']
            mr, mc = mkey // _KEY, mkey % _KEY
            use = wmap[pmap[mr]] >= 0
            mkey, mval, mr, mc = mkey[use], mval[use], mr[use], mc[use]
            old = ~np.isin(ir * _KEY + ic, mkey)
            ir, ic, isv, pk = ir[old], ic[old], isv[old], pk[old]
            w = wmap[pmap[mr]]
            nbk = grid.bucket_of(mval)
            np.add.at(hist, (w, self.x[mr, mc].astype(np.int64)), -1)
            np.add.at(hist, (w, nbk), 1)
            mi, mj = table.neighbour_pairs(mr, nbk)
            mu = table.order[mj]
            ms = u_g[mu] == gi
            ir = np.r_[ir, mr[mi[ms]]]
            ic = np.r_[ic, mc[mi[ms]]]
            isv = np.r_[isv, mval[mi[ms]]]
            pk = np.r_[pk, u_k[mu[ms]]]
        # items of the row in buckets >= beta + 2: certainly above; the band compared
        prefix = np.cumsum(hist, axis=1)
        w_t = wmap[pmap[pos['r']]]
        b2 = grid.bucket_of(pos['t']) + 2
        base = np.where(b2 < nb, prefix[w_t, -1] - prefix[w_t, np.clip(b2 - 1, 0, nb - 1)], 0)
        t = pos['t']
        ge = base + np.bincount(pk, weights=isv >= t[pk], minlength=k_all).astype(np.int64)
        gt = base + np.bincount(pk, weights=isv > t[pk], minlength=k_all).astype(np.int64)
        if np.any(ge - gt < 1):
            raise RuntimeError('internal error in the search evaluation: a true positive '
                               'is missing from its own tie block; please report it')
        rank = gt.copy()
        for i in np.nonzero(ge - gt > 1)[0]:
            tied = (pk == i) & (isv == t[i]) & ~((ir == pos['r'][i]) & (ic == pos['col'][i]))
            rank[i] += self._ties_before(gi, st, pos, i, ic[tied])
        # AP: each true positive contributes the precision at its similarity
        q = pos['qi']
        order = np.lexsort((t, pos['r']))
        rr, tt = pos['r'][order], t[order]
        start = np.r_[True, rr[1:] != rr[:-1]]
        run = np.r_[True, (rr[1:] != rr[:-1]) | (tt[1:] != tt[:-1])]
        idx = np.arange(k_all)
        row_end = np.minimum.accumulate(
            np.where(np.r_[start[1:], True], idx, k_all)[::-1])[::-1] + 1
        run_start = np.maximum.accumulate(np.where(run, idx, 0))
        cnt_pos = np.empty(k_all, np.int64)
        cnt_pos[order] = row_end - run_start  # positives of the row with t' >= t
        np.add.at(res.count_tp, q, 1)
        num = np.bincount(q, weights=cnt_pos / ge, minlength=g.num_queries)
        has = np.unique(q)
        res.ap[has] = num[has] / np.maximum(res.count_gt[has], 1)
        best = np.full(g.num_queries, np.iinfo(np.int64).max)
        np.minimum.at(best, q, rank)
        for j, k in enumerate((1, 5, 10)):
            res.topk[has, j] = best[has] < k

    def _ties_before(self, gi, st, pos, i, tied_cols):
        """Items of equal similarity ranked before true positive ``i``: with the released
        reversed stable sort those appended after it, else those appended before it."""
        cols = self.sh.cols
        c = np.asarray(tied_cols, np.int64)
        img = cols.image[c]
        slot = self._slot(gi, st, np.full(len(c), st['pmap'][pos['r'][i]]), img)
        # inside the target's own image, equal similarities keep the order of the
        # image's sorted list: a lower index comes later ('reversed') or earlier
        # ('stable'); either way it ranks before the true positive
        same = img == pos['img'][i]
        if self.sh.tie_order == 'reversed':
            other = slot > pos['slot'][i]
        else:
            other = slot < pos['slot'][i]
        return int(np.sum(np.where(same, cols.local[c] < pos['local'][i], other)))

    # ------------------------------------------------------------------ CBGM
    def _cbgm(self, gi, st):
        """Context bipartite graph matching over the images of each query's ``k1`` most
        similar gallery detections; returns the replaced similarities (keys, values)."""
        sh = self.sh
        cols = sh.cols
        k1 = sh.cbgm.k1
        keys, vals = [], []
        for k, r in enumerate(st["local"]):
            h = st['hist'][k]
            total = h.sum()
            if total == 0:
                continue
            csum = np.cumsum(h[::-1])[::-1]
            b_star = int(np.nonzero(csum >= min(k1, total))[0].max())
            c = np.flatnonzero(self.x[r] >= b_star - 1)
            c = c[self._members(gi, st, np.full(len(c), r), c)]
            s = self.exact.get(np.full(len(c), r), c)
            img = cols.image[c]
            slot = self._slot(gi, st, np.full(len(c), k), img)
            # released np.argsort(sims)[-k1:], with a stable sort: of equal values the
            # later-appended ones are taken
            top = np.lexsort((cols.local[c], slot, s))[-k1:]
            ctx = sh.qctx[self.rows[r]]
            for im in np.unique(img[top]):
                icols = cols.img_start[im] + np.arange(cols.img_count[im])
                hit = cbgm_rerank_image(ctx, np.asarray(cols.feats[icols], np.float64))
                if hit is not None:
                    keys.append(r * _KEY + icols[hit[0]])
                    vals.append(hit[1])
        keys = np.asarray(keys, np.int64)
        order = np.argsort(keys)
        return keys[order], np.asarray(vals, np.float64)[order]
