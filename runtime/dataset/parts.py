"""The output directory: parts named by input file and row range, written to a temporary name and
renamed when complete, and a manifest that says which job they belong to.

    OUT/_manifest.json                                  model, options, inputs (refuse to mix jobs)
    OUT/_lock                                           one job writes here at a time
    OUT/books__genesis.jsonl.0000000000-0000001000.parquet   rows 0-999 of books/genesis.jsonl

Names starting with "_" or "." are skipped by Arrow, pandas and Spark when they read OUT as one
dataset. A part on disk is complete (rename is atomic), so a rerun skips it; what was being written
when a job died is a temporary file, removed by the next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from .options import DatasetError, DatasetOptions
from .sources import InputFile

MANIFEST = "_manifest.json"
LOCK = "_lock"
FORMAT = "traductor-dataset"


@dataclass(frozen=True)
class Part:
    file: InputFile
    start: int  # first row in the file
    end: int  # one past the last row
    row_id: int  # the first row's id: its position in the whole input (files sorted by path)
    offset: int  # jsonl: byte offset of row `start`
    suffix: str  # .parquet or .jsonl

    @property
    def name(self) -> str:
        return f"{self.file.key}.{self.start:010d}-{self.end:010d}{self.suffix}"

    @property
    def rows(self) -> int:
        return self.end - self.start

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Part:
        d = json.loads(text)
        f = d.pop("file")
        return cls(InputFile(**{**f, "offsets": tuple(f["offsets"])}), **d)


def plan_parts(files: list[InputFile], part_rows: int, output_format: str) -> list[Part]:
    parts, row_id = [], 0
    for f in files:
        for k, start in enumerate(range(0, f.rows, part_rows)):
            offset = f.offsets[k] if f.offsets else 0
            end = min(start + part_rows, f.rows)
            parts.append(Part(f, start, end, row_id + start, offset, f".{output_format}"))
        row_id += f.rows
    return parts


# -- the manifest ---------------------------------------------------------------------------------


def model_fingerprint(model_dir: Path) -> str:
    """A hash of the package's config.json and manifest.json (which holds every file's sha256)."""
    h = hashlib.sha256()
    for name in ("config.json", "manifest.json"):
        p = Path(model_dir) / name
        h.update(p.read_bytes() if p.is_file() else b"")
    return h.hexdigest()[:16]


def job_manifest(
    files: list[InputFile], opts: DatasetOptions, model: dict, parts: int, input_spec: str
) -> dict:
    return {
        "format": FORMAT,
        "version": 1,
        "input": input_spec,
        "model": model,  # fingerprint, variant, provider: what changes a translation
        "options": opts.identity(),
        "files": [
            {"path": f.path, "rows": f.rows, "size": f.size, "mtime_ns": f.mtime_ns} for f in files
        ],
        "parts": parts,
    }


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for key in ("model", "options"):
        a, b = old.get(key, {}), new.get(key, {})
        out += [
            f"{key} {k}: {a.get(k)!r} -> {b.get(k)!r}"
            for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)
        ]
    if old.get("files") != new.get("files"):
        out.append("the input files (paths, sizes or modification times)")
    return out


def prepare_output(out: Path, manifest: dict, overwrite: bool) -> int:
    """Create OUT or check it belongs to this job; returns an open lock file descriptor.

    Another job's parts (other model, options or inputs) are refused unless overwrite, which
    deletes them. A directory holding files this tool did not write is never cleared."""
    out.mkdir(parents=True, exist_ok=True)
    lock = _lock(out)
    try:
        _check_manifest(out, manifest, overwrite)
        for tmp in out.glob(".*.tmp-*"):  # what a killed job was writing
            tmp.unlink(missing_ok=True)
        _write_atomic(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    except BaseException:
        os.close(lock)
        raise
    return lock


def _check_manifest(out: Path, manifest: dict, overwrite: bool) -> None:
    path = out / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DatasetError(
                f"{path} is unreadable ({e}); remove {out} or choose another --output"
            ) from e
        diff = _differences(old, manifest)
        if diff and not overwrite:
            raise DatasetError(
                f"{out} holds the parts of another job ({'; '.join(diff)}); use --overwrite to "
                "delete them, or choose another --output"
            )
        if diff:
            _clear(out)
    else:
        others = [p.name for p in out.iterdir() if p.name != LOCK]
        if others:
            raise DatasetError(
                f"{out} is not empty and is not a translate-dataset output (no {MANIFEST}; holds "
                f"{', '.join(sorted(others)[:3])}); choose an empty or new --output"
            )


def _lock(out: Path) -> int:
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        os.close(fd)
        raise DatasetError(f"another translate-dataset job is writing to {out}") from e
    return fd


def _clear(out: Path) -> None:
    for p in out.iterdir():
        if p.name == LOCK:
            continue
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def done_parts(out: Path, parts: list[Part]) -> set[str]:
    names = {p.name for p in parts}
    return {p.name for p in out.iterdir() if p.name in names}


# -- writing and reading parts --------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_part(out: Path, name: str, table) -> None:
    """Write a finished part under a temporary name (unique per attempt: a retried task may run
    beside a dying one), then rename it: a part on disk is always whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if name.endswith(".parquet"):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue().to_pybytes()
    else:
        lines = (json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in table.to_pylist())
        data = "".join(lines).encode("utf-8")
    _write_atomic(out / name, data)


def read_errors(path: Path) -> list[str | None]:
    """The `error` column of a written part."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=["error"]).column("error").to_pylist()
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["error"] for line in f]


def tally(out: Path, parts: list[Part]) -> tuple[int, Counter]:
    """(rows written, errors by kind) over every part of the plan: checks nothing is missing."""
    rows, kinds = 0, Counter()
    for part in parts:
        path = out / part.name
        if not path.is_file():
            raise DatasetError(f"part {part.name} is missing after the job; run the command again")
        errors = read_errors(path)
        if len(errors) != part.rows:
            raise DatasetError(f"{path} holds {len(errors)} rows, not {part.rows}; --overwrite")
        rows += len(errors)
        kinds.update(e.split(":")[0] for e in errors if e is not None)
    return rows, kinds
