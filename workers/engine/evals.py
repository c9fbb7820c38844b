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

The loss metrics (CE losses, loss recovered, KL) are computed on the batches that start within
the first ``loss_tokens`` positions (default DEFAULT_LOSS_TOKENS), the reconstruction, sparsity
and density metrics on every position: past the loss budget a batch runs only as far as the hook
and is encoded, with no second copy of the rows and no unembedding. SAELens's evals likewise
take separate budgets for the two groups (``n_eval_reconstruction_batches``,
``n_eval_sparsity_variance_batches``): dead and dense fractions need many tokens, while a mean
loss is already precise on fewer.

Nothing is cached: memory is one batch's final hidden states (``2 × batch_size × context ×
d_model``), a chunk of ~1M logits at a time, and one batch's latents on the counted tokens
(``batch_size × context × d_sae``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .hooks import intercept, logits_from_hidden, run_to_hook, run_to_unembed
from .indexing import Windows
from .loading import AttachedSAE

DEFAULT_BATCH_SIZE = 16
DEFAULT_LOSS_TOKENS = 100_000  # positions scored for CE/KL; the other metrics use them all
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
    loss_tokens: int = 0  # counted tokens the CE losses and KL were computed on

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


class _Sums:
    """Running sums of one pass, kept on the device (float64, as SAELens keeps its variance
    sums) so that no batch waits for the device; read once at the end."""

    def __init__(self, d_in: int, d_sae: int, device: torch.device) -> None:
        def zeros(*shape: int) -> Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=device)

        self.n = self.n_ce = 0  # counted tokens, scored next-token predictions (known on CPU)
        self.n_loss = 0  # counted tokens of the batches whose losses were scored
        self.sum_x = zeros(d_in)
        self.fired = zeros(d_sae)  # tokens each feature fires on
        # ‖x‖², ‖x - x̂‖², CE clean / spliced / zero-ablated, KL: one vector, one read at the end
        self.scalars = zeros(6)

    def reconstruction(
        self,
        x: Float[Tensor, "n d_in"],
        x_hat: Float[Tensor, "n d_in"],
        f: Float[Tensor, "n d_sae"],
    ) -> None:
        x, x_hat = x.float(), x_hat.float()
        self.n += len(x)
        self.sum_x += x.sum(0)
        self.scalars[0] += x.pow(2).sum()
        self.scalars[1] += (x - x_hat).pow(2).sum()
        # float32 counts per batch (exact below 2^24 tokens): far faster than summing bools
        self.fired += (f != 0).float().sum(0)  # [d_sae]

    def metrics(self, *, losses: bool = True) -> SAEMetrics:
        """The metrics; without `losses` (none were scored) the loss metrics are NaN."""
        if self.n == 0 or (losses and (self.n_ce == 0 or self.n_loss == 0)):
            raise ValueError("no token was counted: the eval windows hold only BOS/special tokens")
        sum_sq, sum_resid, ce_c, ce_s, ce_z, kl = self.scalars.tolist()
        variance = sum_sq / self.n - (self.sum_x / self.n).pow(2).sum().item()
        mse = sum_resid / self.n
        nan = float("nan")
        n_ce, n_loss = (self.n_ce, self.n_loss) if losses else (nan, nan)
        ce_c, ce_s, ce_z, kl = ce_c / n_ce, ce_s / n_ce, ce_z / n_ce, kl / n_loss
        fired = self.fired.cpu()
        return SAEMetrics(
            tokens=self.n,
            l0=float(fired.sum()) / self.n,
            explained_variance=1.0 - mse / variance if variance > 1e-10 else float("nan"),
            mse=mse,
            ce_loss_clean=ce_c,
            ce_loss_spliced=ce_s,
            ce_loss_zero=ce_z,
            loss_recovered=(ce_z - ce_s) / (ce_z - ce_c) if ce_z != ce_c else nan,
            kl_div=kl,
            dead_fraction=float((fired == 0).float().mean()),
            dense_fraction=float((fired / self.n > DENSE_THRESHOLD).double().mean()),
            loss_tokens=self.n_loss,
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


@dataclass
class _Batch:
    """One batch's positions, worked out on the CPU (no device sync) as flat indices into
    ``b * pos``: the counted ones, the excluded ones, the scored predictions and targets."""

    b: int
    pos: int
    input_ids: Int[Tensor, "b pos"]  # on the device
    counted: Int[Tensor, " n"]
    excluded: Int[Tensor, " n_excluded"]
    ce_at: Int[Tensor, " n_ce"]  # position i predicts token i+1: input counted, target real
    targets: Int[Tensor, " n_ce"]

    @classmethod
    def of(cls, att: AttachedSAE, windows: Windows, ids: np.ndarray) -> _Batch:
        cpu = torch.device("cpu")
        input_ids, real = windows.batch(ids, att.lm.pad_token_id, cpu)  # [b, pos] each
        counted = counted_positions(att, input_ids, real)  # [b, pos]
        ce = counted.clone()
        ce[:, :-1] &= real[:, 1:]
        ce[:, -1] = False
        flat_ce = ce.flatten().nonzero()[:, 0]
        dev = att.lm.device
        b, pos = input_ids.shape
        return cls(
            b=b,
            pos=pos,
            input_ids=input_ids.to(dev),
            counted=counted.flatten().nonzero()[:, 0].to(dev),
            excluded=(~counted).flatten().nonzero()[:, 0],  # stays on the CPU: sliced per chunk
            ce_at=flat_ce,
            targets=input_ids.flatten()[flat_ce + 1],
        )


def _splicer(att: AttachedSAE, batch: _Batch, sums: _Sums, zero_rows: bool):
    """The hook: encode the clean rows, write the reconstruction into the spliced rows."""
    n = batch.b * batch.pos

    def splice(x: Float[Tensor, "rows pos d"]) -> Float[Tensor, "rows pos d"]:
        out = x.clone()  # [rows, pos, d], contiguous
        flat = out.view(-1, out.shape[-1])  # [rows*pos, d]
        raw = flat.index_select(0, batch.counted)  # [n_counted, d]: clean rows come first
        xs = att.prepare(raw)  # in the SAE's input space
        f = att.sae.encode(xs)  # [n_counted, d_sae]
        x_hat = att.sae.decode(f)  # [n_counted, d_in]
        sums.reconstruction(xs, x_hat, f)
        if att.preprocessing.center_residual:  # back from the centred space to the model's
            x_hat = x_hat + raw.mean(-1, keepdim=True).to(x_hat.dtype)
        flat.index_copy_(0, batch.counted + n, x_hat.to(x.dtype))  # into the spliced rows
        if zero_rows:
            flat[2 * n :] = 0
        return out

    return splice


def _score(
    sums: _Sums,
    att: AttachedSAE,
    hidden: Float[Tensor, "rows pos d_model"],
    batch: _Batch,
    zero_lp: Float[Tensor, " vocab"] | None,
) -> None:
    """CE losses and KL of one batch, unembedding a few hundred positions at a time: each
    chunk's logits stay small (cache-sized on CPU; never ``rows × pos × vocab`` at once)."""
    n = batch.b * batch.pos
    flat = hidden.reshape(-1, n, hidden.shape[-1])  # [copies, b*pos, d_model]
    vocab = att.lm.model.get_output_embeddings().weight.shape[0]
    dev = hidden.device
    step = max(1, (1 << 20) // vocab)  # ~1M logits per chunk
    for s in range(0, n, step):
        e = min(s + step, n)
        lp_c = torch.log_softmax(logits_from_hidden(att.lm, flat[0, s:e]).float(), dim=-1)
        lp_s = torch.log_softmax(logits_from_hidden(att.lm, flat[1, s:e]).float(), dim=-1)
        in_chunk = (batch.ce_at >= s) & (batch.ce_at < e)
        rows, t = (batch.ce_at[in_chunk] - s).to(dev), batch.targets[in_chunk].to(dev)
        at = rows * vocab + t  # flat index of each scored target's log-probability
        sums.scalars[2] -= lp_c.take(at).sum()
        sums.scalars[3] -= lp_s.take(at).sum()
        if zero_lp is None:
            lp_z = torch.log_softmax(logits_from_hidden(att.lm, flat[2, s:e]).float(), dim=-1)
            sums.scalars[4] -= lp_z.take(at).sum()
        else:
            sums.scalars[4] -= zero_lp[t].sum()
        # Excluded positions (BOS, padding: a few rows) get lp_s = lp_c, so KL 0 there.
        ex = batch.excluded[(batch.excluded >= s) & (batch.excluded < e)].to(dev) - s
        lp_s.index_copy_(0, ex, lp_c.index_select(0, ex))
        # Σ p_c·(lp_c - lp_s) as one flat dot product: far faster on CPU than kl_div or a
        # per-row sum; the difference is taken first (two dots would cancel in fp32).
        diff = torch.sub(lp_c, lp_s, out=lp_s).view(-1)  # reuses lp_s's memory
        sums.scalars[5] += torch.dot(lp_c.exp_().view(-1), diff)  # lp_c is not needed after
    sums.n_ce += len(batch.ce_at)
    sums.n_loss += len(batch.counted)


def _reconstruct_only(att: AttachedSAE, batch: _Batch, sums: _Sums, mask: Tensor | None) -> None:
    """Reconstruction, sparsity and density sums of one batch: forward to the hook only."""
    acts = run_to_hook(att.lm, batch.input_ids, mask, att.hook_name)  # [b, pos, d]
    raw = acts.reshape(-1, acts.shape[-1]).index_select(0, batch.counted)  # [n_counted, d]
    xs = att.prepare(raw)
    f = att.sae.encode(xs)  # [n_counted, d_sae]
    sums.reconstruction(xs, att.sae.decode(f), f)


def evaluate_sae(
    att: AttachedSAE,
    windows: Windows,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    loss_tokens: int | None = DEFAULT_LOSS_TOKENS,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> SAEMetrics:
    """Every metric of :class:`SAEMetrics` over ``windows``, in one pass of batched forwards:
    the loss metrics on the batches that start within the first ``loss_tokens`` positions
    (None: all; 0: none, they are NaN), the others on every batch (see the module docstring).

    ``progress(tokens_done, tokens_total)`` is called after every batch (window positions);
    ``cancel()`` before every batch, True raising :class:`EvalCancelled`. Raises ValueError
    for a bad batch size or when no token is counted.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if loss_tokens is not None and (
        isinstance(loss_tokens, bool) or not isinstance(loss_tokens, int) or loss_tokens < 0
    ):
        raise ValueError(f"loss_tokens must be an integer >= 0 or None, got {loss_tokens!r}")
    lm = att.lm
    sums = _Sums(att.d_in, att.d_sae, lm.device)
    zero_lp = zero_ablated_logprobs(att)
    copies = 2 if zero_lp is not None else 3  # clean, spliced[, zero-ablated] rows
    lengths = windows.lengths()
    total, done = windows.n_tokens, 0
    with torch.no_grad():
        for start in range(0, len(windows), batch_size):
            if cancel is not None and cancel():
                raise EvalCancelled(f"evaluation cancelled after {done} of {total} tokens")
            ids = np.arange(start, min(start + batch_size, len(windows)))
            batch = _Batch.of(att, windows, ids)
            mask = None
            if lengths[ids].min() < batch.pos:  # right padding: mask it
                lens = torch.from_numpy(lengths[ids]).to(lm.device)
                mask = (torch.arange(batch.pos, device=lm.device) < lens[:, None]).long()
            if loss_tokens is not None and done >= loss_tokens:
                _reconstruct_only(att, batch, sums, mask)
            else:
                rows = batch.input_ids.repeat(copies, 1)  # [copies*b, pos]
                splice = _splicer(att, batch, sums, zero_rows=zero_lp is None)
                with intercept(lm.model, att.hook_name, splice):
                    hidden = run_to_unembed(
                        lm, rows, mask.repeat(copies, 1) if mask is not None else None
                    )  # [copies*b, pos, d_model]
                _score(sums, att, hidden, batch, zero_lp)
            done += int(lengths[ids].sum())
            if progress is not None:
                progress(done, total)
    return sums.metrics(losses=loss_tokens != 0)


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
