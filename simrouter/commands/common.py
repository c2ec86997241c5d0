"""Options and exit statuses shared by the subcommands.

Exit status: 0 success; 1 a target failed (only with ``--check``); 2 bad
configuration or usage (one message naming the field); 3 a sweep finished but
some of its runs failed (their rows say why); 130 interrupted by SIGINT (Ctrl-C),
143 by SIGTERM (``simrouter.interrupts``), completed work written first.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

EXIT_OK = 0
EXIT_TARGET_FAILED = 1
EXIT_CONFIG = 2
EXIT_RUNS_FAILED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def seed_arg(text: str) -> int:
    """argparse type: a seed, a whole number >= 0 (numpy's SeedSequence takes no negatives)."""
    return _whole(text, 0, None)


def port_arg(text: str) -> int:
    """argparse type: a TCP port, 0 (any free one) to 65535."""
    return _whole(text, 0, 65535)


def _whole(text: str, low: int, high: int | None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        accepted = f"from {low} to {high}" if high is not None else f">= {low}"
        raise argparse.ArgumentTypeError(f"expected a whole number {accepted}, got {text!r}")
    return value


def add_scenario_options(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """SCENARIO, --set and (optionally) --seed."""
    parser.add_argument("scenario", help="a built-in scenario name or a TOML file")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a field, e.g. --set backend.capacity=8 --set workload.rate=200 (repeatable)",
    )
    if seed:
        parser.add_argument("--seed", type=seed_arg, default=1, help="random seed (default 1); same seed and config, same result")


def run_label(args: argparse.Namespace) -> str:
    """The name a variant's plot files and report titles carry: ``--label``, or
    (without it) a short digest of the ``--set`` overrides ("" when there are none),
    so that variants of one scenario do not overwrite each other's files."""
    import hashlib

    label = getattr(args, "label", None)
    if label:
        return label
    overrides = getattr(args, "overrides", None) or []
    if not overrides:
        return ""
    return "set-" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]


def write_json(data: dict, path: Path, option: str = "--json") -> None:
    """Write ``data`` as indented JSON to ``path`` ('-': standard output), atomically."""
    text = json.dumps(data, indent=2)
    if str(path) == "-":
        print(text)
        return
    write_atomically(path, lambda temporary: temporary.write_text(text + "\n"), option)


def write_atomically(path: Path, write: Callable[[Path], None], option: str) -> None:
    """``write(temporary)`` then rename it over ``path``: a reader (or a later
    ``--resume``) sees the old file or the new one, never half of one. SIGINT /
    SIGTERM wait until the file is in place; an unwritable path is a ConfigError
    naming ``option``."""
    from ..errors import ConfigError
    from ..interrupts import shielded

    temporary = path.with_name(f".{path.name}.partial-write")
    try:
        with shielded():
            path.parent.mkdir(parents=True, exist_ok=True)
            write(temporary)
            os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(option, f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (where listeners bind by default)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
