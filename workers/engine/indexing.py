"""Feature indexing: one streaming pass over a corpus, then the chosen contexts again.

1. :func:`make_windows` cuts documents into context windows, in stream order: each document
   is tokenized on its own and split into chunks of ``context - 1`` tokens, each with BOS
   first when the SAE was trained with BOS (SAELens ``prepend_bos``). Window ``i`` is id
   ``i``; it knows its document and token offset. The stream stops at ``tokens`` positions
   (BOS included), truncating the last window.
2. :func:`index_shard` runs the windows of one :class:`Shard` (batches of windows dealt
   round-robin: S shards partition the stream exactly) through the model *to the SAE hook
   only*, encodes a chunk of tokens at a time keeping only non-zeros
   (:func:`~.activations.sparse_features`) and feeds them to a
   :class:`~.stats.FeatureStatsAccumulator`. Nothing is cached on disk. Shard
   accumulators ``merge`` exactly; :func:`index_corpus` is the one-shard shortcut.
3. :func:`chosen_examples` gives the chosen examples in chunks, their values sparse: from
   the pass's log of candidate values (:mod:`.candidates`), or by re-running the chosen
   windows (:func:`rerun_values`) when the log overflowed.

An example is a (feature, window) pair: the statistics rank windows by their maximum (see
:mod:`.stats`). BOS and padding are excluded from statistics unless ``include_bos`` (padding
always is); an example still shows BOS's true value, computed once (position 0 sees only
BOS, so it is the same in every window).
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

from .activations import feature_values_at, sparse_features
from .candidates import ActivationLog, CandidateValues, chosen_entries, pool_entries
from .feature_stats import FeatureStats
from .loading import AttachedSAE, LoadedModel
from .stat_kernels import POS_BITS
from .stats import FeatureStatsAccumulator

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 128
DEFAULT_BATCH_SIZE = 32
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
        counted = real
        if windows.has_bos and not include_bos:
            counted = real.clone()
            counted[:, 0] = False  # BOS: the same value in every window, read once at the end
        nz = sparse_features(att, input_ids, real, counted)  # counted tokens' non-zeros
        acc.add_nonzeros(nz.row, nz.pos, nz.feature, nz.value, torch.from_numpy(ids), counted)
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


@dataclass
class ExampleChunk:
    """Chosen examples, values sparse: example ``i`` is ``feature[i]``'s values on window
    ``window[i]``, non-zero at ``nz_positions[nz_offsets[i]:nz_offsets[i + 1]]`` (ascending)
    with ``nz_values`` at the same slice, 0 elsewhere. ``max_value``/``max_position`` are the
    window's maximum for the feature (over counted tokens) and its first position.
    """

    feature: np.ndarray  # [n] int64
    kind: np.ndarray  # [n] int64: 0 top, 1 quantile
    bin: np.ndarray  # [n] int64: quantile bin, -1 for top
    rank: np.ndarray  # [n] int64: order in its list (value desc)
    window: np.ndarray  # [n] int64
    max_value: np.ndarray  # [n] float32
    max_position: np.ndarray  # [n] int64
    nz_offsets: np.ndarray  # [n + 1] int64
    nz_positions: np.ndarray  # [nnz] int64
    nz_values: np.ndarray  # [nnz] float32

    def __len__(self) -> int:
        return len(self.feature)

    def values(self, i: int, length: int) -> np.ndarray:
        """Example ``i``'s value at each of ``length`` tokens (dense float32)."""
        out = np.zeros(length, np.float32)
        lo, hi = self.nz_offsets[i], self.nz_offsets[i + 1]
        out[self.nz_positions[lo:hi]] = self.nz_values[lo:hi]
        return out


def used_windows(stats: FeatureStats) -> np.ndarray:
    """The sorted numbers of the windows that some chosen example uses."""
    w = np.concatenate([stats.top_windows.reshape(-1), stats.quantile_windows.reshape(-1)])
    return np.unique(w[w >= 0])


def _chosen(stats: FeatureStats, f0: int, f1: int) -> dict[str, np.ndarray]:
    """Features ``f0..f1-1``'s chosen examples as arrays (top lists, then quantile bins)."""
    tw = stats.top_windows[f0:f1]  # [fb, K]
    tf, tr = np.nonzero(tw >= 0)
    qw = stats.quantile_windows[f0:f1]  # [fb, n, S]
    qf, qb, qr = np.nonzero(qw >= 0)
    return {
        "feature": np.concatenate([tf, qf]).astype(np.int64) + f0,
        "kind": np.repeat(np.array([0, 1], np.int64), [len(tf), len(qf)]),
        "bin": np.concatenate([np.full(len(tf), -1), qb]).astype(np.int64),
        "rank": np.concatenate([tr, qr]).astype(np.int64),
        "window": np.concatenate([tw[tf, tr], qw[qf, qb, qr]]).astype(np.int64),
        "max_value": np.concatenate(
            [stats.top_values[f0:f1][tf, tr], stats.quantile_values[f0:f1][qf, qb, qr]]
        ).astype(np.float32),
        "max_position": np.concatenate(
            [stats.top_positions[f0:f1][tf, tr], stats.quantile_positions[f0:f1][qf, qb, qr]]
        ).astype(np.int64),
    }


def chosen_pairs(stats: FeatureStats) -> tuple[np.ndarray, np.ndarray]:
    """(feature, window) of every chosen example, [n] int64 each."""
    c = _chosen(stats, 0, stats.d_sae)
    return c["feature"], c["window"]


def _counted(windows: Windows, real: Tensor, include_bos: bool) -> Tensor:
    if windows.has_bos and not include_bos:
        real = real.clone()
        real[:, 0] = False
    return real


def rerun_values(
    att: AttachedSAE,
    windows: Windows,
    features: np.ndarray,
    window_ids: np.ndarray,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    include_bos: bool = False,
) -> CandidateValues:
    """The counted non-zeros of the given (feature, window) pairs, by running their windows
    again: the table the pass's log would give. Windows run in the pass's batches (batch
    ``j`` is windows ``[j*batch_size, (j+1)*batch_size)``), so values are the same bits.
    Memory: one batch's non-zeros plus the kept entries. Raises ValueError for an unknown
    window."""
    _check_positive("batch_size", batch_size)
    features = np.asarray(features, np.int64)
    window_ids = np.asarray(window_ids, np.int64)
    n_w = len(windows)
    if window_ids.size and not (0 <= window_ids.min() and window_ids.max() < n_w):
        raise ValueError(f"unknown window; the corpus has {n_w} windows")
    wanted = np.unique(features * n_w + window_ids)
    parts: list[CandidateValues] = []
    dev = att.lm.device
    for j in np.unique(window_ids // batch_size):
        ids = np.arange(j * batch_size, min((j + 1) * batch_size, n_w))
        input_ids, real = windows.batch(ids, att.lm.pad_token_id, dev)  # [b, pos]
        nz = sparse_features(att, input_ids, real, _counted(windows, real, include_bos))
        f, v = nz.feature.cpu().numpy(), nz.value.cpu().numpy()
        w = ids[nz.row.cpu().numpy()]
        keep = np.isin(f * n_w + w, wanted)
        key = (w[keep] << POS_BITS) | nz.pos.cpu().numpy()[keep]
        parts.append(CandidateValues(f[keep].astype(np.int32), key, v[keep].astype(np.float32)))
    return CandidateValues.concat(parts)


def example_chunks(
    stats: FeatureStats,
    windows: Windows,
    table: CandidateValues,
    *,
    bos_values: np.ndarray | None = None,
    chunk: int = 32768,
) -> Iterator[ExampleChunk]:
    """Every chosen example, in chunks of about ``chunk`` examples (whole features each),
    values from ``table`` (the pass's logged values or :func:`rerun_values`).

    ``bos_values`` ([d_sae]): every feature's value on BOS, written at position 0 of each
    example (BOS is excluded from the statistics, so the table has no value there).
    """
    _check_positive("chunk", chunk)
    per_feature = stats.top_windows.shape[1] + stats.quantile_windows[0].size
    step = max(1, chunk // max(per_feature, 1))
    for f0 in range(0, stats.d_sae, step):
        c = _chosen(stats, f0, min(f0 + step, stats.d_sae))
        if not len(c["feature"]):
            continue
        counts, entries = table.entries(c["feature"], c["window"])  # [n], [m]
        bos = np.zeros(len(counts), np.int64)
        if bos_values is not None:
            bos = (bos_values[c["feature"]] != 0).astype(np.int64)
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts + bos, out=offsets[1:])
        positions = np.zeros(int(offsets[-1]), np.int64)
        values = np.zeros(int(offsets[-1]), np.float32)
        if bos_values is not None:
            at = offsets[:-1][bos == 1]
            values[at] = bos_values[c["feature"][bos == 1]]  # position 0 already
        # table entries go after each example's BOS slot
        dest = np.repeat(offsets[:-1] + bos - np.cumsum(counts) + counts, counts)
        dest += np.arange(len(entries))
        positions[dest] = table.key[entries] & ((1 << POS_BITS) - 1)
        values[dest] = table.value[entries]
        yield ExampleChunk(**c, nz_offsets=offsets, nz_positions=positions, nz_values=values)


def chosen_examples(
    stats: FeatureStats,
    windows: Windows,
    table: CandidateValues | None,
    att: AttachedSAE | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    bos_values: np.ndarray | None = None,
    chunk: int = 32768,
) -> Iterator[ExampleChunk]:
    """Every chosen example with its values, in chunks (see :func:`example_chunks`).

    Values come from ``table`` (the shards' :func:`candidate_values`, concatenated) when there
    is one, else from re-running the chosen windows through ``att``; both give the same bits.
    When BOS is excluded from the statistics, position 0 holds BOS's true value
    (``bos_values``, else computed once through ``att``). Raises ValueError when a model is
    needed and not given. The table (or re-run) is prepared before the first chunk is asked.
    """
    include_bos = bool(stats.settings.get("include_bos", False))
    if table is None:
        if att is None:
            raise ValueError("chosen_examples needs a candidate table or a model to re-run")
        f, w = chosen_pairs(stats)
        table = rerun_values(att, windows, f, w, batch_size=batch_size, include_bos=include_bos)
    if windows.has_bos and not include_bos and bos_values is None:
        if att is None:
            raise ValueError("BOS values need the model: pass att or bos_values")
        bos_values = bos_feature_values(att)
    return example_chunks(
        stats,
        windows,
        table,
        bos_values=bos_values if windows.has_bos and not include_bos else None,
        chunk=chunk,
    )


def bos_feature_values(att: AttachedSAE) -> np.ndarray:
    """Every feature's value on BOS at position 0 ([d_sae] float32): the same in every
    window, since position 0 attends to itself only."""
    return feature_values_at(att, att.lm.bos_token_id).cpu().numpy()
