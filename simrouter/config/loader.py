"""Loading scenarios: TOML files, built-in names, ``--set`` overrides, typed validation.

``load_scenario("concurrent")`` reads a built-in scenario;
``load_scenario("my.toml", overrides=["backend.capacity=8"])`` reads a file and
applies ``--set`` overrides (values parsed as TOML, falling back to a string).
``scenario_from_dict`` checks every key, type and value against the dataclasses
of ``simrouter.config.sections`` (with ``simrouter.config.schema``) and raises
``ConfigError`` naming the dotted field and what it accepts; ``to_dict`` turns a
config back into plain data.
"""

from __future__ import annotations

import tomllib
import typing
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, unknown_key_message
from . import schema
from .schema import parse_override, to_dict
from .sections import Scenario

__all__ = ["apply_overrides", "builtin_names", "load_scenario", "parse_override", "read_toml_file", "scenario_from_dict", "to_dict"]

# ---------------------------------------------------------------- loading


def builtin_names() -> list[str]:
    files = resources.files("simrouter.scenarios")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def load_scenario(source: str | Path | Scenario, overrides: typing.Iterable[str] = ()) -> Scenario:
    """A built-in scenario by name, a TOML file by path, or a Scenario, with overrides."""
    if isinstance(source, Scenario):
        return source.replace(overrides) if overrides else source
    data, base_dir = _read_source(source)
    return scenario_from_dict(apply_overrides(data, overrides), base_dir=base_dir)


def _read_source(source: str | Path) -> tuple[dict, Path | None]:
    text_source = str(source)
    path = Path(text_source)
    if path.suffix == ".toml" or path.exists():
        return read_toml_file(path, "scenario file"), path.parent
    names = builtin_names()
    if text_source not in names:
        hint = unknown_key_message(text_source, names, "built-in scenarios")
        raise ConfigError("", f"no scenario file or built-in scenario named {text_source!r}: {hint.replace('unknown key in built-in scenarios', 'not a built-in')}")
    text = resources.files("simrouter.scenarios").joinpath(f"{text_source}.toml").read_text()
    return _parse_toml(text, text_source), None


def read_toml_file(path: Path, what: str) -> dict:
    """The TOML table in ``path``; ConfigError if it cannot be read or parsed (``what``: its role)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"{path} is not UTF-8 text (TOML files are UTF-8)") from None
    return _parse_toml(text, str(path))


def _parse_toml(text: str, origin: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{origin} is not valid TOML: {exc}") from None


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Set each ``section.key=value`` override in plain scenario data (a copy;
    list items by index: faults.0.end=40; values parsed as TOML)."""
    return schema.apply_overrides(data, overrides, Scenario)


def scenario_from_dict(data: dict, base_dir: Path | None = None) -> Scenario:
    """Validate a plain nested dict (as TOML gives) into a Scenario."""
    return schema.build(Scenario, data, base_dir)
