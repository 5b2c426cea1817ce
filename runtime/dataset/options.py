"""What a dataset job is asked to do, checked once, and the error family of its user mistakes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..package import TraductorError

# Columns every output row gets besides the input's own; an input column of one of these names
# would be overwritten, so it is refused before work starts.
OUTPUT_COLUMNS = ("row_id", "translation", "score", "error")


class DatasetError(TraductorError):
    """A dataset job that cannot start or go on: missing input, unreadable file, unknown column,
    an output directory holding another job's parts. The CLI prints it as one line (exit 2)."""


@dataclass(frozen=True)
class DatasetOptions:
    column: str = "text"  # the input column to translate
    output_format: str = "parquet"  # parquet or jsonl
    part_rows: int = 1000  # input rows per output part: the unit of work, retry and resume
    max_chars: int = 10_000  # longer texts are not translated ("too long" in `error`)
    beam_size: int | None = None  # None: the model's config
    max_length: int | None = None  # most subwords per translated sentence
    batch_size: int = 32  # sentences decoded together (does not change any translation)
    target_language: str | None = None  # multi-target models: which language

    def validate(self) -> DatasetOptions:
        if self.output_format not in ("parquet", "jsonl"):
            raise DatasetError(
                f"invalid --output-format {self.output_format!r}: use parquet or jsonl"
            )
        for name in ("part_rows", "max_chars", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DatasetError(f"invalid {name}={v!r}: must be an integer >= 1")
        if not self.column:
            raise DatasetError("--column must name a column")
        if self.column in OUTPUT_COLUMNS:
            raise DatasetError(
                f"--column {self.column!r} is one of the output columns "
                f"({', '.join(OUTPUT_COLUMNS)}); rename it in the input"
            )
        return self

    def decoding(self) -> dict:
        """The keyword options of Translator.translate_batch."""
        return {
            "beam_size": self.beam_size,
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "target_language": self.target_language,
        }

    def identity(self) -> dict:
        """What decides the output (not batch_size: translations are batch-invariant)."""
        d = asdict(self)
        d.pop("batch_size")
        return d
