# Copyright (c) mmpsearch contributors. All rights reserved.
"""The ``mmpsearch`` registry scope.

Each registry is a child of mmengine's root registry of the same kind, as in
mmdet/mmyolo, so a config with ``default_scope='mmpsearch'`` resolves

* mmpsearch components unprefixed (``type='SwapPathHead'``),
* mmdet components with the ``mmdet.`` prefix (``type='mmdet.FPN'``),
* mmpretrain components with the ``mmpretrain.`` prefix (``type='mmpretrain.ConvNeXt'``),
* mmengine components unprefixed (hooks, optimizers, schedulers fall back to the root).

mmengine imports ``mmpsearch.registry`` when it switches to this scope, and each
registry imports its ``locations`` on first use, so configs need no ``custom_imports``
for mmpsearch itself. See docs/design.md, "Registry scope".
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import \
    RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

_SCOPE = 'mmpsearch'


def _child(name, parent, locations):
    return Registry(name, parent=parent, scope=_SCOPE, locations=locations)


RUNNERS = _child('runner', MMENGINE_RUNNERS, ['mmpsearch.engine'])
RUNNER_CONSTRUCTORS = _child('runner constructor', MMENGINE_RUNNER_CONSTRUCTORS,
                             ['mmpsearch.engine'])
LOOPS = _child('loop', MMENGINE_LOOPS, ['mmpsearch.engine'])
HOOKS = _child('hook', MMENGINE_HOOKS, ['mmpsearch.engine'])
DATASETS = _child('dataset', MMENGINE_DATASETS, ['mmpsearch.datasets'])
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, ['mmpsearch.datasets'])
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, ['mmpsearch.datasets.transforms'])
MODELS = _child('model', MMENGINE_MODELS, ['mmpsearch.models'])
MODEL_WRAPPERS = _child('model_wrapper', MMENGINE_MODEL_WRAPPERS, ['mmpsearch.models'])
WEIGHT_INITIALIZERS = _child('weight initializer', MMENGINE_WEIGHT_INITIALIZERS,
                             ['mmpsearch.models'])
OPTIMIZERS = _child('optimizer', MMENGINE_OPTIMIZERS, ['mmpsearch.engine'])
OPTIM_WRAPPERS = _child('optim_wrapper', MMENGINE_OPTIM_WRAPPERS, ['mmpsearch.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                    ['mmpsearch.engine'])
PARAM_SCHEDULERS = _child('parameter scheduler', MMENGINE_PARAM_SCHEDULERS,
                          ['mmpsearch.engine'])
METRICS = _child('metric', MMENGINE_METRICS, ['mmpsearch.evaluation'])
EVALUATOR = _child('evaluator', MMENGINE_EVALUATOR, ['mmpsearch.evaluation'])
TASK_UTILS = _child('task util', MMENGINE_TASK_UTILS, ['mmpsearch.models'])
VISUALIZERS = _child('visualizer', MMENGINE_VISUALIZERS, ['mmpsearch.visualization'])
VISBACKENDS = _child('vis_backend', MMENGINE_VISBACKENDS, ['mmpsearch.visualization'])
LOG_PROCESSORS = _child('log_processor', MMENGINE_LOG_PROCESSORS, ['mmpsearch.engine'])
INFERENCERS = _child('inferencer', MMENGINE_INFERENCERS, ['mmpsearch.apis'])
