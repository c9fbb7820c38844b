"""SAE quality metrics in one streaming pass over held-out windows, as SAELens's evals define them.

Per batch of windows, ONE forward pass of ``[clean rows; spliced rows]`` (plus zero-ablated rows
when needed) serves every metric. At the SAE hook the clean rows' activations are encoded and
decoded (reconstruction metrics and feature counts come from them) and the reconstruction
replaces the activation in the spliced rows; the logits of both halves give the CE losses and
the KL divergence. Following ``sae_lens.evals``:

- the spliced rows carry the reconstruction alone (no error term), except at excluded tokens
  (BOS, special tokens, padding), which keep their clean activation;
- the zero-ablated rows have the hook's activation zeroed at every position, BOS included.
  At a residual-stream hook (resid_pre/resid_post) every later layer then sees the same
  vector at every position, so the ablated logits are one vector for all tokens of all
  inputs: it is computed once, from a one-token forward, and no rows are added;
- statistics skip positions whose *input* token is excluded: CE at position i scores the
  prediction of token i+1, KL compares the next-token distributions at position i;
- explained variance is 1 - Σ‖x - x̂‖² / Σ‖x - mean(x)‖² over all counted tokens (float64 sums,
  SAELens's ``ExplainedVarianceCalculator``), MSE the per-token ‖x - x̂‖² averaged, L0 the mean
  number of non-zero latents; loss recovered (SAELens ``ce_loss_score``) is
  (CE_zero - CE_spliced) / (CE_zero - CE_clean).

Nothing is cached: memory is one batch's logits (``2 × batch_size × context × vocab``) and one
batch's latents on the counted tokens (``batch_size × context × d_sae``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .hooks import intercept
from .indexing import Windows
from .loading import AttachedSAE

DEFAULT_BATCH_SIZE = 16
DENSE_THRESHOLD = 0.1  # a feature firing on more than 10% of tokens is "dense"
_RESID_KINDS = ("resid_pre", "resid_post")

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class EvalCancelled(Exception):
    """Raised when ``cancel()`` returned True (checked before every batch)."""


@dataclass(frozen=True)
class SAEMetrics:
    """Quality of an SAE on ``tokens`` counted tokens (BOS, special tokens, padding excluded)."""

    tokens: int
    l0: float
    explained_variance: float
    mse: float
    ce_loss_clean: float
    ce_loss_spliced: float
    ce_loss_zero: float
    loss_recovered: float
    kl_div: float  # KL(clean ‖ spliced) of the next-token distributions, mean per token
    dead_fraction: float  # features that never fire on the eval tokens
    dense_fraction: float  # features firing on more than DENSE_THRESHOLD of them

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


class _Sums:
    """Running sums of one pass; float64 on the CPU, as SAELens keeps its variance sums."""

    def __init__(self, d_in: int, d_sae: int, device: torch.device) -> None:
        self.n = 0  # counted tokens
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.sum_sq = self.sum_resid = 0.0
        self.fired = torch.zeros(d_sae, dtype=torch.float64, device=device)  # tokens per feature
        self.n_ce = 0
        self.ce_clean = self.ce_spliced = self.ce_zero = self.kl = 0.0
        self.n_kl = 0

    def reconstruction(
        self,
        x: Float[Tensor, "n d_in"],
        x_hat: Float[Tensor, "n d_in"],
        f: Float[Tensor, "n d_sae"],
    ) -> None:
        x, x_hat = x.float(), x_hat.float()
        self.n += len(x)
        self.sum_x += x.sum(0).double().cpu()
        self.sum_sq += x.pow(2).sum().item()
        self.sum_resid += (x - x_hat).pow(2).sum().item()
        # float32 counts per batch (exact below 2^24 tokens): far faster than summing bools
        self.fired += (f != 0).float().sum(0)  # [d_sae]

    def metrics(self) -> SAEMetrics:
        if self.n == 0 or self.n_ce == 0:
            raise ValueError("no token was counted: the eval windows hold only BOS/special tokens")
        variance = self.sum_sq / self.n - (self.sum_x / self.n).pow(2).sum().item()
        mse = self.sum_resid / self.n
        ce_c, ce_s, ce_z = (v / self.n_ce for v in (self.ce_clean, self.ce_spliced, self.ce_zero))
        fired = self.fired.cpu()
        return SAEMetrics(
            tokens=self.n,
            l0=float(fired.sum()) / self.n,
            explained_variance=1.0 - mse / variance if variance > 1e-10 else float("nan"),
            mse=mse,
            ce_loss_clean=ce_c,
            ce_loss_spliced=ce_s,
            ce_loss_zero=ce_z,
            loss_recovered=(ce_z - ce_s) / (ce_z - ce_c) if ce_z != ce_c else float("nan"),
            kl_div=self.kl / self.n_kl,
            dead_fraction=float((fired == 0).float().mean()),
            dense_fraction=float((fired / self.n > DENSE_THRESHOLD).double().mean()),
        )


def counted_positions(
    att: AttachedSAE, input_ids: Int[Tensor, "batch pos"], real: Bool[Tensor, "batch pos"]
) -> Bool[Tensor, "batch pos"]:
    """Real tokens that are not special (BOS/EOS/PAD): SAELens's ``exclude_special_tokens``."""
    special = sorted({*att.lm.tokenizer.all_special_ids, att.lm.bos_token_id})
    return real & ~torch.isin(input_ids, torch.tensor(special, device=input_ids.device))


def zero_ablated_logprobs(att: AttachedSAE) -> Float[Tensor, " vocab"] | None:
    """Log-probabilities of the model with a residual hook zeroed: one vector for every token
    (see the module docstring); None at other hooks, whose ablation depends on the input."""
    if att.hook.kind not in _RESID_KINDS:
        return None
    probe = torch.tensor([[att.lm.bos_token_id]], device=att.lm.device)  # [1, 1]
    with torch.no_grad(), intercept(att.lm.model, att.hook_name, torch.zeros_like):
        logits = att.lm.model(input_ids=probe, use_cache=False).logits  # [1, 1, vocab]
    return torch.log_softmax(logits[0, 0].float(), dim=-1)  # [vocab]


def _splicer(att: AttachedSAE, counted: Bool[Tensor, "b pos"], sums: _Sums, zero_rows: bool):
    """The hook: encode the clean rows, write the reconstruction into the spliced rows."""
    b = counted.shape[0]

    def splice(x: Float[Tensor, "rows pos d"]) -> Float[Tensor, "rows pos d"]:
        clean = x[:b]  # [b, pos, d]
        xs = att.prepare(clean[counted])  # [n, d_in] in the SAE's input space
        f = att.sae.encode(xs)  # [n, d_sae]
        x_hat = att.sae.decode(f)  # [n, d_in]
        sums.reconstruction(xs, x_hat, f)
        if att.preprocessing.center_residual:  # back from the centred space to the model's
            x_hat = x_hat + clean[counted].mean(-1, keepdim=True).to(x_hat.dtype)
        out = x.clone()  # [rows, pos, d]
        spliced = out[b : 2 * b]  # a view: [b, pos, d]
        spliced[counted] = x_hat.to(x.dtype)
        if zero_rows:
            out[2 * b :] = 0
        return out

    return splice


def _score_rows(
    sums: _Sums,
    logits: Float[Tensor, "rows pos vocab"],
    input_ids: Int[Tensor, "b pos"],
    counted: Bool[Tensor, "b pos"],
    real: Bool[Tensor, "b pos"],
    zero_lp: Float[Tensor, " vocab"] | None,
) -> None:
    """CE losses and KL of one batch, a few thousand positions at a time: each chunk's
    log-probabilities stay small (cache-sized on CPU, bounded at a 256k vocabulary)."""
    b, pos = input_ids.shape
    vocab = logits.shape[-1]
    flat = logits.view(-1, b * pos, vocab)  # [copies, b*pos, vocab]
    kl_at = counted.flatten()  # [b*pos]
    # CE at position i scores token i+1: the input counted, the target real (not padding).
    target = torch.roll(input_ids, -1, dims=1).flatten()  # [b*pos]
    ce_at = (counted & torch.roll(real, -1, dims=1)).clone()
    ce_at[:, -1] = False
    ce_at = ce_at.flatten()
    step = max(1, (1 << 22) // vocab)
    for s in range(0, b * pos, step):
        sl = slice(s, s + step)
        lp_c = torch.log_softmax(flat[0, sl].float(), dim=-1)  # [chunk, vocab]
        lp_s = torch.log_softmax(flat[1, sl].float(), dim=-1)  # [chunk, vocab]
        t, ce_m = target[sl, None], ce_at[sl].float()  # [chunk, 1], [chunk]
        sums.ce_clean -= (lp_c.gather(-1, t)[:, 0] * ce_m).sum().item()
        sums.ce_spliced -= (lp_s.gather(-1, t)[:, 0] * ce_m).sum().item()
        if zero_lp is None:
            lp_z = torch.log_softmax(flat[2, sl].float(), dim=-1)
            sums.ce_zero -= (lp_z.gather(-1, t)[:, 0] * ce_m).sum().item()
        else:
            sums.ce_zero -= (zero_lp[t[:, 0]] * ce_m).sum().item()
        skip = ~kl_at[sl]
        if bool(skip.any()):  # excluded positions contribute KL 0 (a few rows: BOS, padding)
            lp_s[skip] = lp_c[skip]
        # Σ p_c·(lp_c - lp_s) as one flat dot product: far faster on CPU than kl_div or a
        # per-row sum; the difference is taken first (two dots would cancel in fp32).
        diff = torch.sub(lp_c, lp_s, out=lp_s).view(-1)  # reuses lp_s's memory
        sums.kl += torch.dot(lp_c.exp_().view(-1), diff).item()  # lp_c is not needed after
    sums.n_kl += int(kl_at.sum())
    sums.n_ce += int(ce_at.sum())


def evaluate_sae(
    att: AttachedSAE,
    windows: Windows,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> SAEMetrics:
    """Every metric of :class:`SAEMetrics` over ``windows``, in one pass of batched forwards.

    ``progress(tokens_done, tokens_total)`` is called after every batch (window positions);
    ``cancel()`` before every batch, True raising :class:`EvalCancelled`. Raises ValueError
    for a bad batch size or when no token is counted.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    lm = att.lm
    sums = _Sums(att.d_in, att.d_sae, lm.device)
    zero_lp = zero_ablated_logprobs(att)
    lengths = windows.lengths()
    total, done = windows.n_tokens, 0
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            if cancel is not None and cancel():
                raise EvalCancelled(f"evaluation cancelled after {done} of {total} tokens")
            ids = np.arange(start, min(start + batch_size, len(windows)))
            input_ids, real = windows.batch(ids, lm.pad_token_id, lm.device)  # [b, pos] each
            counted = counted_positions(att, input_ids, real)
            copies = 2 if zero_lp is not None else 3  # clean, spliced[, zero-ablated]
            rows = input_ids.repeat(copies, 1)  # [copies*b, pos]
            mask = None if bool(real.all()) else real.repeat(copies, 1).long()
            splice = _splicer(att, counted, sums, zero_rows=zero_lp is None)
            with intercept(lm.model, att.hook_name, splice):
                logits = lm.model(input_ids=rows, attention_mask=mask, use_cache=False).logits
            _score_rows(sums, logits, input_ids, counted, real, zero_lp)
            del logits
            done += int(lengths[ids].sum())
            if progress is not None:
                progress(done, total)
    return sums.metrics()


def held_out_windows(
    att: AttachedSAE,
    documents,
    *,
    tokens: int,
    skip_tokens: int = 0,
    context: int | None = None,
) -> Windows:
    """Windows of ``documents`` after the first ``skip_tokens`` positions (the slice an index
    run used), ``tokens`` positions at most: cut exactly as indexing cuts them.

    Raises ValueError for bad sizes, or when nothing is left after the skipped part.
    """
    from .indexing import DEFAULT_CONTEXT, make_windows

    if isinstance(skip_tokens, bool) or not isinstance(skip_tokens, int) or skip_tokens < 0:
        raise ValueError(f"skip_tokens must be a non-negative integer, got {skip_tokens!r}")
    ctx = context or min(att.preprocessing.context_size or DEFAULT_CONTEXT, att.lm.n_ctx)
    whole = make_windows(
        att.lm,
        documents,
        context=ctx,
        tokens=skip_tokens + tokens,
        prepend_bos=att.preprocessing.prepend_bos,
    )
    first = int(np.searchsorted(whole.offsets, skip_tokens))  # first window starting there
    if first >= len(whole):
        raise ValueError(
            f"the corpus has no tokens left after the {skip_tokens:,} held back for the index"
        )
    lo = int(whole.offsets[first])
    return Windows(
        whole.tokens[lo:],
        whole.offsets[first:] - lo,
        whole.doc[first:],
        whole.start[first:],
        has_bos=whole.has_bos,
        context=whole.context,
    )


def is_finite(metrics: SAEMetrics) -> bool:
    """Whether every figure is a finite number (loss recovered is NaN when CE_zero = CE_clean)."""
    return all(math.isfinite(v) for v in asdict(metrics).values())
