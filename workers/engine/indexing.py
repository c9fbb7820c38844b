"""Feature indexing: one streaming pass over a corpus, then the chosen contexts again.

1. :func:`make_windows` cuts documents into context windows, in stream order: each document
   is tokenized on its own and split into chunks of ``context - 1`` tokens, each with BOS
   first when the SAE was trained with BOS (SAELens ``prepend_bos``). Window ``i`` is id
   ``i``; it knows its document and token offset. The stream stops at ``tokens`` positions
   (BOS included), truncating the last window.
2. :func:`index_shard` runs the windows of one :class:`Shard` (batches of windows dealt
   round-robin: S shards partition the stream exactly) through the model *to the SAE hook
   only*, encodes and feeds a :class:`~.stats.FeatureStatsAccumulator`. Nothing is cached
   on disk. Shard accumulators ``merge`` exactly; :func:`index_corpus` is the one-shard
   shortcut.
3. :func:`materialize_examples` re-runs only the windows of the chosen examples and returns
   each example's window with the feature's value at every token.

BOS and padding are excluded from statistics unless ``include_bos`` (padding always is).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Int
from torch import Tensor

from .activations import hooked_features
from .candidates import ActivationLog, CandidateValues, chosen_entries, pool_entries
from .feature_stats import ExampleRef, FeatureStats
from .loading import AttachedSAE, LoadedModel
from .stat_kernels import POS_BITS
from .stats import FeatureStatsAccumulator

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 128
DEFAULT_BATCH_SIZE = 32
_DENSE_CHUNK = 65536  # examples whose per-token values are filled at once
_TOKENIZE_CHUNK = 64  # documents per tokenizer call (fast tokenizers batch in Rust)

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class IndexingCancelled(Exception):
    """Raised by the pass when ``cancel()`` returned True (checked before every batch)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` owns the batches whose number is ``index`` modulo ``count``.

    Batch ``j`` is windows ``[j*batch_size, (j+1)*batch_size)``, whatever the shard count, so
    every window is computed in the same batch (same shapes, same padding, hence the same
    bits) in a 1-shard and an S-shard run: merged statistics equal a single pass exactly.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"shard count must be a positive integer, got {self.count!r}")
        if not isinstance(self.index, int) or not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in 0..{self.count - 1}, got {self.index!r}")


@dataclass(frozen=True)
class Window:
    """One context: token ids (BOS first when ``has_bos``), from ``doc`` at token ``start``."""

    id: int
    doc: int
    start: int  # offset in the document's tokens of the first non-BOS token
    token_ids: np.ndarray  # [len] int64
    has_bos: bool


class Windows:
    """All windows of a corpus in stream order, stored flat (4 bytes per token)."""

    def __init__(
        self,
        tokens: np.ndarray,
        offsets: np.ndarray,
        doc: np.ndarray,
        start: np.ndarray,
        *,
        has_bos: bool,
        context: int,
    ) -> None:
        self.tokens = tokens  # [n_tokens] int32
        self.offsets = offsets  # [n_windows + 1] int64
        self.doc, self.start = doc, start  # [n_windows] int64 each
        self.has_bos, self.context = has_bos, context

    def __len__(self) -> int:
        return len(self.doc)

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> Window:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range: the corpus has {len(self)} windows")
        ids = self.tokens[self.offsets[i] : self.offsets[i + 1]].astype(np.int64)
        return Window(int(i), int(self.doc[i]), int(self.start[i]), ids, self.has_bos)

    def batch(
        self, ids: Int[np.ndarray, " batch"] | Sequence[int], pad_id: int, device: torch.device
    ) -> tuple[Int[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
        """Right-padded token ids and real-token mask of the given windows."""
        lens = self.offsets[np.asarray(ids) + 1] - self.offsets[np.asarray(ids)]
        out = np.full((len(ids), int(lens.max())), pad_id, dtype=np.int64)
        for row, (i, n) in enumerate(zip(ids, lens, strict=True)):
            out[row, :n] = self.tokens[self.offsets[i] : self.offsets[i] + n]
        mask = np.arange(out.shape[1])[None, :] < lens[:, None]
        return torch.from_numpy(out).to(device), torch.from_numpy(mask).to(device)


def _check_positive(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")


def make_windows(
    lm: LoadedModel,
    documents: Iterable[str],
    *,
    context: int = DEFAULT_CONTEXT,
    tokens: int,
    prepend_bos: bool = True,
) -> Windows:
    """Tokenize ``documents`` lazily into windows until ``tokens`` positions are filled.

    Raises ValueError for ``tokens`` < 1, a context the model cannot take (or < 2 with BOS),
    or a corpus without a single token; TypeError for a non-string document.
    """
    _check_window_args(lm, context=context, tokens=tokens, prepend_bos=prepend_bos)
    cutter = _WindowCutter(
        body=context - int(prepend_bos),
        bos=[lm.bos_token_id] if prepend_bos else [],
        left=tokens,
    )
    for batch in _documents_in_chunks(documents, lambda: cutter.left):
        # verbose=False: documents may be longer than the model; they are cut below.
        for ids in lm.tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
            cutter.add(ids)
            if cutter.full:
                break
        if cutter.full:
            break
    return cutter.windows(context=context)


def _check_window_args(lm: LoadedModel, *, context: int, tokens: int, prepend_bos: bool) -> None:
    _check_positive("tokens", tokens)
    _check_positive("context", context)
    if context > lm.n_ctx:
        raise ValueError(f"context {context} is longer than the model's {lm.n_ctx} positions")
    if context > 1 << POS_BITS:
        raise ValueError(f"context {context} exceeds the {1 << POS_BITS} positions a key holds")
    if prepend_bos and context < 2:
        raise ValueError("context must be >= 2 when BOS is prepended")


def _documents_in_chunks(documents: Iterable[str], left: Callable[[], int]) -> Iterator[list[str]]:
    """Documents in lists for one tokenizer call each, checked to be strings.

    A list holds about as much text as the budget still needs (``left()`` positions, ~3 chars
    a token at most), not whole batches of long documents that would be thrown away.
    """
    buf: list[str] = []
    chars = 0
    for d in documents:
        if not isinstance(d, str):
            raise TypeError(f"documents must be strings, got {type(d).__name__}")
        buf.append(d)
        chars += len(d)
        if len(buf) == _TOKENIZE_CHUNK or chars >= max(3 * left(), 2000):
            yield buf
            buf, chars = [], 0
    if buf:
        yield buf


class _WindowCutter:
    """Cuts tokenized documents, in stream order, into windows of ``bos`` + ``body`` tokens
    until ``left`` positions are used (the last window truncated)."""

    def __init__(self, *, body: int, bos: list[int], left: int) -> None:
        self.body, self.bos, self.left = body, bos, left
        self.chunks: list[np.ndarray] = []
        self.lens: list[int] = []
        self.docs: list[int] = []
        self.starts: list[int] = []
        self.doc = 0

    @property
    def full(self) -> bool:
        return self.left <= len(self.bos)  # no real token would be left after BOS

    def add(self, ids: list[int]) -> None:
        """Cut the next document's token ids."""
        bos, body = self.bos, self.body
        for s in range(0, len(ids), body):
            w = (bos + ids[s : s + body])[: self.left]
            if len(w) <= len(bos):
                break  # the budget ran out
            self.chunks.append(np.asarray(w, dtype=np.int32))
            self.lens.append(len(w)), self.docs.append(self.doc), self.starts.append(s)
            self.left -= len(w)
        self.doc += 1

    def windows(self, *, context: int) -> Windows:
        """Raises ValueError when no document had a token."""
        if not self.chunks:
            raise ValueError("the corpus is empty: no document has a single token")
        offsets = np.zeros(len(self.lens) + 1, dtype=np.int64)
        np.cumsum(self.lens, out=offsets[1:])
        return Windows(
            np.concatenate(self.chunks),
            offsets,
            np.asarray(self.docs, dtype=np.int64),
            np.asarray(self.starts, dtype=np.int64),
            has_bos=bool(self.bos),
            context=context,
        )


def index_shard(
    att: AttachedSAE,
    documents: Iterable[str] | Windows,
    *,
    context: int = DEFAULT_CONTEXT,
    tokens: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    top_k: int = 30,
    n_quantiles: int = 5,
    per_quantile: int = 5,
    include_bos: bool = False,
    prepend_bos: bool | None = None,
    seed: int = 0,
    shard: Shard | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    log_max_bytes: int | None = None,
    **accumulator_options: Any,
) -> FeatureStatsAccumulator:
    """The streaming pass over one shard's windows; returns its (mergeable) accumulator.

    ``documents`` are texts (then ``tokens`` is required and windows are cut with
    ``context`` and ``prepend_bos``, default the SAE's setting) or prepared :class:`Windows`.
    ``progress(tokens_done, tokens_total)`` is called after every batch, counting this
    shard's window positions. ``cancel()`` is checked before every batch; True raises
    :class:`IndexingCancelled`. ``log_max_bytes`` set: the accumulator's ``log`` keeps the
    pass's non-zero activations that may be chosen (see :mod:`.candidates`) in memory, up to
    that size, for :func:`candidate_values`.
    ``accumulator_options`` go to the accumulator
    (``hist_bins_per_octave``, ``hist_octaves``, ``compact_at``).
    Raises ValueError for bad sizes or an empty corpus, before any forward pass.
    """
    shard = shard or Shard()
    _check_positive("batch_size", batch_size)
    if isinstance(documents, Windows):
        windows = documents
    else:
        if tokens is None:
            raise ValueError("tokens is required when indexing documents")
        bos = att.preprocessing.prepend_bos if prepend_bos is None else prepend_bos
        windows = make_windows(att.lm, documents, context=context, tokens=tokens, prepend_bos=bos)
    acc = FeatureStatsAccumulator(
        att.d_sae,
        top_k=top_k,
        n_quantiles=n_quantiles,
        per_quantile=per_quantile,
        seed=seed,
        include_bos=include_bos,
        device=att.lm.device,
        **accumulator_options,
    )
    if log_max_bytes is not None:
        acc.log = ActivationLog(log_max_bytes)
    acc.settings.update(
        context=windows.context,
        prepend_bos=windows.has_bos,
        batch_size=batch_size,
        corpus_tokens=windows.n_tokens,
        corpus_windows=len(windows),
    )
    batches = [
        np.arange(b, min(b + batch_size, len(windows)))
        for b in range(shard.index * batch_size, len(windows), shard.count * batch_size)
    ]
    lengths = windows.lengths()
    total, done = int(sum(lengths[ids].sum() for ids in batches)), 0
    dev = att.lm.device
    for ids in batches:
        if cancel is not None and cancel():
            raise IndexingCancelled(f"indexing cancelled after {done} of {total} tokens")
        input_ids, real = windows.batch(ids, att.lm.pad_token_id, dev)  # [b, pos] each
        padded = not bool(real.all())
        acts = hooked_features(att, input_ids, real if padded else None)  # [b, pos, d_sae]
        counted = real
        if windows.has_bos and not include_bos:
            counted = real.clone()
            counted[:, 0] = False
        acc.update(acts, torch.from_numpy(ids), counted)
        done += int(lengths[ids].sum())
        if progress is not None:
            progress(done, total)
    return acc


def candidate_values(
    acc: FeatureStatsAccumulator, *, only_chosen: bool = False
) -> CandidateValues | None:
    """The logged values of the accumulator's candidate examples (None: no log or it
    overflowed); frees the log. ``only_chosen``: just the examples this accumulator chooses
    on its own, which is enough (and ~4x smaller) when no other shard will be merged in."""
    if acc.log is None:
        return None
    table = acc.log.candidates(chosen_entries(acc) if only_chosen else pool_entries(acc))
    acc.log = None
    return table


def index_corpus(
    att: AttachedSAE, documents: Iterable[str] | Windows, **kwargs: Any
) -> FeatureStats:
    """Index a whole corpus (or one ``shard=``) and finalise; see :func:`index_shard`."""
    return index_shard(att, documents, **kwargs).finalize()


@dataclass(frozen=True)
class MaterializedExample:
    """A chosen example's whole window, with ``feature``'s value at every token (BOS too)."""

    feature: int
    window: int
    pos: int
    token_ids: np.ndarray  # [len] integer token ids
    values: np.ndarray  # [len] float32
    doc: int
    start: int  # document token offset of the window's first non-BOS token


def _triple(ref: ExampleRef | tuple[int, int, int]) -> tuple[int, int, int]:
    if isinstance(ref, ExampleRef):
        return ref.feature, ref.window, ref.pos
    f, w, p = ref
    return int(f), int(w), int(p)


def materialize_examples(
    att: AttachedSAE,
    windows: Windows,
    refs: Iterable[ExampleRef | tuple[int, int, int]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[MaterializedExample]:
    """Re-run only the windows of ``refs`` ((feature, window, pos) or ExampleRef), in batches.

    Each distinct window runs once. Returns one example per ref, in input order. Raises
    ValueError for an unknown feature, window or position, before anything runs.
    """
    _check_positive("batch_size", batch_size)
    triples = [_triple(r) for r in refs]
    lengths = windows.lengths()
    for f, w, p in triples:
        att.check_feature(f)
        if not 0 <= w < len(windows):
            raise ValueError(f"unknown window {w}; the corpus has {len(windows)} windows")
        if not 0 <= p < lengths[w] or p >= 1 << POS_BITS:
            raise ValueError(f"position {p} is outside window {w} of {lengths[w]} tokens")
    by_window: dict[int, list[int]] = {}
    for i, (_, w, _) in enumerate(triples):
        by_window.setdefault(w, []).append(i)
    out: list[MaterializedExample | None] = [None] * len(triples)
    order = sorted(by_window)
    dev = att.lm.device
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        input_ids, real = windows.batch(ids, att.lm.pad_token_id, dev)  # [b, pos]
        acts = hooked_features(att, input_ids, None if bool(real.all()) else real)
        rows, which = [], []
        for row, w in enumerate(ids):
            for i in by_window[w]:
                rows.append(row), which.append(i)
        feats = torch.tensor([triples[i][0] for i in which], device=dev)
        vals = acts[torch.tensor(rows, device=dev), :, feats].float().cpu().numpy()  # [n, pos]
        for i, v in zip(which, vals, strict=True):
            f, w, p = triples[i]
            n = int(lengths[w])
            out[i] = MaterializedExample(
                feature=f,
                window=w,
                pos=p,
                token_ids=windows[w].token_ids,
                values=v[:n].copy(),
                doc=int(windows.doc[w]),
                start=int(windows.start[w]),
            )
    return out  # type: ignore[return-value]


def chosen_examples(
    stats: FeatureStats,
    windows: Windows,
    table: CandidateValues | None,
    att: AttachedSAE | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[MaterializedExample]:
    """Every example of ``stats.example_refs()`` (same order) with its per-token values.

    From ``table`` (the shards' :func:`candidate_values`, concatenated) when there is one,
    else by re-running the windows through ``att``. Either way, tokens the statistics did not
    count (BOS unless ``include_bos``) read 0, so both paths give the same values.
    Raises ValueError when neither a table nor a model is given.
    """
    refs = stats.example_refs()
    zero_bos = windows.has_bos and not stats.settings.get("include_bos", False)
    if table is None:
        if att is None:
            raise ValueError("chosen_examples needs a candidate table or a model to re-run")
        out = materialize_examples(att, windows, refs, batch_size=batch_size)
        if zero_bos:
            for ex in out:
                ex.values[0] = 0.0
        return out
    lengths = windows.lengths()
    feats = np.fromiter((r.feature for r in refs), np.int64, len(refs))
    wins = np.fromiter((r.window for r in refs), np.int64, len(refs))
    out = []
    for start in range(0, len(refs), _DENSE_CHUNK):  # bounded memory: chunk x context floats
        vals = table.dense(
            feats[start : start + _DENSE_CHUNK], wins[start : start + _DENSE_CHUNK], windows.context
        )
        for r, v in zip(refs[start : start + _DENSE_CHUNK], vals, strict=True):
            lo, n = windows.offsets[r.window], int(lengths[r.window])
            out.append(
                MaterializedExample(
                    feature=r.feature,
                    window=r.window,
                    pos=r.pos,
                    token_ids=windows.tokens[lo : lo + n],
                    values=v[:n],
                    doc=int(windows.doc[r.window]),
                    start=int(windows.start[r.window]),
                )
            )
    return out
