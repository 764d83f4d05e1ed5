# Copyright (c) mmpsearch contributors. All rights reserved.
"""The index tools as a user runs them (fresh interpreters): build from a video, calibrate,
query across cameras, "not present", resume after a kill, bad input, build from a dump."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from mmpsearch.retrieval import GalleryIndex

_HERE = osp.dirname(osp.abspath(__file__))
_REPO = osp.dirname(osp.dirname(_HERE))
if _HERE not in sys.path:  # the test model's config imports it as `blob_model`
    sys.path.insert(0, _HERE)
from blob_model import draw_scene, write_model  # noqa: E402
FPS = 10.0


def _run(*args, check=True, **kw):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_REPO, _HERE]), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args], cwd=_REPO, env=env, capture_output=True,
                          text=True, timeout=600, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed:\n{proc.stdout}\n{proc.stderr}')
    return proc


def _tool(name):
    return osp.join(_REPO, 'tools', 'index', name)


def _camera_a_frame(t):
    """Camera A at frame t: identities 0 and 1 walk all along, 2 during frames 5-14,
    3 only during frames 20-29 (2.0-2.9 s)."""
    ids, pos = [0, 1], [(10 + 3 * t, 40), (200 - 2 * t, 120)]
    if 5 <= t < 15:
        ids.append(2)
        pos.append((140, 20 + t))
    if 20 <= t < 30:
        ids.append(3)
        pos.append((260 - 4 * (t - 20), 60))
    return draw_scene(ids, pos, background=(110, 120, 100))


def _write_video(path, frames=40, size=(320, 240)):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), FPS, size)
    assert writer.isOpened()
    truth = []
    for t in range(frames):
        img, boxes = _camera_a_frame(t)
        writer.write(img)
        truth.append(boxes)
    writer.release()
    return truth


def _labelled_split(folder):
    """Annotated frames of two other cameras (identities 0-5, 5 seen once only)."""
    items = []
    scenes = [([0, 1, 4], 1.0), ([2, 3, 5], 0.9), ([0, 2, 4], 0.85), ([1, 3], 1.0),
              ([0, 3, 4], 0.9), ([1, 2], 0.85)]
    for k, (ids, gain) in enumerate(scenes):
        pos = [(20 + 100 * j, 30 + 40 * (j % 2)) for j in range(len(ids))]
        img, boxes = draw_scene(ids, pos, background=(60 + 20 * k, 90, 140 - 10 * k),
                                gain=gain)
        name = f'label_{k}.jpg'  # compressed, like the footage
        cv2.imwrite(osp.join(folder, name), img, [cv2.IMWRITE_JPEG_QUALITY, 60])
        items.append(dict(image=name, boxes=boxes, ids=ids))
    with open(osp.join(folder, 'labels.json'), 'w') as f:
        json.dump(items, f)
    return osp.join(folder, 'labels.json')


@pytest.fixture(scope='module')
def footage(tmp_path_factory):
    root = tmp_path_factory.mktemp('footage')
    cfg, ckpt = write_model(str(root))
    video = str(root / 'cam_a.mp4')
    truth = _write_video(video)
    index = str(root / 'cam_a.index')
    out = _run(_tool('build.py'), cfg, ckpt, '--gallery', video, '--out', index,
               '--frame-step', '2', '--shard-frames', '4', '--no-progress')
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(root=root, cfg=cfg, ckpt=ckpt, video=video, truth=truth, index=index,
                stats=stats)


def test_video_query_across_cameras_and_not_present(footage):
    """End to end: a video is indexed; a person seen by another camera is found at the
    right time; after calibration an identity absent from the video is "not present"."""
    root, index = footage['root'], footage['index']
    assert footage['stats']['frames'] == 20 and footage['stats']['detections'] > 40
    labels = _labelled_split(str(root))
    curve = str(root / 'pr.png')
    cal = json.loads(_run(_tool('calibrate.py'), index, '--labelled', labels,
                          '--target-precision', '0.95', '--topk', '5', '--curve',
                          curve).stdout.strip().splitlines()[-1])
    assert cal['precision'] >= 0.95 and cv2.imread(curve) is not None
    assert GalleryIndex.open(index).threshold == pytest.approx(cal['similarity'])
    # camera B: another background and exposure
    query, boxes = draw_scene([3, 4], [(40, 50), (200, 60)], background=(70, 70, 150),
                              gain=0.9)
    qpath = str(root / 'query_b.png')
    cv2.imwrite(qpath, query)
    picture = str(root / 'hits.png')
    out = _run(_tool('query.py'), index, '--query', qpath, '--bbox',
               *map(str, boxes[0]), '--topk', '5', '--out', picture).stdout
    hits = [json.loads(line) for line in out.splitlines() if line.startswith('{')]
    assert hits and cv2.imread(picture) is not None
    top = hits[0]
    assert top['source'] == footage['video']
    assert 20 <= top['frame'] < 30 and top['time'] == pytest.approx(top['frame'] / FPS)
    x1, y1, x2, y2 = footage['truth'][top['frame']][2]  # identity 3's box in that frame
    assert abs(top['box'][0] - x1) <= 3 and abs(top['box'][3] - y2) <= 3
    assert all(20 <= h['frame'] < 30 for h in hits)  # every hit above threshold is right
    # the video left out (as a query's own frame is): no hit from it
    out = _run(_tool('query.py'), index, '--query', qpath, '--bbox', *map(str, boxes[0]),
               '--threshold', 'none', '--exclude-source', footage['video']).stdout
    assert not any(json.loads(line)['source'] == footage['video']
                   for line in out.splitlines() if line.startswith('{'))
    # identity 4 never walks through camera A
    out = _run(_tool('query.py'), index, '--query', qpath, '--bbox',
               *map(str, boxes[1])).stdout
    assert 'not found above threshold' in out and not any(
        line.startswith('{') for line in out.splitlines())


def test_inferencer_accepts_an_index(footage):
    from mmengine.config import Config

    from mmpsearch.apis import PersonSearchInferencer
    inferencer = PersonSearchInferencer(Config.fromfile(footage['cfg']), footage['ckpt'],
                                        device='cpu', show_progress=False)
    query, boxes = draw_scene([2], [(100, 60)], background=(90, 60, 60), gain=0.95)
    res = inferencer(footage['index'], query=query, query_bbox=boxes[0], topk=3)
    assert res['hits'] and all(5 <= h['frame'] < 15 for h in res['hits'])
    cbgm = inferencer.search_index(footage['index'], query, boxes[0], topk=3, cbgm=True,
                                   threshold=None)
    assert 5 <= cbgm['hits'][0]['frame'] < 15
    # another checkpoint is another model: refused
    _, other = write_model(str(footage['root']), seed=1)
    stranger = PersonSearchInferencer(Config.fromfile(footage['cfg']), other, device='cpu',
                                      show_progress=False)
    with pytest.raises(ValueError, match='checkpoint sha256'):
        stranger(footage['index'], query=query, query_bbox=boxes[0])


def test_killed_build_resumes_without_duplicates(footage, tmp_path):
    video = str(tmp_path / 'long.mp4')
    _write_video(video, frames=40, size=(320, 240))
    index = str(tmp_path / 'long.index')
    args = [_tool('build.py'), footage['cfg'], footage['ckpt'], '--gallery', video,
            '--out', index, '--shard-frames', '2', '--no-progress']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_REPO, _HERE]), OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, *args], cwd=_REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = osp.join(index, 'manifest.json')
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if osp.isfile(manifest) and len(json.load(open(manifest))['shards']) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    partial = GalleryIndex.open(index)
    done = sum(len(v) for v in partial.covered().values())
    assert 0 < done < 40, 'the build should have been killed mid-way'
    _run(*args)
    resumed = GalleryIndex.open(index, verify=True)
    reference = str(tmp_path / 'ref.index')
    _run(*[a if a != index else reference for a in args])
    ref = GalleryIndex.open(reference)
    assert len(resumed) == len(ref)
    keys = [(r['frame'], *r['box']) for r in resumed.records(np.arange(len(resumed)))]
    assert len(set(keys)) == len(keys)  # nothing indexed twice
    assert keys == [(r['frame'], *r['box']) for r in ref.records(np.arange(len(ref)))]
    assert np.array_equal(resumed.embeddings(np.arange(len(resumed))),
                          ref.embeddings(np.arange(len(ref))))


def test_bad_input_names_the_file(footage, tmp_path):
    base = [_tool('build.py'), footage['cfg'], footage['ckpt'], '--no-progress']
    missing = str(tmp_path / 'missing.mp4')
    proc = _run(*base, '--gallery', missing, '--out', str(tmp_path / 'a'), check=False)
    assert proc.returncode != 0 and f'gallery input not found: {missing}' in proc.stderr
    folder = tmp_path / 'photos'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), draw_scene([0], [(10, 10)])[0])
    (folder / 'b.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    proc = _run(*base, '--gallery', str(folder), '--out', str(tmp_path / 'b'), check=False)
    assert proc.returncode != 0 and f'cannot decode image file {folder / "b.jpg"}' in \
        proc.stderr
    (folder / 'clip.mp4').write_bytes(b'\x00' * 100)
    os.remove(folder / 'b.jpg')
    proc = _run(*base, '--gallery', str(folder / 'clip.mp4'), '--out',
                str(tmp_path / 'c'), check=False)
    assert proc.returncode != 0 and f'cannot open video {folder / "clip.mp4"}' in proc.stderr
    # a truncated manifest / a corrupt shard: the query tool names the file
    index = str(tmp_path / 'copy.index')
    import shutil
    shutil.copytree(footage['index'], index)
    shard = sorted(os.listdir(osp.join(index, 'shards')))[0]
    with open(osp.join(index, 'shards', shard), 'r+b') as f:
        f.truncate(20)
    proc = _run(_tool('query.py'), index, '--query', str(folder / 'a.png'), '--bbox', '10',
                '10', '40', '100', check=False)
    assert proc.returncode != 0 and shard in proc.stderr and 'damaged' in proc.stderr
    with open(osp.join(index, 'manifest.json'), 'r+') as f:
        f.truncate(50)
    proc = _run(_tool('query.py'), index, '--query', str(folder / 'a.png'), '--bbox', '10',
                '10', '40', '100', check=False)
    assert proc.returncode != 0 and 'manifest.json is not valid JSON' in proc.stderr


def test_build_from_a_results_dump(footage, tmp_path):
    from mmpsearch.evaluation import make_dump, write_dump
    from mmpsearch.evaluation.toy_data import random_case
    case = random_case(np.random.default_rng(0), num_images=12, dim=8, num_queries=4)
    dump = str(tmp_path / 'results.pkl')
    write_dump(dump, make_dump(case.records(), case.search_protocol))
    index = str(tmp_path / 'dump.index')
    stats = json.loads(_run(_tool('build.py'), footage['cfg'], footage['ckpt'], '--from-dump',
                            dump, '--out', index, '--no-progress').stdout.splitlines()[-1])
    kept = sum(int((s >= 0.5).sum()) for s in case.det_scores)
    assert stats['rows'] == kept
    idx = GalleryIndex.open(index)
    i = next(k for k, s in enumerate(case.det_scores) if (s >= 0.5).any())
    j = int(np.nonzero(case.det_scores[i] >= 0.5)[0][0])
    hit = idx.search(case.det_feats[i][j], topk=1)[0].hits[0]
    assert hit.source == case.search_protocol['image_ids'][i]
    assert np.allclose(hit.box, case.det_bboxes[i][j])


def test_two_process_build_equals_one_process(footage, tmp_path):
    index = str(tmp_path / 'dist.index')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_REPO, _HERE]), OMP_NUM_THREADS='1',
               PYTHON=sys.executable, PORT=str(29500 + os.getpid() % 1000))
    proc = subprocess.run(['bash', osp.join(_REPO, 'tools', 'index', 'dist_build.sh'),
                           footage['cfg'], footage['ckpt'], '2', '--gallery', footage['video'],
                           '--out', index, '--frame-step', '2', '--shard-frames', '3',
                           '--no-progress'], cwd=_REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dist, single = GalleryIndex.open(index, verify=True), GalleryIndex.open(footage['index'])
    assert not osp.exists(osp.join(index, 'parts'))
    assert len(dist) == len(single)
    rows = np.arange(len(single))
    strip = [{k: v for k, v in r.items() if k != 'uid'} for r in dist.records(rows)]
    assert strip == [{k: v for k, v in r.items() if k != 'uid'} for r in single.records(rows)]
    assert np.array_equal(dist.embeddings(rows), single.embeddings(rows))
    assert dist.covered() == single.covered()
