# Copyright (c) mmpsearch contributors. All rights reserved.
"""Run a command as a user would: a fresh interpreter, the working tree first on
``PYTHONPATH`` (the venv may hold an installed copy of mmpsearch), the current directory
somewhere else (nothing may depend on it), and no pytest fixture (no default scope)."""
import os
import os.path as osp
import shlex
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def user_env(**extra) -> dict:
    """The environment of a user's shell with the working tree on ``PYTHONPATH`` and the
    interpreter running the tests first on ``PATH`` (``python``/``bash`` scripts find it)."""
    env = dict(os.environ)
    env.pop('PYTEST_CURRENT_TEST', None)
    env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env.update(extra)
    return env


def run_as_user(command, cwd, timeout=300, env=None, check=True):
    """Run ``command`` (a shell command line, as the docs show it) in ``cwd``.

    ``python`` is the interpreter running the tests; ``tools/...`` paths are relative to
    the working tree (the command runs elsewhere, so they are rewritten as absolute).

    Returns:
        subprocess.CompletedProcess: with text ``stdout``/``stderr``.
    """
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    argv = [osp.join(REPO, a) if a.startswith(('tools/', 'configs/')) else a for a in argv]
    if argv[0] == 'python':
        argv[0] = sys.executable
    out = subprocess.run(argv, cwd=str(cwd), env=env or user_env(), capture_output=True,
                         text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f'`{command}` exited with {out.returncode}\n--- stdout\n'
                             f'{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-5000:]}')
    return out
