"""A scenario (its ``to_dict()`` form) written back as a TOML file that ``load_scenario`` reads.

Sections become ``[tables]`` (nested: ``[router.retry]``), lists of sections
``[[faults]]``; distributions (tables with a ``dist`` key) and other values are
inline. ``None`` (a field the algorithm does not use) is left out, as TOML has no null.
"""

from __future__ import annotations

from typing import Any

from ..sweepfile import toml_value


def _is_section(value: Any) -> bool:
    return isinstance(value, dict) and "dist" not in value


def _is_section_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_section(v) for v in value)


def scenario_toml(data: dict, header: str = "") -> str:
    """TOML text for a scenario dict; ``header`` becomes leading comment lines."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    _table(lines, "", data, top=True)
    return "\n".join(lines).strip("\n") + "\n"


def _table(lines: list[str], name: str, data: dict, top: bool = False) -> None:
    values = {k: v for k, v in data.items() if v is not None and not _is_section(v) and not _is_section_list(v)}
    if not top:
        lines += ["", f"[{name}]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    for key, value in data.items():
        dotted = f"{name}.{key}" if name else key
        if _is_section(value):
            _table(lines, dotted, value)
        elif _is_section_list(value):
            for item in value:
                lines += ["", f"[[{dotted}]]"]
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items() if v is not None]
