"""Hook names as data: TransformerLens/SAELens hook names mapped onto Hugging Face modules.

A hook name such as ``blocks.5.hook_resid_post`` is parsed into a :class:`HookPoint`. Each
architecture family has one table (:data:`FAMILIES`) from hook kind to a module path template
and whether the activation is that module's *input* or *output*. :func:`intercept` is the only
place that turns a hook name into a registered PyTorch hook; activation capture and steering
both go through it, and no other code builds module paths.

Semantics follow TransformerLens (unprocessed weights, i.e. ``from_pretrained_no_processing``):

- ``resid_pre``  = input of block L;  ``resid_post`` = output of block L.
- ``attn_out``   = output of the attention sub-layer (bias included), before it is added to
  the residual stream; ``mlp_out`` likewise for the MLP.
- ``attn_z``     = the concatenated per-head values fed to the output projection, flattened
  head-major to ``n_heads * d_head`` (TransformerLens ``hook_z`` is ``[.., n_heads, d_head]``;
  SAELens hook_z SAEs flatten it the same way).
- Gemma-2 normalises each sub-layer's output again before the residual add
  (``post_attention_layernorm`` / ``post_feedforward_layernorm``). TransformerLens takes
  ``hook_attn_out``/``hook_mlp_out`` *after* those post-norms (the additive contribution to
  the residual stream), so we hook the post-norm modules' outputs. In Llama/Gemma-1
  ``post_attention_layernorm`` is the *pre*-MLP norm, hence Gemma-2 has its own table.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

HOOK_KINDS: tuple[str, ...] = ("resid_pre", "resid_post", "mlp_out", "attn_out", "attn_z")

# kind -> the suffix of the canonical TransformerLens name after "blocks.{L}."
_TL_SUFFIX: dict[str, str] = {
    "resid_pre": "hook_resid_pre",
    "resid_post": "hook_resid_post",
    "mlp_out": "hook_mlp_out",
    "attn_out": "hook_attn_out",
    "attn_z": "attn.hook_z",
}
_SUFFIX_KIND = {v: k for k, v in _TL_SUFFIX.items()}
_SHORT_KIND = {"z": "attn_z", "hook_z": "attn_z", **{k: k for k in HOOK_KINDS}}
_CANONICAL = re.compile(
    r"^blocks\.(\d+)\.(hook_resid_pre|hook_resid_post|hook_mlp_out|"
    r"hook_attn_out|attn\.hook_z)$"
)
_SHORTHAND = re.compile(r"^([a-z_]+)\.(\d+)$")

SUPPORTED_HOOK_FORMS = (
    "blocks.{L}.hook_resid_pre, blocks.{L}.hook_resid_post, blocks.{L}.hook_mlp_out, "
    "blocks.{L}.hook_attn_out, blocks.{L}.attn.hook_z "
    "(shorthand: resid_pre.{L}, resid_post.{L}, mlp_out.{L}, attn_out.{L}, z.{L})"
)


@dataclass(frozen=True)
class HookPoint:
    """One activation site: a block index and a kind from :data:`HOOK_KINDS`."""

    layer: int
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in HOOK_KINDS:
            raise ValueError(f"unknown hook kind {self.kind!r}; supported: {', '.join(HOOK_KINDS)}")
        if self.layer < 0:
            raise ValueError(f"hook layer must be >= 0, got {self.layer}")

    @property
    def name(self) -> str:
        """The canonical TransformerLens name, e.g. ``blocks.3.attn.hook_z``."""
        return f"blocks.{self.layer}.{_TL_SUFFIX[self.kind]}"


def parse_hook_name(name: str) -> HookPoint:
    """Parse a TransformerLens/SAELens hook name (or its shorthand) into a HookPoint.

    >>> parse_hook_name("blocks.5.hook_resid_post")
    HookPoint(layer=5, kind='resid_post')
    >>> parse_hook_name("blocks.0.attn.hook_z")
    HookPoint(layer=0, kind='attn_z')
    >>> parse_hook_name("mlp_out.2").name
    'blocks.2.hook_mlp_out'
    >>> parse_hook_name("z.1").name
    'blocks.1.attn.hook_z'

    Raises ValueError listing the supported forms.
    """
    text = name.strip() if isinstance(name, str) else ""
    if m := _CANONICAL.match(text):
        return HookPoint(int(m.group(1)), _SUFFIX_KIND[m.group(2)])
    if (m := _SHORTHAND.match(text)) and m.group(1) in _SHORT_KIND:
        return HookPoint(int(m.group(2)), _SHORT_KIND[m.group(1)])
    raise ValueError(f"unsupported hook name {name!r}; supported: {SUPPORTED_HOOK_FORMS}")


Where = Literal["input", "output"]


@dataclass(frozen=True)
class Family:
    """Where things live in one family of Hugging Face causal LMs (all paths are data).

    ``hooks`` maps a hook kind to (module path template with ``{L}``, "input" | "output").
    ``final_norm``/``unembed`` are used by logit facts; ``blocks`` by early stopping and
    layer counts. ``norm_weight_offset`` is 1.0 for Gemma, whose RMSNorm scales by ``1 + w``.
    """

    name: str
    model_types: tuple[str, ...]
    blocks: str
    hooks: Mapping[str, tuple[str, Where]]
    final_norm: str
    unembed: str
    norm_kind: Literal["layernorm", "rmsnorm"]
    norm_weight_offset: float = 0.0


def _table(block: str, attn: str, out_proj: str, mlp: str) -> dict[str, tuple[str, Where]]:
    return {
        "resid_pre": (block, "input"),
        "resid_post": (block, "output"),
        "attn_out": (attn, "output"),
        "mlp_out": (mlp, "output"),
        "attn_z": (out_proj, "input"),
    }


_LLAMA_TABLE = _table(
    "model.layers.{L}",
    "model.layers.{L}.self_attn",
    "model.layers.{L}.self_attn.o_proj",
    "model.layers.{L}.mlp",
)

FAMILIES: tuple[Family, ...] = (
    Family(
        name="gpt2",
        model_types=("gpt2",),
        blocks="transformer.h",
        hooks=_table(
            "transformer.h.{L}",
            "transformer.h.{L}.attn",
            "transformer.h.{L}.attn.c_proj",
            "transformer.h.{L}.mlp",
        ),
        final_norm="transformer.ln_f",
        unembed="lm_head",
        norm_kind="layernorm",
    ),
    Family(
        name="gpt_neox",
        model_types=("gpt_neox",),
        blocks="gpt_neox.layers",
        hooks=_table(
            "gpt_neox.layers.{L}",
            "gpt_neox.layers.{L}.attention",
            "gpt_neox.layers.{L}.attention.dense",
            "gpt_neox.layers.{L}.mlp",
        ),
        final_norm="gpt_neox.final_layer_norm",
        unembed="lm_head",
        norm_kind="layernorm",
    ),
    Family(
        name="llama",
        model_types=("llama", "mistral", "qwen2", "qwen3"),
        blocks="model.layers",
        hooks=_LLAMA_TABLE,
        final_norm="model.norm",
        unembed="lm_head",
        norm_kind="rmsnorm",
    ),
    Family(
        name="gemma",
        model_types=("gemma",),
        blocks="model.layers",
        hooks=_LLAMA_TABLE,
        final_norm="model.norm",
        unembed="lm_head",
        norm_kind="rmsnorm",
        norm_weight_offset=1.0,
    ),
    Family(
        # Post-norms: attn_out/mlp_out are taken after them, as TransformerLens does.
        name="gemma2",
        model_types=("gemma2",),
        blocks="model.layers",
        hooks={
            **_LLAMA_TABLE,
            "attn_out": ("model.layers.{L}.post_attention_layernorm", "output"),
            "mlp_out": ("model.layers.{L}.post_feedforward_layernorm", "output"),
        },
        final_norm="model.norm",
        unembed="lm_head",
        norm_kind="rmsnorm",
        norm_weight_offset=1.0,
    ),
)
FAMILY_BY_MODEL_TYPE: dict[str, Family] = {t: f for f in FAMILIES for t in f.model_types}


def _module(model: Any) -> nn.Module:
    """Accept a bare HF model or anything holding one in ``.model`` (a LoadedModel)."""
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module) and not isinstance(model, nn.Module):
        return inner
    if isinstance(model, nn.Module):
        return model
    raise TypeError(f"expected a torch model or a LoadedModel, got {type(model).__name__}")


def family_of(model: Any) -> Family:
    """The Family of a Hugging Face causal LM, by ``config.model_type``.

    Raises ValueError naming the supported model types.
    """
    model_type = getattr(getattr(_module(model), "config", None), "model_type", None)
    try:
        return FAMILY_BY_MODEL_TYPE[model_type]
    except KeyError:
        raise ValueError(
            f"unsupported architecture {model_type!r}; supported model types: "
            f"{', '.join(sorted(FAMILY_BY_MODEL_TYPE))}"
        ) from None


def blocks_of(model: Any) -> nn.ModuleList:
    """The list of transformer blocks."""
    return _module(model).get_submodule(family_of(model).blocks)


def n_layers_of(model: Any) -> int:
    return len(blocks_of(model))


def hook_width(model: Any, hook: str | HookPoint) -> int:
    """Width of the activation at a hook: d_model, or n_heads * d_head for attn_z."""
    point = hook if isinstance(hook, HookPoint) else parse_hook_name(hook)
    cfg = _module(model).config
    if point.kind != "attn_z":
        return int(cfg.hidden_size)
    n_heads = int(cfg.num_attention_heads)
    d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    return n_heads * int(d_head)


def resolve(model: Any, hook: str | HookPoint) -> tuple[nn.Module, Where, HookPoint]:
    """The module, "input"/"output" and HookPoint a hook name refers to in this model.

    Raises ValueError for an unknown name, an unsupported architecture, or a layer out of range.
    """
    point = hook if isinstance(hook, HookPoint) else parse_hook_name(hook)
    family = family_of(model)
    n_layers = n_layers_of(model)
    if point.layer >= n_layers:
        raise ValueError(
            f"hook {point.name} is not in the model: layer {point.layer} out of range, "
            f"the model has {n_layers} layers (0..{n_layers - 1})"
        )
    template, where = family.hooks[point.kind]
    return _module(model).get_submodule(template.format(L=point.layer)), where, point


ActFn = Callable[[Float[Tensor, "batch pos d"]], Tensor | None]


def _checked(x: Tensor, new: Tensor | None, hook: str) -> Tensor | None:
    if new is not None and new.shape != x.shape:
        raise ValueError(
            f"hook {hook}: replacement has shape {tuple(new.shape)}, expected {tuple(x.shape)}"
        )
    return new


@contextmanager
def intercept(model: Any, hook_name: str | HookPoint, fn: ActFn) -> Iterator[HookPoint]:
    """Call ``fn(x)`` on the activation at ``hook_name`` during every forward pass in the block.

    ``x`` is ``[batch, pos, d]`` (element 0 when the module returns a tuple; for attn_z the
    flattened ``n_heads * d_head`` input of the output projection). If ``fn`` returns a tensor
    of the same shape it replaces the activation downstream; ``None`` leaves it unchanged.
    The PyTorch handle is removed in ``finally``, also when the body or ``fn`` raises.
    Only forward passes on the thread that entered the block are intercepted: a worker may
    run an indexing pass and a steering decode loop on one resident model at once, and
    neither must see the other's hooks. Yields the resolved HookPoint. Raises ValueError for
    a hook the model does not have.
    """
    module, where, point = resolve(model, hook_name)
    name = point.name
    owner = threading.get_ident()

    if where == "output":

        def on_output(_mod: nn.Module, _args: Any, output: Any) -> Any:
            if threading.get_ident() != owner:
                return None
            if isinstance(output, tuple):
                new = _checked(output[0], fn(output[0]), name)
                return None if new is None else (new, *output[1:])
            return _checked(output, fn(output), name)

        handle = module.register_forward_hook(on_output)
    else:

        def on_input(_mod: nn.Module, args: tuple, kwargs: dict) -> Any:
            if threading.get_ident() != owner:
                return None
            # HF calls blocks with hidden_states positionally; accept the keyword form too.
            if args:
                new = _checked(args[0], fn(args[0]), name)
                return None if new is None else ((new, *args[1:]), kwargs)
            x = kwargs["hidden_states"]
            new = _checked(x, fn(x), name)
            return None if new is None else (args, {**kwargs, "hidden_states": new})

        handle = module.register_forward_pre_hook(on_input, with_kwargs=True)
    try:
        yield point
    finally:
        handle.remove()


def active_hook_count(model: Any) -> int:
    """Number of forward hooks and pre-hooks registered anywhere in the model (leak checks)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in _module(model).modules())


class StopForward(Exception):
    """Raised inside a hook to end a forward pass once the wanted activation is captured."""


def run_to_hook(
    lm: Any,
    input_ids: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"] | None,
    hook_name: str | HookPoint,
) -> Float[Tensor, "batch pos d"]:
    """Run the model only as far as ``hook_name`` and return the activation there.

    The forward pass is stopped by raising StopForward from the hook, so no later layer,
    final norm or unembedding runs. Runs under ``torch.no_grad()``.
    """
    (acts,) = run_to_hooks(lm, input_ids, attention_mask, [hook_name]).values()
    return acts


def run_to_hooks(
    lm: Any,
    input_ids: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"] | None,
    hook_names: Sequence[str | HookPoint],
) -> dict[str, Tensor]:
    """One forward pass that reads the activation at each of ``hook_names`` and stops once
    the last of them (in forward order, whatever the order given) is read.

    Returns {hook name as given: activation [batch, pos, d]} in the order given (d differs
    between kinds of hook, hence a plain Tensor in the annotation); a name given twice is read
    once. Runs under ``torch.no_grad()``; every hook is removed afterwards. Raises ValueError
    for no hooks or a hook the model does not have (before anything runs).
    """
    if not hook_names:
        raise ValueError("no hooks given")
    model = _module(lm)
    names = {(h if isinstance(h, str) else h.name): h for h in hook_names}
    captured: dict[str, Tensor] = {}

    def grab(name: str) -> ActFn:
        def fn(x: Tensor) -> None:
            captured.setdefault(name, x)
            if len(captured) == len(names):
                raise StopForward

        return fn

    with torch.no_grad(), ExitStack() as stack:
        for name, hook in names.items():
            stack.enter_context(intercept(model, hook, grab(name)))
        try:
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except StopForward:
            pass
    missing = [n for n in names if n not in captured]
    if missing:
        raise RuntimeError(f"hook(s) {', '.join(missing)} never reached during the forward pass")
    return {name: captured[name] for name in names}


def run_to_unembed(
    lm: Any,
    input_ids: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"] | None,
) -> Float[Tensor, "batch pos d_model"]:
    """The final hidden state (after the final norm: the unembedding's input), without the
    logits: callers that score a few positions at a time unembed them with
    :func:`logits_from_hidden` instead of holding ``batch × pos × vocab`` at once. Hooks
    entered on this thread (``intercept``) apply. Runs under ``torch.no_grad()``.
    """
    model = _module(lm)
    unembed = model.get_submodule(family_of(model).unembed)
    owner = threading.get_ident()
    captured: list[Tensor] = []

    def grab(_mod: nn.Module, args: tuple) -> None:
        if threading.get_ident() == owner:
            captured.append(args[0])
            raise StopForward

    handle = unembed.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the unembedding was never reached during the forward pass")
    return captured[0]


def logits_from_hidden(
    lm: Any, hidden: Float[Tensor, "*batch d_model"]
) -> Float[Tensor, "*batch vocab"]:
    """Logits of final hidden states, as the model's own forward computes them (the
    unembedding, then Gemma-2's final soft-capping when the config sets one)."""
    model = _module(lm)
    logits = model.get_submodule(family_of(model).unembed)(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits
