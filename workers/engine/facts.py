"""Weight-only feature facts: direct logit effects and decoder-cosine neighbours.

Both run over the SAE's features in blocks of ``block_size`` rows, so peak extra memory is
``block_size x d_vocab`` (logits; only the allowed tokens' columns when limited to a
corpus's tokens) or ``block_size x block_size`` (cosines) floats, never a ``d_sae x d_sae``
or ``d_sae x d_vocab`` matrix.
"""

from __future__ import annotations

import hashlib

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from .hooks import family_of, resolve
from .loading import AttachedSAE

LOGIT_BLOCK = 256
# Part of the facts' digests: raise it when what logit_effects or decoder_neighbours compute
# changes, so a re-index recomputes facts stored by the older code.
FACTS_VERSION = 1
NEIGHBOUR_BLOCK = 1024  # a [block, block] cosine block at a time


def _linear_no_bias(module: nn.Module, x: Float[Tensor, "n d_in"]) -> Float[Tensor, "n d_out"]:
    """Apply a projection's weight only (HF Linear stores [out, in]; GPT-2 Conv1D [in, out])."""
    w = module.weight.float()
    return x @ w.T if isinstance(module, nn.Linear) else x @ w


def residual_directions(
    att: AttachedSAE, rows: list[int] | None = None
) -> Float[Tensor, "n d_model"]:
    """Decoder rows (all, or only ``rows``) expressed in the residual stream (float32).

    For attn_z SAEs each row is mapped through the attention output projection (its weight,
    not its bias: a direction, not a point), i.e. what the feature writes to the residual.
    """
    w_dec = att.decoder_directions.detach()  # [d_sae, d_in]
    w_dec = (w_dec if rows is None else w_dec[rows]).float()  # [n, d_in]
    if att.hook.kind == "attn_z":
        out_proj, _, _ = resolve(att.lm.model, att.hook_name)
        w_dec = _linear_no_bias(out_proj, w_dec)  # [d_sae, d_model]
    return w_dec


class _Unembed:
    """The final norm's linear part and W_U, ready to turn residual directions into logits."""

    def __init__(self, att: AttachedSAE) -> None:
        model = att.lm.model
        family = family_of(model)
        self.centre = family.norm_kind == "layernorm"
        norm = model.get_submodule(family.final_norm)
        self.gamma = norm.weight.detach().float() + family.norm_weight_offset  # [d_model]
        self.w_u = model.get_submodule(family.unembed).weight.detach().float()  # [vocab, d_model]

    def __call__(self, d: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_vocab"]:
        if self.centre:
            d = d - d.mean(dim=-1, keepdim=True)
        return (d * self.gamma) @ self.w_u.T


def _digest(label: str, *tensors: Tensor | None) -> str:
    """A digest of the tensors' dtypes, shapes and bytes (None counts as absent)."""
    h = hashlib.blake2b(f"v{FACTS_VERSION} {label}".encode(), digest_size=16)
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        a = t.detach().to("cpu").contiguous()
        h.update(f"{a.dtype}{tuple(a.shape)}".encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def logit_effects_key(att: AttachedSAE, k: int, vocab_mask: Tensor | None = None) -> str:
    """What :func:`logit_effects` depends on (decoder, final norm, W_U, the mask, k), digested:
    equal keys give equal results, so a re-index can keep them instead of recomputing."""
    unembed = _Unembed(att)
    return _digest(
        f"logit_effects k={k} centre={unembed.centre}",
        residual_directions(att),
        unembed.gamma,
        unembed.w_u,
        vocab_mask,
    )


def decoder_neighbours_key(att: AttachedSAE, k: int) -> str:
    """What :func:`decoder_neighbours` depends on (the decoder rows, k), digested."""
    return _digest(f"decoder_neighbours k={k}", att.decoder_directions)


def logit_vectors(att: AttachedSAE, features: list[int]) -> Float[Tensor, "n d_vocab"]:
    """``d_f · W_U`` for a few features, with the final-norm handling of :func:`logit_effects`.

    Raises ValueError for an unknown feature index (naming d_sae).
    """
    rows = [att.check_feature(f) for f in features]
    return _Unembed(att)(residual_directions(att, rows))  # [n, d_vocab]


def logit_effects(
    att: AttachedSAE,
    k: int = 10,
    *,
    block_size: int = LOGIT_BLOCK,
    vocab_mask: Tensor | None = None,
) -> tuple[
    Int[Tensor, "d_sae k"],
    Float[Tensor, "d_sae k"],
    Int[Tensor, "d_sae k"],
    Float[Tensor, "d_sae k"],
]:
    """Top and bottom ``k`` tokens of each feature's direct logit effect ``d_f · W_U``.

    Final-norm handling (the usual "direct logit attribution" approximation): the direction is
    passed through the final norm's *linear* part only. For LayerNorm families (GPT-2, Pythia)
    we subtract its mean over d_model (exact: centring is linear) and multiply by gamma; for
    RMSNorm families (Llama, Gemma) we multiply by gamma (``1 + w`` for Gemma). The division by
    the norm's scale (a positive per-position scalar), the LayerNorm bias and Gemma-2's final
    logit soft-capping are ignored: none changes the ranking of tokens for a feature. Effects
    through later layers are not included. Returns (top_ids, top_vals, bottom_ids,
    bottom_vals), each ``[d_sae, k]``, CPU, values float32, largest first / smallest first.
    ``vocab_mask`` (bool ``[d_vocab]``) limits both lists to the tokens where it is True, e.g.
    the tokens that occur in a corpus: untrained tokens of a small model (or GPT-2's glitch
    tokens) otherwise crowd out the tokens a reader can check. Only those rows of W_U are
    multiplied, so a corpus's few thousand tokens cost a fraction of the whole vocabulary.
    Raises ValueError for a mask that allows no token.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    unembed = _Unembed(att)
    ids = None if vocab_mask is None else vocab_mask.nonzero().squeeze(1).to(unembed.w_u.device)
    # Only the allowed rows of W_U take part: [n_allowed, d_model], a fraction of the
    # vocabulary for a corpus's tokens, and no logits of the others are ever computed.
    w_u = unembed.w_u if ids is None else unembed.w_u.index_select(0, ids)
    if w_u.shape[0] == 0:
        raise ValueError("vocab_mask allows no token")
    k = min(k, w_u.shape[0])
    dirs = residual_directions(att)  # [d_sae, d_model]
    outs: list[list[Tensor]] = [[], [], [], []]
    for start in range(0, dirs.shape[0], block_size):
        d = dirs[start : start + block_size]  # [block, d_model]
        if unembed.centre:
            d = d - d.mean(dim=-1, keepdim=True)
        logits = (d * unembed.gamma) @ w_u.T  # [block, n_allowed]
        top = logits.topk(k, dim=-1)
        bottom = logits.topk(k, dim=-1, largest=False)
        top_i, bottom_i = top.indices, bottom.indices
        if ids is not None:
            top_i, bottom_i = ids[top_i], ids[bottom_i]
        for acc, t in zip(outs, (top_i, top.values, bottom_i, bottom.values), strict=True):
            acc.append(t.cpu())
    top_ids, top_vals, bottom_ids, bottom_vals = (torch.cat(a) for a in outs)
    return top_ids, top_vals, bottom_ids, bottom_vals


def decoder_neighbours(
    att_or_w_dec: AttachedSAE | Tensor, k: int = 10, *, block_size: int = NEIGHBOUR_BLOCK
) -> tuple[Int[Tensor, "d_sae k"], Float[Tensor, "d_sae k"]]:
    """The ``k`` features whose decoder rows have the highest cosine with each feature's row.

    A feature is never its own neighbour. Zero rows have cosine 0 with everything.
    ``k`` is capped at ``d_sae - 1``. Returns (indices, cosines), each ``[d_sae, k]``, on CPU,
    highest first.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    w = att_or_w_dec.decoder_directions if isinstance(att_or_w_dec, AttachedSAE) else att_or_w_dec
    w = w.detach().float()  # [d_sae, d_in]
    d_sae = w.shape[0]
    k = min(k, d_sae - 1)
    if k < 1:
        raise ValueError(f"need at least 2 features to find neighbours, got d_sae={d_sae}")
    unit = w / w.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # [d_sae, d_in]
    best_v = torch.full((d_sae, k), float("-inf"), device=w.device)  # running top-k per row
    best_i = torch.zeros((d_sae, k), dtype=torch.long, device=w.device)

    def fold(start: int, sims: Tensor, offset: int) -> None:
        """Merge the candidates of rows ``start..`` (columns ``offset..``) into the top-k."""
        top = sims.topk(min(k, sims.shape[1]), dim=-1)  # [b, <=k]
        rows = slice(start, start + sims.shape[0])
        v = torch.cat([best_v[rows], top.values], dim=1)
        i = torch.cat([best_i[rows], top.indices + offset], dim=1)
        keep = v.topk(k, dim=-1)
        best_v[rows], best_i[rows] = keep.values, i.gather(1, keep.indices)

    # Cosines are symmetric: each off-diagonal block serves its rows and, transposed, its
    # columns, so only blocks on and above the diagonal are multiplied (half the work).
    for i0 in range(0, d_sae, block_size):
        ui = unit[i0 : i0 + block_size]  # [bi, d_in]
        for j0 in range(i0, d_sae, block_size):
            sims = ui @ unit[j0 : j0 + block_size].T  # [bi, bj]
            if j0 == i0:
                sims.fill_diagonal_(float("-inf"))  # exclude self
            fold(i0, sims, j0)
            if j0 != i0:
                fold(j0, sims.T, i0)
    return best_i.cpu(), best_v.cpu()
