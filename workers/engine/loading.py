"""Load a Hugging Face causal LM and a SAELens SAE, and attach the SAE to its hook.

Everything that can be wrong with a (model, SAE) pair is checked once, in :func:`attach_sae`,
before any request is served: the hook exists in this architecture, the SAE's ``d_in`` equals
the width at that hook (checked on the config *and* by a 1-token dry run), and the SAE sits on
the model's device and dtype. Before that, the files of a local model or SAE folder are
checked as they are loaded (checkpoints.py): a corrupt, truncated or mismatched file raises
:class:`CheckpointError`, one line naming the file.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from sae_lens.registry import SAE_CLASS_REGISTRY
from safetensors import SafetensorError
from torch import Tensor
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from .checkpoints import (
    CheckpointError,
    check_loading_info,
    check_model_folder,
    check_sae_folder,
    one_line,
)
from .constants import DEMO_MODEL_DIR, DEMO_SAE_DIR, DEMO_SPEC, resolve_dtype
from .hooks import (
    Family,
    HookPoint,
    family_of,
    hook_width,
    n_layers_of,
    parse_hook_name,
    resolve,
    run_to_hook,
)

log = logging.getLogger(__name__)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _device_and_dtype(device: str | None, dtype: str | None) -> tuple[torch.device, torch.dtype]:
    dev = torch.device(device) if device else default_device()
    # fp32 on CPU (bf16 matmuls are slow there); bf16 on GPUs.
    default = torch.bfloat16 if dev.type == "cuda" else torch.float32
    dt = resolve_dtype(dtype) if dtype else default
    return dev, dt


@dataclass
class LoadedModel:
    """A causal LM ready for inference (eval mode, no grad), with its tokenizer and family."""

    model: PreTrainedModel
    tokenizer: Any
    family: Family
    name: str
    device: torch.device
    dtype: torch.dtype
    _vocab_strings: list[str] | None = field(default=None, init=False, repr=False)
    _decode: Any = field(default=None, init=False, repr=False)

    @property
    def n_ctx(self) -> int:
        """Maximum number of positions the model accepts."""
        return int(self.model.config.max_position_embeddings)

    @property
    def d_model(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def n_layers(self) -> int:
        return n_layers_of(self.model)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def bos_token_id(self) -> int:
        """BOS id; GPT-2-style tokenizers use <|endoftext|> (= EOS) as BOS, as TransformerLens."""
        for tid in (
            self.tokenizer.bos_token_id,
            self.model.config.bos_token_id,
            self.tokenizer.eos_token_id,
        ):
            if tid is not None:
                return int(tid)
        raise ValueError(f"model {self.name} defines no BOS or EOS token")

    @property
    def pad_token_id(self) -> int:
        tid = self.tokenizer.pad_token_id
        return int(tid) if tid is not None else self.bos_token_id

    def encode(self, text: str, prepend_bos: bool = True) -> Int[Tensor, " pos"]:
        """Token ids of ``text`` on the model's device, with BOS first if asked.

        Raises ValueError when the text is empty or longer than the model's context.
        """
        if not isinstance(text, str) or not text:
            raise ValueError("text is empty")
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if prepend_bos:
            ids = [self.bos_token_id, *ids]
        if not ids:
            raise ValueError("text is empty")
        if len(ids) > self.n_ctx:
            raise ValueError(
                f"text is {len(ids)} tokens long (BOS included: {prepend_bos}); "
                f"the model's context is {self.n_ctx} tokens"
            )
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def decode(self, ids: Tensor | list[int]) -> str:
        if self._decode is None:
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            if backend is not None and not self.tokenizer.clean_up_tokenization_spaces:
                # What tokenizer.decode returns then, without its Python wrapper: streaming
                # decodes every row twice per step, and the wrapper costs 5x the Rust decode.
                self._decode = backend.decode
            else:
                self._decode = lambda ids, skip_special_tokens: self.tokenizer.decode(ids)
        return self._decode(_as_list(ids), skip_special_tokens=False)

    def token_strings(self, ids: Tensor | list[int]) -> list[str]:
        """Each token decoded on its own (readable text, e.g. " the" rather than "Ġthe")."""
        table = self.vocab_strings()
        return [
            table[i] if 0 <= i < len(table) else self.tokenizer.decode([i]) for i in _as_list(ids)
        ]

    def vocab_strings(self) -> list[str]:
        """Every token id decoded on its own, computed once: decoding token by token through
        the tokenizer costs more than the forward pass on small models."""
        if self._vocab_strings is None:
            n = len(self.tokenizer)
            self._vocab_strings = self.tokenizer.batch_decode([[i] for i in range(n)])
        return self._vocab_strings


def _as_list(ids: Tensor | list[int]) -> list[int]:
    return ids.tolist() if isinstance(ids, Tensor) else list(ids)


def _model_path(spec: str) -> str:
    if spec == DEMO_SPEC:
        if not (DEMO_MODEL_DIR / "config.json").is_file():
            raise FileNotFoundError(f"the demo model is missing: no checkpoint at {DEMO_MODEL_DIR}")
        return str(DEMO_MODEL_DIR)
    return spec  # a local directory or a hub id; transformers tells them apart


def load_model(spec: str, *, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """Load a causal LM: ``"demo"``, a local directory, or a Hugging Face hub id.

    Device defaults to CUDA when present, else CPU; dtype to bf16 on CUDA, fp32 on CPU.
    Raises ValueError for an architecture outside the supported families (before moving it),
    and CheckpointError (a ValueError) for files that cannot be read or do not fit the config
    (a local folder's files are checked before loading; any model's weights after).
    """
    if not spec:
        raise ValueError("model spec is empty; use 'demo', a local directory or a hub id")
    dev, dt = _device_and_dtype(device, dtype)
    path = _model_path(spec)
    local = Path(path).is_dir()
    if local:
        check_model_folder(Path(path))
    try:
        # Mismatched shapes are reported rather than raised, then refused below in one line.
        model, info = AutoModelForCausalLM.from_pretrained(
            path, dtype=dt, ignore_mismatched_sizes=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as e:
        if not (local or isinstance(e, SafetensorError)):
            raise  # a hub id that does not exist, no network: transformers' words are clear
        raise CheckpointError(
            f"{path}: transformers cannot load the model: {one_line(e)}"
        ) from None
    check_loading_info(path, info)
    family = family_of(model)  # fail before any further work on an unsupported arch
    model.to(dev).eval().requires_grad_(False)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # tokenizers raises a bare Exception for a file it cannot parse
        if not local:
            raise
        raise CheckpointError(f"{path}: cannot load the tokenizer: {one_line(e)}") from None
    if tokenizer.pad_token is None:
        # Padding is always masked out; reusing EOS keeps the vocabulary unchanged.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.bos_token
    return LoadedModel(
        model=model, tokenizer=tokenizer, family=family, name=spec, device=dev, dtype=dt
    )


def _sae_dtype_name(dt: torch.dtype) -> str:
    return str(dt).removeprefix("torch.")


def load_sae(spec: str, *, device: str | None = None, dtype: str | None = None) -> SAE:
    """Load an SAE with sae-lens: ``"demo"``, a local SAELens folder, or ``"release:sae_id"``.

    dtype None keeps the SAE's own dtype (local) or float32 (registry).
    Raises ValueError for a spec of none of these forms, FileNotFoundError for a missing demo,
    and CheckpointError (a ValueError) for files that cannot be read or disagree with cfg.json.
    """
    dev, _ = _device_and_dtype(device, None)
    dt = _sae_dtype_name(resolve_dtype(dtype)) if dtype else None
    with warnings.catch_warnings():
        # sae-lens warns about model_from_pretrained_kwargs; we honour them (SAEPreprocessing).
        warnings.filterwarnings("ignore", message=".*model_from_pretrained_kwargs.*")
        if spec == DEMO_SPEC:
            if not (DEMO_SAE_DIR / "cfg.json").is_file():
                raise FileNotFoundError(f"the demo SAE is missing: no checkpoint at {DEMO_SAE_DIR}")
            sae = _load_sae_folder(DEMO_SAE_DIR, device=str(dev), dtype=dt)
        elif spec and Path(spec).is_dir():
            sae = _load_sae_folder(Path(spec), device=str(dev), dtype=dt)
        elif spec and ":" in spec and not Path(spec).exists():
            release, sae_id = spec.split(":", 1)
            try:
                sae = SAE.from_pretrained(release, sae_id, device=str(dev), dtype=dt or "float32")
            except (SafetensorError, json.JSONDecodeError) as e:  # a corrupt download
                raise CheckpointError(
                    f"SAE {spec}: its files cannot be read: {one_line(e)}"
                ) from None
        else:
            raise ValueError(
                f"SAE spec {spec!r} is neither 'demo', an existing SAELens folder "
                "(cfg.json + sae_weights.safetensors) nor 'release:sae_id'"
            )
    sae.eval().requires_grad_(False)
    return sae


def _load_sae_folder(folder: Path, *, device: str, dtype: str | None) -> SAE:
    """`SAE.load_from_disk` of a folder whose files were checked first; whatever sae-lens
    still refuses (an unknown architecture, a config field it rejects) becomes one line."""
    check_sae_folder(folder, architectures=SAE_CLASS_REGISTRY.keys())
    try:
        return SAE.load_from_disk(folder, device=device, dtype=dtype)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, TypeError, KeyError, ValueError, SafetensorError) as e:
        raise CheckpointError(f"{folder}: sae-lens cannot load this SAE: {one_line(e)}") from None


@dataclass(frozen=True)
class SAEPreprocessing:
    """How activations must be prepared before ``sae.encode``, read from the SAE's config.

    - ``center_residual``: the SAE was trained on TransformerLens weights processed with
      ``center_writing_weights=True`` (``metadata.model_from_pretrained_kwargs``). Those weights
      make every vector written to the residual stream mean-zero over d_model, so the
      TransformerLens activation equals the HF one minus its mean over d_model (exact for
      resid_pre/resid_post/mlp_out/attn_out; attn_z is never centred).
    - ``normalize_activations``: applied by sae-lens itself inside ``SAE.encode``
      (``constant_norm_rescale`` and ``layer_norm`` at run time; ``expected_average_only_in``
      is folded into the weights by ``SAE.from_pretrained`` when the release ships the factor,
      and is otherwise a no-op in sae-lens, which we log). We add nothing on top.
    - ``prepend_bos``: the SAE was trained with BOS prepended; activation callers default to it.
    """

    hook_name: str
    prepend_bos: bool
    center_residual: bool
    normalize_activations: str
    context_size: int | None

    @classmethod
    def from_sae(cls, sae: SAE, hook: HookPoint) -> SAEPreprocessing:
        meta = sae.cfg.metadata
        kwargs = meta.model_from_pretrained_kwargs or {}
        prepend = meta.prepend_bos
        return cls(
            hook_name=hook.name,
            prepend_bos=True if prepend is None else bool(prepend),
            center_residual=bool(kwargs.get("center_writing_weights")) and hook.kind != "attn_z",
            normalize_activations=str(sae.cfg.normalize_activations),
            context_size=meta.context_size,
        )


@dataclass
class AttachedSAE:
    """An SAE checked against a model and bound to its hook. Build it with :func:`attach_sae`."""

    lm: LoadedModel
    sae: SAE
    hook_name: str
    preprocessing: SAEPreprocessing

    @property
    def hook(self) -> HookPoint:
        return parse_hook_name(self.hook_name)  # validated against the model by attach_sae

    @property
    def d_sae(self) -> int:
        return int(self.sae.cfg.d_sae)

    @property
    def d_in(self) -> int:
        return int(self.sae.cfg.d_in)

    def prepare(self, acts: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        """Hooked HF activations -> what the SAE was trained on (centring if configured)."""
        x = acts.to(self.sae.dtype)
        if self.preprocessing.center_residual:
            x = x - x.mean(dim=-1, keepdim=True)
        return x

    def encode(self, acts: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Feature activations of hooked activations (preprocessing, then ``sae.encode``)."""
        with torch.no_grad():
            return self.sae.encode(self.prepare(acts))

    def decode(self, feats: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        """Reconstruction in the SAE's input space (centred when ``center_residual``)."""
        with torch.no_grad():
            return self.sae.decode(feats)

    @property
    def decoder_directions(self) -> Float[Tensor, "d_sae d_in"]:
        """W_dec rows: feature f writes ``f(x) * W_dec[f]``."""
        return self.sae.W_dec

    def check_feature(self, index: int) -> int:
        """Return ``index`` if it is a feature of this SAE, else raise ValueError naming d_sae."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.d_sae:
            raise ValueError(
                f"unknown feature index {index!r}; this SAE has d_sae={self.d_sae} "
                f"features (0..{self.d_sae - 1})"
            )
        return index


def attach_sae(lm: LoadedModel, sae: SAE, *, hook_name: str | None = None) -> AttachedSAE:
    """Check ``sae`` against ``lm`` and bind it to its hook; moves the SAE to lm's device/dtype.

    The hook comes from the SAE's config (``metadata.hook_name``) unless given.
    Raises ValueError when the hook is missing from the config or the model, or when the SAE's
    d_in differs from the width at the hook (both values named).
    """
    name = hook_name or sae.cfg.metadata.hook_name
    if not name:
        raise ValueError("the SAE config names no hook (metadata.hook_name); pass hook_name=")
    try:
        _, _, point = resolve(lm.model, name)
    except ValueError as e:
        raise ValueError(f"cannot attach SAE to model {lm.name}: {e}") from None
    width = hook_width(lm.model, point)
    if int(sae.cfg.d_in) != width:
        raise ValueError(
            f"SAE d_in={sae.cfg.d_in} does not match the width {width} of "
            f"{point.name} in model {lm.name}"
        )
    # Dry run: the table is right only if the module really produces that width.
    probe = torch.tensor([[lm.bos_token_id]], device=lm.device)
    seen = run_to_hook(lm, probe, None, point).shape[-1]
    if seen != sae.cfg.d_in:
        raise ValueError(
            f"SAE d_in={sae.cfg.d_in} does not match the width {seen} seen at "
            f"{point.name} in model {lm.name}"
        )
    sae = sae.to(device=lm.device, dtype=lm.dtype)
    if sae.cfg.reshape_activations == "hook_z":
        # We hand the SAE flattened [.., n_heads*d_head] activations already.
        sae.turn_off_forward_pass_hook_z_reshaping()
    if sae.cfg.normalize_activations == "expected_average_only_in":
        log.warning(
            "SAE %s: normalize_activations=expected_average_only_in was not folded by "
            "sae-lens; activations are encoded unscaled",
            name,
        )
    if point.kind == "attn_z" and (sae.cfg.metadata.model_from_pretrained_kwargs or {}).get(
        "fold_value_biases"
    ):
        log.warning(
            "SAE %s was trained with fold_value_biases; attn_z keeps value biases here", name
        )
    return AttachedSAE(
        lm=lm, sae=sae, hook_name=point.name, preprocessing=SAEPreprocessing.from_sae(sae, point)
    )
