# Copyright (c) mmpsearch contributors. All rights reserved.
"""Read the config text stored in a checkpoint without executing it.

A Runner checkpoint stores its config as text (mmengine's ``Config.pretty_text``, in
``message_hub.runtime_info.cfg`` and ``meta.cfg``). mmengine's inferencers rebuild it with
``Config.fromstring(text, '.py')``, which *executes* the text (and imports its
``custom_imports``): a checkpoint could run any code that way. Loading weights must never
run code (docs/design.md, "Loading artefacts"), so :func:`parse_literal_config` reads
the text as data: a sequence of ``name = value`` statements whose values are literals
(strings, numbers, booleans, ``None``), lists, tuples, sets, ``{...}`` dicts, ``dict(k=v,
...)`` calls and signed numbers, which is exactly what ``pretty_text`` writes. Anything else
(imports, other calls, attributes, names, comprehensions, lambdas, operators) is refused
with :class:`UnsafeConfigError` naming the source and line; pass the config file
explicitly then. Nothing of the stored config is imported or executed, and
``custom_imports``/``_base_`` entries in it are plain data.
"""
import ast
from typing import Any, Dict

__all__ = ['UnsafeConfigError', 'parse_literal_config', 'stored_config']


class UnsafeConfigError(ValueError):
    """The stored config is not a plain literal config; nothing of it was executed."""


def _snippet(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 80 else text[:77] + '...'


class _Reader:

    def __init__(self, source: str):
        self.source = source

    def refuse(self, node: ast.AST, what: str):
        raise UnsafeConfigError(
            f'{self.source}: the stored config is not a plain literal config (line '
            f'{getattr(node, "lineno", "?")}: {what}: {_snippet(node)!r}); it was not '
            'executed. Pass the config file explicitly.')

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if node.value is Ellipsis:
                self.refuse(node, 'an ellipsis')
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
                and isinstance(node.operand, ast.Constant) \
                and type(node.operand.value) in (int, float, complex):
            v = node.operand.value
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    self.refuse(elt, 'an unpacking')
                items.append(self.value(elt))
            try:
                return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
            except TypeError:  # an unhashable set member
                self.refuse(node, 'an unhashable set member')
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:
                    self.refuse(node, 'a ** unpacking')
                key = self.value(k)
                if isinstance(key, (list, dict, set)):
                    self.refuse(k, 'an unhashable dict key')
                out[key] = self.value(v)
            return out
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == 'dict' and not node.args:
            out = {}
            for kw in node.keywords:
                if kw.arg is None:
                    self.refuse(node, 'a ** unpacking')
                out[kw.arg] = self.value(kw.value)
            return out
        self.refuse(node, f'a {type(node).__name__} expression')

    def module(self, text: str) -> Dict[str, Any]:
        try:
            tree = ast.parse(text, filename=self.source, mode='exec')
        except SyntaxError as err:
            raise UnsafeConfigError(f'{self.source}: the stored config is not valid Python '
                                    f'({err.msg}, line {err.lineno})') from None
        out = {}
        for stmt in tree.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)):
                self.refuse(stmt, f'a {type(stmt).__name__} statement (only `name = value`)')
            out[stmt.targets[0].id] = self.value(stmt.value)
        return out


def parse_literal_config(text: str, source: str = 'config text') -> Dict[str, Any]:
    """Parse config text made of ``name = literal`` statements, without executing it.

    Args:
        text (str): the config text (mmengine ``pretty_text`` style).
        source (str): where it comes from (a checkpoint path), for messages.

    Returns:
        dict: the config as a plain dict.

    Raises:
        UnsafeConfigError: the text holds anything but literal assignments.
    """
    if not isinstance(text, str):
        raise UnsafeConfigError(f'{source}: the stored config is a {type(text).__name__}, '
                                'not config text')
    return _Reader(source).module(text)


def stored_config(checkpoint: dict, source: str) -> Dict[str, Any]:
    """The config a Runner stored in ``checkpoint``, parsed by :func:`parse_literal_config`.

    Args:
        checkpoint (dict): a loaded checkpoint.
        source (str): the checkpoint's path, for messages.

    Returns:
        dict: the config.

    Raises:
        ValueError: the checkpoint stores no config.
        UnsafeConfigError: the stored config is not a literal config.
    """
    text = None
    if isinstance(checkpoint, dict):
        hub = checkpoint.get('message_hub')
        info = hub.get('runtime_info') if isinstance(hub, dict) else None
        if isinstance(info, dict):
            text = info.get('cfg')
        meta = checkpoint.get('meta')
        if text is None and isinstance(meta, dict):
            text = meta.get('cfg')
    if text is None:
        raise ValueError(f'{source} stores no config (message_hub.runtime_info.cfg or '
                         'meta.cfg): pass the config file, e.g. '
                         "PersonSearchInferencer('configs/spnet/<config>.py', weights)")
    return parse_literal_config(text, source)
