# Copyright (c) mmpsearch contributors. All rights reserved.
"""tools/quickstart.sh refuses bad arguments before it sets anything up, and documents
``--seed`` (the per-seed numbers in docs/get_started.md are ``--seed 0/1/2`` runs)."""
import os.path as osp
import subprocess

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'quickstart.sh')


def _run(*args):
    return subprocess.run(['bash', SCRIPT, *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize('args', [('--seed', 'x'), ('--seed', '-1'), ('--seed',),
                                  ('--seed', '1.5')])
def test_bad_seed_is_refused_before_the_setup(args):
    proc = _run(*args)
    assert proc.returncode == 2
    assert '--seed needs a non-negative integer' in proc.stderr
    assert '[setup' not in proc.stdout  # nothing was installed or checked


def test_unknown_argument_is_refused():
    proc = _run('--epochs', '3')
    assert proc.returncode == 2 and "unknown argument '--epochs'" in proc.stderr


def test_help_documents_the_seed():
    proc = _run('--help')
    assert proc.returncode == 0 and '--seed N' in proc.stdout


def test_seed_reaches_the_training_command():
    with open(SCRIPT, encoding='utf-8') as f:
        script = f.read()
    assert 'TRAIN_OPTS+=("randomness.seed=$SEED")' in script
    assert 'mim train mmpsearch "$CONFIG" --work-dir "$WORK_DIR" "${TRAIN_OPTS[@]}"' in script
