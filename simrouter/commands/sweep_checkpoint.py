"""The checkpoint of ``simrouter sweep --out`` and what ``--resume`` reads back.

``NAME.partial.csv`` beside ``--out`` holds the tidy table's rows (with the
``error`` column), one line appended and flushed per completed run, so a sweep
killed outright (SIGKILL, power loss) can still resume; it starts with the runs
being resumed and is removed once ``--out`` is written. ``resumed_runs`` reads
``--out`` and the checkpoint (a last line cut short by a kill is dropped) and
keeps their successful runs (``simrouter.sweeps.completed_runs``).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from ..errors import ConfigError
from ..sweeps import completed_runs, tidy_table


def checkpoint_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.partial.csv")


class Checkpoint:
    """The open checkpoint file of one sweep (see the module docstring)."""

    def __init__(self, path: Path, spec, done: dict):
        self.path, self.spec = path, spec
        text = tidy_table(spec, done, error_column=True).to_csv(index=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8")
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            raise ConfigError("--out", f"cannot write {path}: {exc.strerror or exc}") from None

    def add(self, key, figures: dict) -> None:
        """Append one run; a checkpoint that cannot be written (disk full) is given up with
        a warning rather than stopping the sweep: the results are still kept in memory."""
        if self._file.closed:
            return
        try:
            self._file.write(tidy_table(self.spec, {key: figures}, error_column=True).to_csv(index=False, header=False))
            self._file.flush()
        except OSError as exc:
            print(f"simrouter: warning: checkpoint {self.path} given up: {exc.strerror or exc}", file=sys.stderr)
            self._file.close()

    def remove(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass  # the unflushed tail of a checkpoint that is being deleted
        self.path.unlink(missing_ok=True)


def read_table(path: Path):
    """A tidy table written by ``write_tables`` or a ``Checkpoint`` (a last line cut
    short by a kill is dropped)."""
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        text = path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        return pd.read_csv(io.StringIO(text))
    except (OSError, ValueError) as exc:
        raise ConfigError("--resume", f"cannot read {path}: {exc}") from None


def resumed_runs(out: Path, spec) -> dict:
    """The successful runs recorded in ``out`` and its checkpoint (``sweeps.completed_runs``)."""
    done: dict = {}
    sources = [path for path in (checkpoint_path(out), out) if path.exists()]
    for path in sources:
        done.update(completed_runs(read_table(path), spec, str(path)))
    where = " and ".join(map(str, sources)) or f"{out} (not found)"
    print(f"simrouter: resuming: {len(done)} of {spec.runs} runs already done in {where}; running the other {spec.runs - len(done)}", file=sys.stderr)
    return done
