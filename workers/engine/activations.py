"""Feature activations on text: per-token values of chosen features, and top-k features per token.

The forward pass runs only as far as the SAE's hook (:func:`~.hooks.run_to_hook`); for several
SAEs of one model, as far as the deepest of their hooks (:func:`activations_per_sae`). Texts are
right-padded: with causal attention a real token never sees the padding after it and keeps its
own position ids, so padded rows equal unpadded ones exactly. BOS and padding are marked in the
result (``is_bos``, ``mask``) so callers can exclude them from statistics.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .hooks import run_to_hook, run_to_hooks
from .loading import AttachedSAE
from .stat_kernels import positive_indices

DEFAULT_BATCH_SIZE = 16
ENCODE_CHUNK = 512  # tokens encoded at once by sparse_features: chunk x d_sae floats of scratch


@dataclass
class TextActivations:
    """One text: its tokens and the values of the requested features at each token."""

    text: str
    token_ids: list[int]
    tokens: list[str]
    values: Float[Tensor, "pos n_features"]  # float32, CPU
    is_bos: list[bool]  # True where the token is the prepended BOS
    features: list[int] | None  # column order of ``values``; None = all d_sae features


@dataclass
class ActivationBatch:
    """Padded activations of a batch of texts (for bulk consumers such as indexing)."""

    input_ids: Int[Tensor, "batch pos"]
    mask: Bool[Tensor, "batch pos"]  # real tokens (False on padding)
    is_bos: Bool[Tensor, "batch pos"]
    values: Float[Tensor, "batch pos n_features"]


def tokenize_batch(
    att: AttachedSAE, texts: list[str], prepend_bos: bool
) -> tuple[Int[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """Right-padded ids and real-token mask. Raises ValueError on an empty/too-long text."""
    return pad_batch(att, [att.lm.encode(t, prepend_bos=prepend_bos) for t in texts])


def pad_batch(
    att: AttachedSAE,
    rows: list[Int[Tensor, " _pos"]],  # "_": rows differ in length
) -> tuple[Int[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """Right-pad already encoded texts; returns ids and the real-token mask."""
    width = max(len(r) for r in rows)
    ids = torch.full(
        (len(rows), width), att.lm.pad_token_id, dtype=torch.long, device=att.lm.device
    )  # [batch, pos]
    mask = torch.zeros((len(rows), width), dtype=torch.bool, device=att.lm.device)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = True
    return ids, mask


def hooked_features(
    att: AttachedSAE,
    input_ids: Int[Tensor, "batch pos"],
    mask: Bool[Tensor, "batch pos"] | None = None,
) -> Float[Tensor, "batch pos d_sae"]:
    """All SAE feature activations at the hook, stopping the forward pass there."""
    attn = None if mask is None else mask.long()
    acts = run_to_hook(att.lm, input_ids, attn, att.hook_name)  # [batch, pos, d_in]
    return att.encode(acts)  # [batch, pos, d_sae]


@dataclass
class SparseFeatures:
    """The non-zero feature activations of a batch, one entry each (row-major order)."""

    row: Int[Tensor, " nnz"]  # batch row
    pos: Int[Tensor, " nnz"]  # position in the row
    feature: Int[Tensor, " nnz"]
    value: Float[Tensor, " nnz"]  # float32


def sparse_features(
    att: AttachedSAE,
    input_ids: Int[Tensor, "batch pos"],
    mask: Bool[Tensor, "batch pos"] | None = None,
    select: Bool[Tensor, "batch pos"] | None = None,
    *,
    chunk: int = ENCODE_CHUNK,
) -> SparseFeatures:
    """The non-zero SAE activations of the ``select``ed tokens (default: every real token).

    Runs the model to the hook once, then encodes ``chunk`` tokens at a time and keeps only
    their non-zeros, so memory is ``chunk x d_sae`` floats, never ``batch x pos x d_sae``.
    Each token's values depend only on the batch (the same batch gives the same bits).
    """
    attn = None if mask is None or bool(mask.all()) else mask.long()
    acts = run_to_hook(att.lm, input_ids, attn, att.hook_name)  # [batch, pos, d_in]
    P, F = acts.shape[1], att.d_sae
    keep = mask if select is None else select
    tok = (
        torch.arange(acts.shape[0] * P, device=acts.device)
        if keep is None
        else keep.reshape(-1).nonzero().squeeze(1)
    )  # [n] flat token index
    flat = acts.reshape(-1, acts.shape[-1])  # [batch*pos, d_in]
    rows: list[Tensor] = []
    feats: list[Tensor] = []
    vals: list[Tensor] = []
    for start in range(0, tok.numel(), chunk):
        t = tok[start : start + chunk]  # [c]
        enc = att.encode(flat.index_select(0, t)).reshape(-1)  # [c*d_sae]
        i = positive_indices(enc).to(enc.device)  # [nnz]
        vals.append(enc.index_select(0, i).float())
        rows.append(t.index_select(0, i // F))
        feats.append(i % F)
        del enc
    empty = torch.zeros(0, dtype=torch.long, device=acts.device)
    t = torch.cat(rows) if rows else empty
    return SparseFeatures(
        row=t // P,
        pos=t % P,
        feature=torch.cat(feats) if feats else empty,
        value=torch.cat(vals) if vals else empty.float(),
    )


def feature_values_at(att: AttachedSAE, token_id: int) -> Float[Tensor, " d_sae"]:
    """Every feature's value on a one-token text, e.g. BOS: with causal attention the first
    position of any text sees only its own token, so this is its value in every window."""
    ids = torch.tensor([[token_id]], device=att.lm.device)  # [1, 1]
    return att.encode(run_to_hook(att.lm, ids, None, att.hook_name))[0, 0].float()  # [d_sae]


def _check_features(att: AttachedSAE, features: list[int] | None) -> list[int] | None:
    if features is None:
        return None
    if len(features) == 0:
        raise ValueError("no features requested; pass None for all features")
    return [att.check_feature(f) for f in features]


def _check_texts(texts: list[str] | str) -> list[str]:
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise ValueError("no texts given")
    return texts


def activation_batches(
    att: AttachedSAE,
    texts: list[str] | str,
    features: list[int] | None = None,
    *,
    prepend_bos: bool | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
):
    """Yield (texts of the batch, ActivationBatch) in input order, ``batch_size`` texts at a time.

    All texts are tokenized and checked before any forward pass runs.
    """
    texts = _check_texts(texts)
    cols = _check_features(att, features)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bos = att.preprocessing.prepend_bos if prepend_bos is None else prepend_bos
    # Encode (and so validate) everything first: nothing half-done, and each text once.
    encoded = [att.lm.encode(t, prepend_bos=bos) for t in texts]
    col_index = None if cols is None else torch.tensor(cols, device=att.lm.device)
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        ids, mask = pad_batch(att, encoded[start : start + batch_size])  # [b, pos]
        feats = hooked_features(att, ids, mask)  # [b, pos, d_sae]
        if col_index is not None:
            feats = feats.index_select(-1, col_index)  # [b, pos, n_features]
        is_bos = torch.zeros_like(mask)
        if bos:
            is_bos[:, 0] = True
        yield chunk, ActivationBatch(input_ids=ids, mask=mask, is_bos=is_bos, values=feats.float())


def feature_activations(
    att: AttachedSAE, texts: list[str] | str, features: list[int] | None = None, **options: Any
) -> list[TextActivations]:
    """Per-token values of ``features`` (None = all) for each text, in input order;
    ``options`` are `activation_batches`' (``prepend_bos`` defaults to the SAE's training
    setting, ``batch_size``). Raises ValueError for an unknown
    feature index (naming d_sae), an empty list of texts or features, or an empty or too-long
    text; nothing runs in that case.
    """
    cols = _check_features(att, features)
    out: list[TextActivations] = []
    for chunk, batch in activation_batches(att, texts, cols, **options):
        for i, text in enumerate(chunk):
            n = int(batch.mask[i].sum())
            ids = batch.input_ids[i, :n].tolist()
            out.append(
                TextActivations(
                    text=text,
                    token_ids=ids,
                    tokens=att.lm.token_strings(ids),
                    values=batch.values[i, :n].cpu(),
                    is_bos=batch.is_bos[i, :n].tolist(),
                    features=cols,
                )
            )
    return out


def activations_per_sae(atts: Sequence[AttachedSAE], text: str) -> Iterator[TextActivations]:
    """Per-token values of every feature of each SAE in ``atts`` on ``text``: one
    TextActivations per SAE, in the order given, each equal to ``feature_activations(att,
    text)`` of that SAE alone.

    Every SAE must be attached to the same model. One forward pass runs, up to the deepest of
    their hooks (one per ``prepend_bos`` setting among them, as the tokens then differ). Each
    SAE encodes when its row is taken, so a caller that reduces a row before taking the next
    holds one SAE's ``[pos, d_sae]`` at a time. Raises ValueError for no SAEs, SAEs on
    different models, or an empty or too-long text, before any forward pass runs.
    """
    if not atts:
        raise ValueError("no SAEs given")
    lm = atts[0].lm
    if any(att.lm is not lm for att in atts):
        raise ValueError("every SAE must be attached to the same loaded model")
    encoded = {bos: lm.encode(text, prepend_bos=bos) for bos in _bos_settings(atts)}  # [pos]
    acts: dict[bool, dict[str, Tensor]] = {}
    for bos, ids in encoded.items():
        hooks = list(dict.fromkeys(a.hook_name for a in atts if a.preprocessing.prepend_bos == bos))
        batch = ids[None]  # [1, pos]
        # An all-ones mask, as feature_activations passes: the same kernels, the same values.
        acts[bos] = run_to_hooks(lm, batch, torch.ones_like(batch), hooks)  # [1, pos, d_in] each
    for att in atts:
        bos = att.preprocessing.prepend_bos
        ids = encoded[bos].tolist()
        feats = att.encode(acts[bos][att.hook_name])  # [1, pos, d_sae]
        yield TextActivations(
            text=text,
            token_ids=ids,
            tokens=lm.token_strings(ids),
            values=feats[0].float().cpu(),  # [pos, d_sae]
            is_bos=[bos and i == 0 for i in range(len(ids))],
            features=None,
        )


def _bos_settings(atts: Sequence[AttachedSAE]) -> list[bool]:
    return list(dict.fromkeys(att.preprocessing.prepend_bos for att in atts))


def top_features_per_token(
    att: AttachedSAE,
    text: str,
    k: int = 5,
    *,
    prepend_bos: bool | None = None,
    include_bos: bool = False,
) -> list[tuple[str, list[tuple[int, float]]]]:
    """For each token, up to ``k`` (feature, value) pairs with value > 0, largest first.

    The BOS token is left out unless ``include_bos``. Raises ValueError for k < 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    (row,) = feature_activations(att, text, None, prepend_bos=prepend_bos)
    vals, idx = row.values.topk(min(k, att.d_sae), dim=-1)  # [pos, k]
    result = []
    for pos, token in enumerate(row.tokens):
        if row.is_bos[pos] and not include_bos:
            continue
        pairs = [(int(f), float(v)) for f, v in zip(idx[pos], vals[pos], strict=True) if v > 0]
        result.append((token, pairs))
    return result
