"""Python source of config values: how the written config states them."""
from __future__ import annotations

import keyword
from typing import Any, Optional

WIDTH = 98  # the line length the written config keeps to
NO_WRAP = 10 ** 6  # a width no value reaches: always one line


class Code(str):
    """A value written into the config as code (e.g. a variable name), not as a literal."""


class Braces(dict):
    """A dict written as ``{'key': value}`` (keys that are not identifiers, e.g. custom_keys);
    ``extra`` holds further items as code (e.g. a ``**{... for i in range(n)}`` unpacking)."""

    extra: tuple = ()


def plain(value: Any) -> Any:
    """ConfigDict / tuples / lists -> plain Python containers (recursively)."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, Braces):
        out = Braces((k, plain(v)) for k, v in value.items())
        out.extra = value.extra
        return out
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _is_kwarg(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


def _items(value):
    """(prefix, items as (key text, value), suffix) of a container."""
    if isinstance(value, dict):
        if not isinstance(value, Braces) and all(_is_kwarg(k) for k in value):
            return 'dict(', [(f'{k}=', v) for k, v in value.items()], ')'
        return '{', [(f'{k!r}: ', v) for k, v in value.items()], '}'
    if isinstance(value, tuple):
        return '(', [('', v) for v in value], ',)' if len(value) == 1 else ')'
    return '[', [('', v) for v in value], ']'


def python_source(value: Any, indent: int = 0, col: Optional[int] = None,
                  width: int = WIDTH) -> str:
    """Python source of a config value starting at column ``col`` of a line indented by
    ``indent``: on one line if it fits, else one item per line."""
    col = indent if col is None else col
    if isinstance(value, Code):
        return str(value)
    if not isinstance(value, (dict, list, tuple)):
        return repr(value)
    prefix, items, suffix = _items(value)
    extra = getattr(value, 'extra', ())
    one_line = prefix + ', '.join(k + one_line_source(v) for k, v in items) + suffix
    if (col + len(one_line) <= width or not items) and not extra:
        return one_line
    pad = ' ' * (indent + 4)
    lines = [pad + k + python_source(v, indent + 4, indent + 4 + len(k), width) + ','
             for k, v in items]
    lines += [pad + line for line in extra]
    return prefix + '\n' + '\n'.join(lines) + '\n' + ' ' * indent + suffix.lstrip(',')


def one_line_source(value: Any) -> str:
    """Python source of a config value on one line, however long."""
    return python_source(value, 0, 0, NO_WRAP)
