"""Registering a (model, SAE) pair: load both with the engine, check that the SAE fits the model,
then store what was read through explorer.saes.services (`manage.py add_sae`, the demo's first
start).

The engine (torch, transformers, sae-lens) is imported inside functions: the command's module
is imported to list commands and parse arguments, which needs no model.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from explorer.saes import services
from explorer.saes.services import ModelFields, Registration, RegistrationError, SAEFields

if TYPE_CHECKING:
    from workers.engine.loading import AttachedSAE, LoadedModel


def sae_register_from_specs(
    *, model_spec: str, sae_spec: str, slug: str | None = None, model_slug: str | None = None
) -> Registration:
    """Register a model (once per source) and an SAE on it, after checking that they fit.

    Loads both on the CPU and attaches the SAE (hook exists, d_in equals the hook's width,
    1-token dry run) before anything is written. Registering an SAE that is already registered
    (same model and SAE source) changes nothing and returns created=False, without loading
    anything.

    Raises RegistrationError for an unknown or unloadable spec, a model/SAE mismatch (the
    message names both widths), or a slug already used by another model or SAE.
    """
    plan = services.sae_registration_plan(
        model_spec=model_spec, sae_spec=sae_spec, slug=slug, model_slug=model_slug
    )
    if plan.existing is not None:
        return Registration(sae=plan.existing, created=False, model_created=False)

    from workers.engine.loading import attach_sae, load_model, load_sae

    try:
        lm = load_model(plan.model_source, device="cpu")
    except (OSError, ValueError, KeyError) as e:
        raise RegistrationError(f"Could not load model {model_spec!r}: {e}") from None
    try:
        sae = load_sae(plan.sae_source, device="cpu")
    except (OSError, ValueError, KeyError) as e:
        raise RegistrationError(f"Could not load SAE {sae_spec!r}: {e}") from None
    try:
        attached = attach_sae(lm, sae)
    except ValueError as e:
        raise RegistrationError(str(e), code="sae_mismatch") from None
    return services.sae_register(
        model_source=plan.model_source,
        sae_source=plan.sae_source,
        model_fields=model_fields(lm),
        sae_fields=sae_fields(attached, plan.sae_source),
        vocab=lm.vocab_strings(),
        slug=slug,
        model_slug=model_slug,
    )


def model_fields(lm: LoadedModel) -> ModelFields:
    """What is stored of a loaded model."""
    config = lm.model.config
    return ModelFields(
        architecture=str(config.model_type),
        d_model=lm.d_model,
        n_layers=lm.n_layers,
        n_ctx=lm.n_ctx,
        revision=str(getattr(config, "_commit_hash", None) or ""),
        chat_template=_chat_template(lm.tokenizer),
    )


def _chat_template(tokenizer: object) -> str:
    """The tokenizer's chat template; of several named ones, the default."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), "")
    return template if isinstance(template, str) else ""


def sae_fields(attached: AttachedSAE, sae_source: str) -> SAEFields:
    """What is stored of an SAE attached to its model; `sae_source` in stored form."""
    cfg, pre = attached.sae.cfg, attached.preprocessing
    metadata = cfg.metadata.to_dict()
    provenance = {"spec": sae_source, **{k: v for k, v in metadata.items() if _jsonable(v)}}
    return SAEFields(
        hook_name=attached.hook_name,
        layer=attached.hook.layer,
        d_in=attached.d_in,
        d_sae=attached.d_sae,
        architecture=str(cfg.architecture()),
        preprocessing={
            "prepend_bos": pre.prepend_bos,
            "centre": pre.center_residual,
            "normalisation": pre.normalize_activations,
        },
        provenance=provenance,
    )


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
