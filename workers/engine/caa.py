"""Contrastive activation addition (CAA) and the decomposition of a vector into SAE features.

Following Panickssery et al. (2023, "Steering Llama 2 via Contrastive Activation Addition"),
the steering vector is the mean, over contrast pairs, of the difference between the hook's
activations at the *last token of prompt + completion*: in their A/B format that is the answer
token, the one position where the two texts differ in content and which has read the prompt.
Prompt and completion are concatenated as strings; include any separating space yourself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from .hooks import HookPoint, run_to_hook
from .loading import AttachedSAE, LoadedModel

Triple = tuple[str, str, str]  # (prompt, positive completion, negative completion)
# Triples come from users: validated by hand (ValueError), so the annotation stays loose.
Triples = Sequence[Sequence[str]]


def _last_token_acts(
    lm: LoadedModel, hook: str | HookPoint, texts: list[str], prepend_bos: bool, batch_size: int
) -> Float[Tensor, "n d"]:
    out = []
    for start in range(0, len(texts), batch_size):
        rows = [lm.encode(t, prepend_bos=prepend_bos) for t in texts[start : start + batch_size]]
        lengths = torch.tensor([len(r) for r in rows], device=lm.device)
        ids = torch.full(
            (len(rows), int(lengths.max())), lm.pad_token_id, dtype=torch.long, device=lm.device
        )  # [b, pos], right-padded (exact under causal attn)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        acts = run_to_hook(lm, ids, None, hook)  # [b, pos, d]
        out.append(acts[torch.arange(len(rows)), lengths - 1].float())  # [b, d]
    return torch.cat(out)


def caa_vector(
    lm: LoadedModel,
    hook_name: str | HookPoint,
    triples: Triples,
    *,
    prepend_bos: bool = True,
    batch_size: int = 16,
) -> Float[Tensor, " d"]:
    """Mean over triples of act(prompt + positive) - act(prompt + negative) at the last token.

    Raises ValueError for no triples, an empty string in a triple, identical completions, or
    a text longer than the model's context; nothing runs in that case.
    """
    if not triples:
        raise ValueError("no contrast triples given")
    for i, triple in enumerate(triples):
        if len(triple) != 3 or not all(isinstance(s, str) and s for s in triple):
            raise ValueError(
                f"triple {i} must be three non-empty strings (prompt, positive, negative)"
            )
        if triple[1] == triple[2]:
            raise ValueError(f"triple {i} has identical positive and negative completions")
    pos = [p + a for p, a, _ in triples]
    neg = [p + b for p, _, b in triples]
    for t in pos + neg:  # validate lengths before any forward pass
        lm.encode(t, prepend_bos=prepend_bos)
    acts = _last_token_acts(lm, hook_name, pos + neg, prepend_bos, batch_size)  # [2n, d]
    n = len(triples)
    return (acts[:n] - acts[n:]).mean(dim=0)  # [d]


@dataclass
class Decomposition:
    """A vector explained by SAE decoder rows.

    ``features``/``cosines``: the k features whose decoder rows have the highest cosine with
    the vector. ``weights``: non-negative least-squares coefficients over those rows (SAE
    features only fire positively). ``residual_fraction``: ||v - sum w_i d_i|| / ||v||.
    """

    features: list[int]
    cosines: list[float]
    weights: list[float]
    residual_fraction: float


def nnls(a: Float[Tensor, "m n"], b: Float[Tensor, " m"], iters: int = 2000) -> Float[Tensor, " n"]:
    """Solve min ||a x - b|| s.t. x >= 0 by projected gradient on the Gram matrix (n is small)."""
    gram = a.T @ a  # [n, n]
    atb = a.T @ b  # [n]
    step = 1.0 / float(torch.linalg.matrix_norm(gram, ord=2).clamp_min(1e-12))
    x = torch.zeros_like(atb)
    for _ in range(iters):
        x_new = (x - step * (gram @ x - atb)).clamp_min(0.0)
        if torch.allclose(x_new, x, atol=1e-9, rtol=0):
            return x_new
        x = x_new
    return x


def decompose(att: AttachedSAE, vector: Float[Tensor, " d_in"], k: int = 10) -> Decomposition:
    """Top-k features of ``vector`` by cosine with decoder rows, their NNLS weights and residual.

    The vector is centred first when the SAE expects centred activations. Raises ValueError
    for a vector of the wrong width or zero norm, or k < 1.
    """
    v = vector.detach().to(att.decoder_directions.device).float().reshape(-1)  # [d_in]
    if v.shape[0] != att.d_in:
        raise ValueError(f"vector has width {v.shape[0]}; the SAE's d_in is {att.d_in}")
    if att.preprocessing.center_residual:
        v = v - v.mean()
    norm = v.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("vector has zero or non-finite norm")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    w_dec = att.decoder_directions.detach().float()  # [d_sae, d_in]
    cos = (w_dec @ v) / (w_dec.norm(dim=-1).clamp_min(1e-12) * norm)  # [d_sae]
    top = cos.topk(min(k, att.d_sae))
    rows = w_dec[top.indices]  # [k, d_in]
    weights = nnls(rows.T, v)  # [k]
    residual = (v - weights @ rows).norm() / norm
    return Decomposition(
        features=top.indices.tolist(),
        cosines=top.values.tolist(),
        weights=weights.tolist(),
        residual_fraction=float(residual),
    )
