# Copyright (c) mmpsearch contributors. All rights reserved.
"""The repeat sampler of query-centric training (spnet.md §4.1).

SPNet's ``sampler_mode: repeat`` shuffles the image indices each epoch and repeats every
index ``k = 2`` times *consecutively*, so a batch of 8 holds 4 images × 2 independently
augmented views. With several processes, each rank takes a slice of the shuffled
*images* (views of one image stay on one rank, in one batch when the batch size is a
multiple of ``num_repeats``).
"""
import math
from typing import Iterator, Optional, Sized

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.logging import print_log
from torch.utils.data import Sampler

from mmpsearch.registry import DATA_SAMPLERS


class ViewIndex(int):
    """A dataset index that also says which augmented view of the image it is.

    ``int`` subclass, so any dataset accepts it; the person-search datasets copy
    ``view_idx`` into the data info (and the packed metainfo).
    """

    def __new__(cls, index: int, view_idx: int = 0):
        obj = super().__new__(cls, index)
        obj.view_idx = int(view_idx)
        return obj

    def __reduce__(self):  # keep view_idx through DataLoader worker queues
        return (ViewIndex, (int(self), self.view_idx))

    def __repr__(self) -> str:
        return f'ViewIndex({int(self)}, view_idx={self.view_idx})'


@DATA_SAMPLERS.register_module()
class RepeatSampler(Sampler):
    """Each image ``num_repeats`` times in a row, in a shuffled image order.

    Args:
        dataset (Sized): the dataset.
        num_repeats (int): consecutive views of each image (SPNet: 2).
        shuffle (bool): shuffle the images each epoch.
        seed (int, optional): base seed; the order of epoch ``e`` uses ``seed + e``
            (SPNet: numpy seed ``0 + epoch``). ``None`` draws a seed shared by all ranks.
        round_up (bool): pad the image list so every rank gets as many images.
        batch_size (int, optional): only checked: a batch size that is not a multiple of
            ``num_repeats`` would split an image's views over two batches (warning).
    """

    def __init__(self, dataset: Sized, num_repeats: int = 2, shuffle: bool = True,
                 seed: Optional[int] = None, round_up: bool = True,
                 batch_size: Optional[int] = None):
        if num_repeats < 1:
            raise ValueError(f'num_repeats must be >= 1, got {num_repeats}')
        rank, world_size = get_dist_info()
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.num_repeats = int(num_repeats)
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.round_up = round_up
        self.epoch = 0
        n = len(dataset)
        if round_up:
            self.num_images = math.ceil(n / world_size)
            self.total_images = self.num_images * world_size
        else:
            self.num_images = math.ceil((n - rank) / world_size)
            self.total_images = n
        if batch_size is not None and batch_size % self.num_repeats:
            print_log(f'RepeatSampler: batch size {batch_size} is not a multiple of '
                      f'num_repeats={self.num_repeats}; some views of an image will fall '
                      'in different batches', logger='current')

    def _image_order(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.RandomState(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.round_up and self.total_images > n:
            reps = math.ceil(self.total_images / max(n, 1))
            order = np.tile(order, reps)[:self.total_images]
        return order[self.rank:self.total_images:self.world_size]

    def __iter__(self) -> Iterator[ViewIndex]:
        for idx in self._image_order().tolist():
            for view in range(self.num_repeats):
                yield ViewIndex(idx, view)

    def __len__(self) -> int:
        return self.num_images * self.num_repeats

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (a new image order); called by mmengine's loops."""
        self.epoch = epoch
