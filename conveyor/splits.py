"""Read a data split (JSONL, CSV or Parquet) and fingerprint splits for lineage.

Unusable input (unreadable file, invalid JSON line, bad encoding, empty split)
raises :class:`DataError` naming the file and, where there is one, the line.
Whether the columns and values make sense is for ``data_checks`` to judge.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from conveyor.errors import ConveyorError, ExitCode

__all__ = ["DataError", "fingerprint_splits", "first_non_utf8_line", "not_utf8", "read_split"]

_CHUNK = 1 << 20
# What a line that is not UTF-8 may be instead, tried in order (strict decoding).
_OTHER_ENCODINGS = (("gbk", "GBK"), ("big5", "Big5"), ("shift_jis", "Shift-JIS"))


class DataError(ConveyorError):
    """A split that cannot be read at all; ``location`` is ``file`` or ``file:line``."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        self.location = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{self.location}: {reason}")


def _encoding_of(raw: bytes) -> str:
    for codec, name in _OTHER_ENCODINGS:
        try:
            raw.decode(codec)
        except UnicodeDecodeError:
            continue
        return name
    return "not GBK, Big5 or Shift-JIS either (Latin-1 or binary?)"


def not_utf8(
    path: Path, number: int, raw: bytes, exc: UnicodeDecodeError, utf8_before: bool
) -> DataError:
    """The error for line ``number`` of ``path`` that is not UTF-8: where, and what it is.

    ``utf8_before``: an earlier line held non-ASCII UTF-8, so the file mixes encodings.
    """
    found = _encoding_of(raw)
    mixed = "; earlier lines are UTF-8: the file mixes encodings" if utf8_before else ""
    reason = f"not UTF-8 ({exc.reason} at byte {exc.start}); the line decodes as {found}{mixed}"
    return DataError(path, reason + "; re-save the file as UTF-8", number)


def first_non_utf8_line(path: Path) -> DataError | None:
    """The error naming the first line of ``path`` that is not UTF-8; None if every line is."""
    utf8_before = False
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return not_utf8(path, number, raw, exc, utf8_before)
            utf8_before = utf8_before or not raw.isascii()
    return None


def _scan_jsonl(path: Path) -> list[Any]:
    """Slow, exact path: parse line by line so the first bad line can be named."""
    records: list[Any] = []
    utf8_before = False
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(path, number, raw, exc, utf8_before) from exc
            utf8_before = utf8_before or not raw.isascii()
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    path, f"invalid JSON: {exc.msg} (column {exc.colno})", number
                ) from exc
            if not isinstance(value, dict):
                raise DataError(path, f"expected a JSON object, got {type(value).__name__}", number)
            records.append(value)
    return records


def _read_jsonl(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.json as pa_json

    try:
        table = pa_json.read_json(path)
        table.validate(full=True)  # read_json passes invalid UTF-8 through; this catches it
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # Bad line, bad bytes, or columns whose types vary by row: find out exactly.
        return pd.DataFrame.from_records(_scan_jsonl(path))
    return table.to_pandas()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, encoding="utf-8", dtype=str, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError as exc:
        found = first_non_utf8_line(path)
        raise found or DataError(path, f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.ParserError as exc:
        raise DataError(path, f"invalid CSV: {exc}") from exc


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(path, f"invalid Parquet file: {exc}") from exc


_READERS = {".jsonl": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}


def read_split(path: str | Path) -> pd.DataFrame:
    """The split as a DataFrame, or DataError saying why it cannot be used."""
    split_path = Path(path)
    reader = _READERS.get(split_path.suffix.lower())
    if reader is None:
        raise DataError(split_path, f"unsupported format (use {', '.join(_READERS)})")
    if not split_path.is_file():
        raise DataError(split_path, "file not found")
    if split_path.stat().st_size == 0:
        raise DataError(split_path, "empty file: the split has no rows")
    try:
        frame = reader(split_path)
    except PermissionError as exc:
        raise DataError(split_path, "permission denied") from exc
    if frame.empty:
        raise DataError(split_path, "the split has no rows")
    return frame


def fingerprint_splits(splits: Mapping[str, Path]) -> str:
    """Content hash of the splits (name, size and bytes of each), for lineage."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        path = Path(splits[name])
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"
