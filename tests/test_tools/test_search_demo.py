# Copyright (c) mmpsearch contributors. All rights reserved.
"""The search demo and the inferencer API in a fresh process, exactly as
docs/get_started.md shows them (no default scope, no fixture, cwd outside the tree)."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from tests.test_apis.test_inferencer import _scene
from tests.user_process import REPO, run_as_user

_CONFIG = 'configs/spnet/spnet-s_convnext-atto_quickstart_synthetic-prw.py'


@pytest.fixture(scope='module')
def demo_files(tmp_path_factory):
    """An (untrained) checkpoint of the quick-start model, a query and a gallery folder."""
    from mmpsearch.registry import MODELS
    root = tmp_path_factory.mktemp('demo')
    cfg = Config.fromfile(osp.join(REPO, _CONFIG))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpsearch'):
        model = MODELS.build(cfg.model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(root / 'model.pth'))
    rng = np.random.default_rng(0)
    (root / 'my_gallery').mkdir()
    for i in range(2):
        cv2.imwrite(str(root / 'my_gallery' / f'g{i}.jpg'), _scene(rng)[0])
    query, boxes = _scene(rng)
    cv2.imwrite(str(root / 'q.jpg'), query)
    return root, boxes[0]


def test_search_demo_fresh_process(demo_files):
    root, box = demo_files
    bbox = ' '.join(str(v) for v in box)
    # docs/get_started.md, "Search your own images" (plus a score threshold of 0: the
    # model is untrained)
    out = run_as_user(f'python tools/search_demo.py {_CONFIG} model.pth --query q.jpg '
                      f'--bbox {bbox} --gallery my_gallery/ --topk 5 --out search.png '
                      '--score-thr 0', cwd=root)
    hits = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{')]
    assert 0 < len(hits) <= 5, out.stdout
    assert [h['rank'] for h in hits] == list(range(1, len(hits) + 1))
    assert cv2.imread(str(root / 'search.png')) is not None


def test_inferencer_api_fresh_process(demo_files):
    root, box = demo_files
    code = ('from mmpsearch.apis import PersonSearchInferencer\n'
            f'inferencer = PersonSearchInferencer({osp.join(REPO, _CONFIG)!r}, "model.pth", '
            'det_thresh=0.0, show_progress=False)\n'
            f'result = inferencer("my_gallery/", query="q.jpg", query_bbox={box!r}, topk=3)\n'
            'print(len(result["hits"]))\n'
            'from mmengine.registry import DefaultScope\n'
            '# the inferencer leaves the caller\'s scope as it was (none)\n'
            'print(DefaultScope.get_current_instance())\n')
    out = run_as_user(['python', '-c', code], cwd=root)
    assert out.stdout.splitlines()[-2:] == ['3', 'None'], out.stdout
