# Copyright (c) mmpsearch contributors. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmpsearch module that registers components.

    Args:
        init_default_scope (bool): also make ``mmpsearch`` the current default scope
            (as mmdet's ``register_all_modules`` does for ``mmdet``).
    """
    import mmdet.datasets  # noqa: F401
    import mmdet.evaluation  # noqa: F401
    import mmdet.models  # noqa: F401
    import mmpretrain.models  # noqa: F401

    import mmpsearch.apis  # noqa: F401
    import mmpsearch.datasets  # noqa: F401
    import mmpsearch.engine  # noqa: F401
    import mmpsearch.evaluation  # noqa: F401
    import mmpsearch.models  # noqa: F401
    import mmpsearch.visualization  # noqa: F401
    if init_default_scope:
        never_created = (DefaultScope.get_current_instance() is None
                         or not DefaultScope.check_instance_created('mmpsearch'))
        if never_created:
            DefaultScope.get_instance('mmpsearch', scope_name='mmpsearch')
            return
        current = DefaultScope.get_current_instance()
        if current.scope_name != 'mmpsearch':
            warnings.warn(f'The current default scope "{current.scope_name}" is not '
                          '"mmpsearch"; `register_all_modules` creates a new one.')
            stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S%f')
            DefaultScope.get_instance(f'mmpsearch-{stamp}', scope_name='mmpsearch')


def ensure_default_scope(cfg):
    """Give a config without ``default_scope`` the ``mmpsearch`` one (in place).

    The Runner resolves every ``type`` through the config's default scope and falls back
    to ``'mmengine'``, where no mmpsearch component exists: a config written without the
    shared ``_base_/default_runtime.py`` would fail with ``SPNet is not in the
    mmengine::model registry``. A scope the config names is kept.

    Returns:
        Config: ``cfg``.
    """
    if cfg.get('default_scope', None) is None:
        cfg.default_scope = 'mmpsearch'
    return cfg
