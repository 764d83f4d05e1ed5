# Copyright (c) mmpsearch contributors. All rights reserved.
"""Toy study of OIMNet++ Fig. 1: L2 only vs BatchNorm + L2 vs ProtoNorm + L2 on
long-tailed, off-centre identity clusters.

Features of K identities are drawn around centres that are *not* centred on the origin (as
features from a ReLU network are not), with a long-tailed number of samples per identity.
Each normaliser is fitted on a training draw (batch statistics, as in one training step with
the whole set as the batch) and applied with those statistics to a fresh test draw; then
L2-normalised. We measure, on the test draw, the nearest-prototype accuracy (prototype =
normalised mean of an identity's normalised training features; cosine similarity), separately
for the majority identities and the minority ones (the rarest half), and the mean cosine
between the prototypes of different identities, over all pairs and over the pairs of minority
identities (lower = better separated). Numbers are
averaged over ``--trials`` random problems; the first 2-D problem is drawn.

Example:
    python tools/analysis_tools/protonorm_toy.py --out docs/images/protonorm_toy.png
"""
import argparse
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mmpsearch.models.necks import ProtoNorm1d  # noqa: E402

METHODS = ('L2 only', 'BatchNorm + L2', 'ProtoNorm + L2')


def make_problem(dim, num_ids, gen, offset=3.0, spread=1.0, noise=0.2, head=300, decay=0.4):
    """Long-tailed clusters: identity k has ``max(2, head * decay**k)`` samples.

    Returns:
        tuple: centres (K, dim), counts (K,) and a sampler ``draw(scale) -> (x, y)``.
    """
    centres = offset + spread * torch.randn(num_ids, dim, generator=gen)
    counts = torch.tensor([max(2, int(head * decay**k)) for k in range(num_ids)])

    def draw():
        y = torch.repeat_interleave(torch.arange(num_ids), counts)
        x = centres[y] + noise * torch.randn(len(y), dim, generator=gen)
        return x, y

    return centres, counts, draw


def fit_normaliser(method, x, y):
    """Return a function applying the method with statistics fitted on (x, y)."""
    if method == 'L2 only':
        return lambda z: F.normalize(z, dim=1)
    if method == 'BatchNorm + L2':
        norm = torch.nn.BatchNorm1d(x.shape[1], affine=False, momentum=1.0)
        norm(x)  # momentum 1: running statistics = this batch's statistics
    else:
        norm = ProtoNorm1d(x.shape[1], momentum=1.0)
        norm(x, y)  # labelled identities only: every row has its identity as key
        # ProtoNorm's running variance carries the unbiased factor, as BatchNorm's does.
    norm.eval()
    return lambda z: F.normalize(norm(z), dim=1)


def evaluate(method, train, test, num_ids, minority):
    (xtr, ytr), (xte, yte) = train, test
    apply = fit_normaliser(method, xtr, ytr)
    with torch.no_grad():
        ftr, fte = apply(xtr), apply(xte)
    protos = F.normalize(torch.stack([ftr[ytr == k].mean(0) for k in range(num_ids)]), dim=1)
    pred = (fte @ protos.t()).argmax(1)
    correct = pred == yte
    is_min = minority[yte]
    sim = protos @ protos.t()
    off = ~torch.eye(num_ids, dtype=torch.bool)
    pair_min = off & minority[:, None] & minority[None, :]
    return dict(acc_minority=correct[is_min].float().mean().item(),
                acc_majority=correct[~is_min].float().mean().item(),
                proto_cos=sim[off].mean().item(), minority_cos=sim[pair_min].mean().item(),
                features=(fte, yte))


def run(dim, num_ids, trials, seed):
    gen = torch.Generator().manual_seed(seed)
    totals = {m: dict(acc_minority=0., acc_majority=0., proto_cos=0., minority_cos=0.)
              for m in METHODS}
    first = None
    for t in range(trials):
        centres, counts, draw = make_problem(dim, num_ids, gen)
        minority = torch.zeros(num_ids, dtype=torch.bool)
        minority[num_ids // 2:] = True  # the rarer half of the identities
        train, test = draw(), draw()
        per = {}
        for m in METHODS:
            res = evaluate(m, train, test, num_ids, minority)
            per[m] = res
            for k in totals[m]:
                totals[m][k] += res[k] / trials
        if first is None:
            first = (train, per)
    return totals, first


def draw_figure(first, totals, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    (xtr, ytr), per = first
    num_ids = int(ytr.max()) + 1
    cmap = plt.get_cmap('tab10')
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.8))
    axes[0].scatter(xtr[:, 0], xtr[:, 1], s=6, c=[cmap(int(k) % 10) for k in ytr])
    axes[0].scatter([0], [0], marker='+', c='k', s=80)
    axes[0].set_title('(a) input features (long-tailed IDs)')
    axes[0].set_aspect('equal')
    theta = torch.linspace(0, 6.2832, 200)
    for ax, m in zip(axes[1:], METHODS):
        fte, yte = per[m]['features']
        # Jitter the radius by identity so that overlapping arcs stay visible.
        r = 1 + 0.04 * yte.float()
        ax.plot(theta.cos(), theta.sin(), c='0.8', lw=0.8)
        ax.scatter(fte[:, 0] * r, fte[:, 1] * r, s=6, c=[cmap(int(k) % 10) for k in yte])
        t = totals[m]
        ax.set_title(f'{m}\nminority: acc {100 * t["acc_minority"]:.1f}%, '
                     f'inter-ID cos {t["minority_cos"]:.2f}; majority acc '
                     f'{100 * t["acc_majority"]:.1f}%', fontsize=9)
        ax.set_aspect('equal')
        ax.set_xlim(-1.5, 1.5)
        ax.set_ylim(-1.5, 1.5)
    fig.suptitle(f'ProtoNorm toy study (OIMNet++ Fig. 1), 2-D, {num_ids} identities; '
                 'numbers: mean over trials', fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=osp.join(_REPO, 'docs/images/protonorm_toy.png'))
    parser.add_argument('--num-ids', type=int, default=8)
    parser.add_argument('--trials', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    print(f'{"dim":>4} {"method":<16} {"minority acc":>13} {"majority acc":>13} '
          f'{"proto cos":>10} {"minority cos":>13}')
    for dim in (2, 4):
        totals, first = run(dim, args.num_ids, args.trials, args.seed)
        for m in METHODS:
            t = totals[m]
            print(f'{dim:>4} {m:<16} {100 * t["acc_minority"]:>12.1f}% '
                  f'{100 * t["acc_majority"]:>12.1f}% {t["proto_cos"]:>10.3f} '
                  f'{t["minority_cos"]:>13.3f}')
        if dim == 2:
            draw_figure(first, totals, args.out)
    print(f'figure: {args.out}')


if __name__ == '__main__':
    main()
