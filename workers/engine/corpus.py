"""Corpus specs: where indexing reads its documents from.

A spec is a string, stored as given on the IndexRun, and read the same way by every shard
(each shard streams the whole corpus in the same order and keeps its own windows):

    >>> parse_corpus_spec("demo").kind
    'demo'
    >>> parse_corpus_spec("demo:val").split
    'val'
    >>> parse_corpus_spec("hf:NeelNanda/pile-10k:train").name
    'NeelNanda/pile-10k'
    >>> parse_corpus_spec("data/*.jsonl").kind
    'files'

- ``demo``: the npm corpora the demo model was trained on (Brown, then nlp-corpus).
- ``demo:val``: the documents the demo recipe held out from training the model and SAE
  (its validation split, ~85k tokens): what SAE evaluations read by default.
- local files: a path or glob (several separated by commas) of ``.txt`` files (one document
  per file) or ``.jsonl`` files (one document per line: an object with a ``text`` field, or
  a JSON string). Files are read in sorted path order.
- ``hf:<name>[:split]``: a Hugging Face dataset streamed with ``datasets`` (``text``
  column; split ``train`` by default), never downloaded whole.

This module imports neither torch nor Django: the ``index_sae`` command checks specs with it
before anything is queued.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FILE_SUFFIXES = (".txt", ".jsonl")


class CorpusError(ValueError):
    """A corpus spec that cannot be read: the message says why and names the spec."""


@dataclass(frozen=True)
class CorpusSpec:
    kind: str  # "demo" | "files" | "hf"
    spec: str
    paths: tuple[Path, ...] = ()
    name: str = ""  # hf dataset name
    split: str = "train"


def parse_corpus_spec(spec: str) -> CorpusSpec:
    """Parse and check a spec; files must exist, match a supported suffix and not be empty.

    Raises CorpusError with a message naming the problem.
    """
    spec = (spec or "").strip()
    if not spec:
        raise CorpusError(
            "the corpus spec is empty: use 'demo', .txt/.jsonl files or globs, "
            "or 'hf:<dataset>[:split]'"
        )
    if spec == "demo":
        return CorpusSpec("demo", spec)
    if spec == "demo:val":
        return CorpusSpec("demo", spec, split="val")
    if spec.startswith("hf:"):
        return _hf_spec(spec)
    return _files_spec(spec)


def _hf_spec(spec: str) -> CorpusSpec:
    name, _, split = spec[3:].partition(":")
    if not name:
        raise CorpusError(
            f"corpus {spec!r}: 'hf:' needs a dataset name, e.g. hf:NeelNanda/pile-10k"
        )
    return CorpusSpec("hf", spec, name=name, split=split or "train")


def _files_spec(spec: str) -> CorpusSpec:
    paths: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            paths += _glob(part)
    if not paths:
        raise CorpusError(f"corpus {spec!r} names no file")
    if all(p.stat().st_size == 0 for p in paths):
        raise CorpusError(f"corpus {spec!r} is empty: every file has 0 bytes")
    return CorpusSpec("files", spec, paths=tuple(paths))


def _glob(part: str) -> list[Path]:
    """The files one comma-separated part of a spec matches, resolved, in sorted order."""
    matches = sorted(glob.glob(str(Path(part).expanduser()), recursive=True))
    if not matches:
        raise CorpusError(f"corpus file {part!r} does not exist (no file matches)")
    paths = []
    for m in matches:
        path = Path(m)
        if path.is_dir():
            raise CorpusError(f"corpus path {m!r} is a directory; give files or a glob")
        if path.suffix not in FILE_SUFFIXES:
            raise CorpusError(f"corpus file {m!r} is not .txt or .jsonl")
        paths.append(path.resolve())
    return paths


def _jsonl_documents(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{n}: not JSON ({e.msg})") from None
            text = obj.get("text") if isinstance(obj, dict) else obj
            if not isinstance(text, str):
                raise CorpusError(
                    f"{path}:{n}: expected an object with a 'text' string or a JSON string"
                )
            yield text


def iter_documents(spec: CorpusSpec | str) -> Iterator[str]:
    """The corpus's documents as strings, in a fixed order. Raises CorpusError."""
    spec = parse_corpus_spec(spec) if isinstance(spec, str) else spec
    if spec.kind == "demo":
        from .demo.corpus import load_documents, validation_split

        docs = load_documents()
        for doc in validation_split(docs)[0] if spec.split == "val" else docs:
            yield doc.text
    elif spec.kind == "files":
        for path in spec.paths:
            if path.suffix == ".jsonl":
                yield from _jsonl_documents(path)
            else:
                yield path.read_text(encoding="utf-8", errors="replace")
    else:
        try:
            import datasets
        except ImportError:  # pragma: no cover - datasets comes with sae-lens
            raise CorpusError("hf: corpora need the 'datasets' package") from None
        try:
            ds = datasets.load_dataset(spec.name, split=spec.split, streaming=True)
        except Exception as e:
            raise CorpusError(f"cannot stream {spec.spec!r}: {e}") from e
        for row in ds:
            text = row.get("text")
            if not isinstance(text, str):
                raise CorpusError(f"{spec.spec!r} has no 'text' column (columns: {sorted(row)})")
            yield text
