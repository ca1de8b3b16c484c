"""A report's table as a file a notebook reads: CSV, or Parquet (through pyarrow, optional) for a name ending in
.parquet. Both tables of `side report` (every generated image, table.py; every training image, by_image.py) are
written here, from typed columns handed over a part at a time, so that the caller decides how much it holds at once.

The file appears whole or not at all (atomic.replacing); a destination that cannot be written is one InputError
naming it. docs/REPORT_CSV.md describes the conventions (the byte-order mark, empty cells, guarded text)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import replacing
from ..errors import InputError, disk_full
from ..evidence.manifest import FORMULA_START, csv_cell

INT, FLOAT, FLOAT32, TEXT, BOOL = "int64", "float64", "float32", "string", "bool"  # as Parquet names them
PARQUET = ".parquet"

Part = Mapping[str, "list | np.ndarray"]  # a column name -> its cells in this part; None where a cell is empty


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # INT, FLOAT, FLOAT32, TEXT or BOOL: the Parquet type, and how the CSV writes the value


def write(out: str | Path, columns: Sequence[Column], parts: Iterable[Part]) -> int:
    """Every part's rows into `out`, in order; returns how many rows. Raises InputError naming `out` when it cannot
    be written (nothing is left there then), or for Parquet without pyarrow, before any part is read."""
    out = Path(out).expanduser().resolve()
    parquet = out.suffix.lower() == PARQUET
    if parquet:
        _pyarrow(out)
    if out.is_dir():
        raise InputError(out, "is a folder: name the file to write the table to")
    try:
        with replacing(out) as tmp:
            return (_write_parquet if parquet else _write_csv)(tmp, columns, parts)
    except OSError as e:
        why = "no space left on its disk" if disk_full(e) else f"cannot be written ({e.strerror or e})"
        raise InputError(out, f"{why}; nothing was written") from None


def _pyarrow(out: Path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(out, "writing Parquet needs pyarrow (pip install pyarrow), or name a .csv file") from None
    return pa, pq


def _rows(part: Part, columns: Sequence[Column]) -> int:
    return len(part[columns[0].name])


def _write_csv(path: Path, columns: Sequence[Column], parts: Iterable[Part]) -> int:
    n = 0
    # A byte-order mark, as in the export's pairs.csv: spreadsheet programs then read the file as UTF-8.
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow([c.name for c in columns])
        for part in parts:
            w.writerows(zip(*(_cells(part[c.name], c.kind) for c in columns), strict=True))
            n += _rows(part, columns)
    return n


def _cells(values: list | np.ndarray, kind: str) -> list:
    """One column's CSV cells; a column at a time, since a call per cell would take most of the writing time."""
    if kind == FLOAT32:
        # numpy's shortest text that reads back as the same float32: 0.8315 rather than 0.8314999938011169.
        if isinstance(values, np.ndarray):
            return np.asarray(values, np.float32).astype(str).tolist()
        return ["" if v is None else str(np.float32(v)) for v in values]
    if kind == BOOL:
        return ["" if v is None else int(v) for v in values]
    if kind == TEXT:
        return ["" if v is None else v if not v.startswith(FORMULA_START) else csv_cell(v) for v in values]
    return ["" if v is None else v for v in values]


def _write_parquet(path: Path, columns: Sequence[Column], parts: Iterable[Part]) -> int:
    pa, pq = _pyarrow(path)
    types = {INT: pa.int64(), FLOAT: pa.float64(), FLOAT32: pa.float32(), TEXT: pa.string(), BOOL: pa.bool_()}
    schema = pa.schema([(c.name, types[c.kind]) for c in columns])
    n = 0
    with pq.ParquetWriter(str(path), schema) as w:
        for part in parts:
            w.write_table(pa.table({c.name: pa.array(part[c.name], type=schema.field(c.name).type) for c in columns},
                                   schema=schema))
            n += _rows(part, columns)
        if not n:
            w.write_table(schema.empty_table())
    return n
