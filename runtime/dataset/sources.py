"""Input files: find them, scan them once (rows, the column, byte offsets), read one row range.

Every check that can fail for the whole job runs in `scan_inputs`, before any translation: a
missing input, a file that cannot be read, a column that no file has. What is wrong with one row
(null, not a string, empty, too long, invalid UTF-8 or JSON) becomes that row's `error` instead.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .options import OUTPUT_COLUMNS, DatasetError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_MISSING = object()  # a JSONL row without the column's key


@dataclass(frozen=True)
class InputFile:
    path: str  # absolute, as every node of a cluster must see it
    key: str  # the file's part-name prefix: its path under the input root, made filename-safe
    format: str  # jsonl, csv or parquet
    rows: int
    has_column: bool
    size: int
    mtime_ns: int
    offsets: tuple[int, ...] = ()  # jsonl: byte offset of rows 0, part_rows, 2 * part_rows, ...


def find_inputs(spec: str, exclude: Path | None = None) -> tuple[Path, list[Path]]:
    """INPUT (a file, a directory searched recursively, or a glob) -> (root, sorted files)."""
    path = Path(spec).expanduser()
    if glob.has_magic(spec):
        files = [Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)]
        files = [f for f in files if f.is_file() and f.suffix.lower() in FORMATS]
        fixed = []
        for part in Path(os.path.expanduser(spec)).parts:  # the root: the path before the magic
            if glob.has_magic(part):
                break
            fixed.append(part)
        root = Path(*fixed) if fixed else Path(".")
        what = f"no .jsonl, .csv or .parquet file matches {spec}"
    elif path.is_dir():
        files = [
            f
            for f in path.rglob("*")
            if f.is_file()
            and f.suffix.lower() in FORMATS
            and not any(p.startswith((".", "_")) for p in f.relative_to(path).parts)
        ]
        root = path
        what = f"no .jsonl, .csv or .parquet file in {spec}"
    elif path.is_file():
        if path.suffix.lower() not in FORMATS:
            raise DatasetError(
                f"{spec}: unknown input format {path.suffix or '(no extension)'!r}; use .jsonl, "
                ".ndjson, .csv or .parquet"
            )
        files, root, what = [path], path.parent, ""
    else:
        raise DatasetError(f"input not found: {spec}")
    if exclude is not None:
        out = exclude.resolve()
        files = [f for f in files if not f.resolve().is_relative_to(out)]
    if not files:
        raise DatasetError(what)
    return root.resolve(), sorted(f.resolve() for f in files)


def scan_inputs(spec: str, column: str, part_rows: int, exclude: Path | None = None):
    """INPUT -> the InputFiles, each counted and checked; raises DatasetError before any work."""
    root, paths = find_inputs(spec, exclude)
    files, keys = [], set()
    for path in paths:
        key = _key(path, root, keys)
        files.append(_scan(path, key, column, part_rows))
    if not any(f.has_column for f in files):
        raise DatasetError(f"no input file has a column {column!r} (--column); files: {spec}")
    return files


def _key(path: Path, root: Path, taken: set[str]) -> str:
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    key = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.replace("/", "__"))
    n = 2
    while key in taken:  # two paths made the same safe name: number the later one
        key = f"{key}~{n}"
        n += 1
    taken.add(key)
    return key


def _scan(path: Path, key: str, column: str, part_rows: int) -> InputFile:
    fmt = FORMATS[path.suffix.lower()]
    try:
        st = path.stat()
        if fmt == "jsonl":
            rows, has, offsets = _scan_jsonl(path, column, part_rows)
        elif fmt == "csv":
            rows, names = _scan_csv(path, column)
            has, offsets = column in names, ()
        else:
            rows, names = _scan_parquet(path)
            has, offsets = column in names, ()
        if fmt != "jsonl":
            clash = sorted(set(names) & set(OUTPUT_COLUMNS))
            if clash:
                raise DatasetError(
                    f"{path}: has column(s) {', '.join(clash)}, which the output adds; rename them"
                )
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from e
    return InputFile(str(path), key, fmt, rows, has, st.st_size, st.st_mtime_ns, offsets)


def _scan_jsonl(path: Path, column: str, part_rows: int):
    needle = json.dumps(column).encode()
    rows, has, offsets, pos = 0, False, [], 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                if rows % part_rows == 0:
                    offsets.append(pos)
                rows += 1
                has = (
                    has or needle in line
                )  # cheap: a row may still lack it (then its error says so)
            pos += len(line)
    return rows, has, tuple(offsets)


def _csv_options(column: str):
    from pyarrow import binary, csv

    # The column is read as bytes, so invalid UTF-8 fails one row, not the file.
    return csv.ConvertOptions(column_types={column: binary()})


def _scan_csv(path: Path, column: str):
    import pyarrow as pa
    from pyarrow import csv

    try:
        reader = csv.open_csv(path, convert_options=_csv_options(column))
        names = reader.schema.names
        rows = sum(batch.num_rows for batch in reader)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DatasetError(f"{path}: cannot read as CSV: {e}") from e
    return rows, names


def _scan_parquet(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DatasetError(f"{path}: cannot read as Parquet: {e}") from e
    return pf.metadata.num_rows, pf.schema_arrow.names


# -- reading one row range ------------------------------------------------------------------------


def read_rows(file: InputFile, start: int, end: int, offset: int, column: str):
    """Rows [start, end) of `file` -> (table of its columns, the column's values, row errors).

    values[i] is a Python object to check (MISSING where a JSONL row has no such key); errors[i] is
    a reason when the row itself could not be read (invalid UTF-8 or JSON), else None.
    """
    import pyarrow as pa

    n = end - start
    if file.format == "jsonl":
        return _read_jsonl(file.path, offset, n, column)
    if file.format == "csv":
        table = _read_csv(file, column).slice(start, n)
    else:
        table = _read_parquet(file.path, start, end)
    if table.num_rows != n:
        raise DatasetError(f"{file.path}: changed while the job ran (rows {start}-{end} not found)")
    if not file.has_column:
        values = [_MISSING] * n
    else:
        col = table.column(column)
        values = col.to_pylist()
        if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            # Keep the input column as text in the output; bad bytes become U+FFFD there.
            text = [None if v is None else v.decode("utf-8", "replace") for v in values]
            table = table.set_column(table.schema.get_field_index(column), column, pa.array(text))
    return table, values, [None] * n


def _read_jsonl(path: str, offset: int, n: int, column: str):
    records, values, errors = [], [], []
    with open(path, "rb") as f:
        f.seek(offset)
        while len(records) < n:
            line = f.readline()
            if not line:
                raise DatasetError(f"{path}: changed while the job ran (fewer rows than counted)")
            if not line.strip():
                continue
            record, error = _parse_line(line)
            records.append(record)
            errors.append(error)
            values.append(record.get(column, _MISSING) if error is None else None)
    return _table(records), values, errors


def _parse_line(line: bytes) -> tuple[dict, str | None]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return {}, f"invalid UTF-8: byte {e.start} of the line"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        return {}, f"invalid JSON: {e.msg} (character {e.pos})"
    if not isinstance(record, dict):
        return {}, f"not a JSON object: {type(record).__name__}"
    return record, None


def _table(records: list[dict]):
    """JSONL records -> a table; a column Arrow cannot type as one is kept as JSON text."""
    import pyarrow as pa

    names = list(dict.fromkeys(k for r in records for k in r))
    clash = sorted(set(names) & set(OUTPUT_COLUMNS))
    if clash:
        raise DatasetError(f"JSONL rows have key(s) {', '.join(clash)}, which the output adds")
    arrays = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError, OverflowError):
            # Strings stay as they are, other values become their JSON text.
            text = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
            try:
                arrays[name] = pa.array(text, pa.string())
            except (pa.ArrowInvalid, UnicodeEncodeError):  # a lone surrogate
                arrays[name] = pa.array([None if v is None else json.dumps(v) for v in values])
    if not arrays:
        return pa.table({"_": pa.nulls(len(records))}).drop(["_"])
    return pa.table(arrays)


_CSV_CACHE: dict = {}  # one CSV file, read whole: its parts follow each other in a worker


def _read_csv(file: InputFile, column: str):
    import pyarrow as pa
    from pyarrow import csv

    key = (file.path, file.size, file.mtime_ns, column)
    if key not in _CSV_CACHE:
        try:
            table = csv.read_csv(file.path, convert_options=_csv_options(column))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise DatasetError(f"{file.path}: cannot read as CSV: {e}") from e
        _CSV_CACHE.clear()
        _CSV_CACHE[key] = table
    return _CSV_CACHE[key]


def _read_parquet(path: str, start: int, end: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    groups, first, pos = [], None, 0
    for g in range(pf.metadata.num_row_groups):
        rows = pf.metadata.row_group(g).num_rows
        if pos < end and pos + rows > start:
            groups.append(g)
            first = pos if first is None else first
        pos += rows
    if not groups:
        return pa.table({})
    return pf.read_row_groups(groups).slice(start - first, end - start)


def check_text(value, column: str, max_chars: int) -> tuple[str | None, str | None]:
    """One cell -> (text to translate, None) or (None, the reason it is not translated)."""
    if value is _MISSING:
        return None, f"missing column: no {column!r} in this row or file"
    if value is None:
        return None, "null"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, f"invalid UTF-8: byte {e.start} of the value"
    if not isinstance(value, str):
        return None, f"not a string: {type(value).__name__}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        return None, f"invalid UTF-8: lone surrogate at character {e.start}"
    if not value.strip():
        return None, "empty"
    if len(value) > max_chars:
        return None, f"too long: {len(value)} characters (--max-chars {max_chars})"
    return value, None
