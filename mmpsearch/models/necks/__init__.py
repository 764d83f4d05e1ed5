# Copyright (c) mmpsearch contributors. All rights reserved.
from .embedding_projector import EmbeddingProjector
from .proto_norm import (KEY_BACKGROUND, KEY_EXCLUDED, KEY_SINGLETON, ProtoNorm1d, ProtoNorm2d,
                         convert_batchnorm_to_protonorm, prototype_keys, prototype_keys_of)

__all__ = [
    'EmbeddingProjector', 'ProtoNorm1d', 'ProtoNorm2d', 'prototype_keys', 'prototype_keys_of',
    'convert_batchnorm_to_protonorm', 'KEY_SINGLETON', 'KEY_BACKGROUND', 'KEY_EXCLUDED'
]
