"""Typed validation of plain data (as TOML gives it) into frozen config dataclasses, and back.

The schema is the dataclasses themselves: each field's type hint says what a
value may be (numbers, whole numbers, booleans, strings, ``Literal`` choices,
lists, nested sections, ``Distribution`` specs, ``float | Literal[...]`` for "a
number or a word"), its metadata the range (``gt``, ``ge``, ``le``) and whether
a table must give it (``required``). ``build(cls, data)`` checks every key, type
and value and raises ``ConfigError`` naming the dotted field and what it
accepts; ``to_dict`` turns a config object back into plain data;
``apply_overrides`` sets ``--set`` style ``section.key=value`` items in plain data.

A section that is one of several classes is annotated with ``OneOf`` (chosen by
a tag key). This module knows no particular section: ``simrouter.config.sections``
declares the scenario with it, ``simrouter.config.loader`` reads files into it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from ..distributions import Distribution, from_spec
from ..errors import ConfigError, unknown_key_message


class OneOf:
    """Marks a section that is one of several config classes, chosen by its ``tag``
    key (``[breaker] preset = "hystrix"``; a missing tag means ``default``).

    Annotate the field ``Annotated[A | B, OneOf("kind", {"a": A, "b": B}, "a")]``.
    Each class accepts only its own keys; an override that changes the tag starts
    the section afresh from that class's defaults (see ``apply_overrides``).
    """

    __slots__ = ("tag", "choices", "default")

    def __init__(self, tag: str, choices: dict[str, type], default: str):
        self.tag = tag
        self.choices = choices
        self.default = default


# ---------------------------------------------------------------- overrides


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"backend.capacity=8"`` -> (["backend", "capacity"], 8); value parsed as TOML."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("--set", f"expected section.key=value, got {item!r}")
    path = key.split(".")
    if any(not part for part in path):
        raise ConfigError("--set", f"expected a dotted key like backend.capacity, got {key!r}")
    raw = raw.strip()
    if "\n" in raw or "\r" in raw:
        raise ConfigError(key, f"--set takes a one-line value, got {raw!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def apply_overrides(data: dict, overrides: typing.Iterable[str], root: type) -> dict:
    """Set each dotted key in a nested dict (list items by index: faults.0.end=40);
    ``root`` is the config class ``data`` describes (it says which keys choose a class)."""
    import copy

    data = copy.deepcopy(data)
    parsed = [parse_override(item) for item in overrides]
    # A change of class (breaker.preset) comes first, so the other keys apply to the new class.
    parsed.sort(key=lambda item: not _sets_one_of_tag(root, item[0]))
    for path, value in parsed:
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            where = ".".join(path[: depth + 1])
            child = _list_item(node, part, where) if isinstance(node, list) else node.setdefault(part, {})
            if not isinstance(child, (dict, list)):
                raise ConfigError(where, f"is a value, not a section; cannot set {'.'.join(path)}")
            node = child
        last = path[-1]
        if isinstance(node, list):
            index = _index(last, len(node), ".".join(path))
            node[index] = value
        else:
            if _sets_one_of_tag(root, path) and node.get(last, _one_of_at(root, path[:-1]).default) != value:
                node.clear()  # the old class's keys mean nothing to the new one
            node[last] = value
    return data


def _one_of_at(root: type, section: list[str]) -> OneOf | None:
    """The ``OneOf`` of the ``root`` section at this path, if it is one."""
    hint: Any = root
    for part in section:
        if typing.get_origin(hint) is list and part.isdigit():  # an item of a list section (deployments.1)
            hint = typing.get_args(hint)[0]
            continue
        if not dataclasses.is_dataclass(hint):
            return None
        hint = _unwrap_optional(typing.get_type_hints(hint, include_extras=True).get(part))
    if typing.get_origin(hint) is Annotated:
        return next((meta for meta in hint.__metadata__ if isinstance(meta, OneOf)), None)
    return None


def _unwrap_optional(hint: Any) -> Any:
    """``X | None`` -> ``X`` (a section that may be unset); anything else as it is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
        rest = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def _sets_one_of_tag(root: type, path: list[str]) -> bool:
    one_of = _one_of_at(root, path[:-1])
    return one_of is not None and path[-1] == one_of.tag


def _index(part: str, length: int, where: str) -> int:
    if not part.isdigit() or int(part) >= length:
        raise ConfigError(where, f"expected a list index from 0 to {length - 1}")
    return int(part)


def _list_item(node: list, part: str, where: str) -> Any:
    return node[_index(part, len(node), where)]


# ---------------------------------------------------------------- validation


def build(cls: type, data: Any, base_dir: Path | None = None) -> Any:
    """Validate a plain nested dict into the config class ``cls`` (``base_dir``:
    where relative file paths in it, e.g. empirical samples, are resolved)."""
    return _build(cls, data, "", base_dir)


def _build(cls: type, data: Any, path: str, base_dir: Path | None, label: str | None = None) -> Any:
    where = path or "the scenario"
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a table (section), got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    # A section whose keys depend on a choice in it (``CHOICE``: the limiter's algorithm) narrows them.
    accepted = getattr(cls, "accepted_keys", lambda data: None)(data) or list(fields)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else key
        if key not in accepted:
            where = label or (f"[{path}]" if path else "the top level")
            if accepted != list(fields):
                where += f" with {cls.CHOICE} = {data.get(cls.CHOICE)!r}"
            raise ConfigError(dotted, unknown_key_message(key, accepted, where))
        kwargs[key] = _convert(hints[key], value, dotted, fields[key].metadata, base_dir)
    for name, spec in fields.items():
        if spec.metadata.get("required") and name not in data:
            raise ConfigError(f"{path}.{name}" if path else name, f"is required in {label or f'[{path}]'}; give {', '.join(n for n, f in fields.items() if f.metadata.get('required'))}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise placed(exc, path) from None
    except TypeError as exc:  # pragma: no cover - a bug, not a user error
        raise ConfigError(where, str(exc)) from None


def placed(exc: ConfigError, path: str) -> ConfigError:
    """``exc`` raised by the own checks of the section at ``path``, naming its field
    where it is. A section's checks name their fields as if it stood at its usual
    place (``limiter.burst``, ``breaker.max_ejection_time``, ``faults.error_rate``):
    that first part is replaced by ``path`` (``deployments.1.limiter.burst``,
    ``faults.0.error_rate``), in the field and wherever the message names it."""
    if not path or exc.field == path or exc.field.startswith(path + "."):
        return exc
    head, dot, rest = exc.field.partition(".")
    message = re.sub(rf"(?<![\w.]){re.escape(head)}\.(?=\w)", lambda _: path + ".", exc.message)
    message = message.replace(f"[{head}]", f"[{path}]")
    return ConfigError(f"{path}.{rest}" if dot else path, message)


def _build_one_of(one_of: OneOf, data: Any, path: str, base_dir: Path | None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a table (section), got {data!r}")
    choice = data.get(one_of.tag, one_of.default)
    if not isinstance(choice, str) or choice not in one_of.choices:
        raise ConfigError(f"{path}.{one_of.tag}", f"expected one of {', '.join(map(repr, one_of.choices))}, got {choice!r}")
    return _build(one_of.choices[choice], data, path, base_dir, label=f"[{path}] with {one_of.tag} = {choice!r}")


def _convert(hint: Any, value: Any, field: str, meta: Any, base_dir: Path | None) -> Any:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        one_of = next((item for item in hint.__metadata__ if isinstance(item, OneOf)), None)
        if one_of is not None:
            return _build_one_of(one_of, value, field, base_dir)
        return _convert(typing.get_args(hint)[0], value, field, meta, base_dir)
    if _is_number_or_choice(hint):  # e.g. warmup: seconds or "auto"
        choices = next(typing.get_args(arg) for arg in typing.get_args(hint) if typing.get_origin(arg) is Literal)
        if value in choices and isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(field, f"expected a number or one of {', '.join(map(repr, choices))}, got {value!r}")
        return _convert(float, value, field, meta, base_dir)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]  # TOML has no null
        return _convert(hint, value, field, meta, base_dir)
    if hint is Distribution:
        return from_spec(value, field, base_dir)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, field, base_dir)
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(field, f"expected a list (TOML array of tables [[{field}]]), got {value!r}")
        return [_convert(item_type, item, f"{field}.{i}", {}, base_dir) for i, item in enumerate(value)]
    if origin is dict:  # a TOML table of strings ([request] headers)
        _, item_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(field, f"expected a table (e.g. {field.rpartition('.')[2]} = {{ Name = \"value\" }}), got {value!r}")
        return {key: _convert(item_type, item, f"{field}.{key}", {}, base_dir) for key, item in value.items()}
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(field, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(field, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(field, f"expected a whole number, got {value!r}")
        return _check_range(int(value), field, meta)
    if hint is float:
        if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity"):
            value = math.inf  # how JSON results write infinity
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(field, f"expected a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise ConfigError(field, f"expected a number, got an integer too large for a float ({str(value)[:20]}...)") from None
        if math.isnan(value):
            raise ConfigError(field, "expected a number, got nan")
        return _check_range(value, field, meta)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(field, f"expected a string, got {value!r}")
        if meta.get("path") and base_dir is not None and value and not Path(value).is_absolute():
            return str(base_dir / value)  # a file named relative to the scenario file
        return value
    raise ConfigError(field, f"unsupported field type {hint}")  # pragma: no cover


def _check_range(value: float, field: str, meta: Any) -> float:
    if "gt" in meta and not value > meta["gt"]:
        raise ConfigError(field, f"expected a value > {meta['gt']}, got {value}")
    if "ge" in meta and not value >= meta["ge"]:
        raise ConfigError(field, f"expected a value >= {meta['ge']}, got {value}")
    if "le" in meta and not value <= meta["le"]:
        raise ConfigError(field, f"expected a value <= {meta['le']}, got {value}")
    return value


def _is_number_or_choice(hint: Any) -> bool:
    """``float | Literal[...]``: a number, or one of a few words."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return False
    args = typing.get_args(hint)
    return len(args) == 2 and float in args and any(typing.get_origin(arg) is Literal for arg in args)


# ---------------------------------------------------------------- back to plain data


def to_dict(obj: Any) -> Any:
    """A plain, TOML/JSON-ready form of a config object (distributions as specs)."""
    if isinstance(obj, Distribution):
        return obj.spec()
    if dataclasses.is_dataclass(obj):  # None: a key the section does not use (TOML has no null)
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if getattr(obj, f.name) is not None}
    if isinstance(obj, list):
        return [to_dict(item) for item in obj]
    return obj
