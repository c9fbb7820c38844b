"""Writes for models and SAEs: registering a (model, SAE) pair.

The engine (torch, transformers, sae-lens) is imported inside `sae_register` only: this
module is imported by the web process, which must never import torch (DESIGN.md §2).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.text import slugify

from explorer.core.exceptions import ApplicationError
from explorer.saes.models import SAE, LanguageModel

log = logging.getLogger(__name__)

DEMO_SPEC = "demo"  # same value as workers.engine.constants.DEMO_SPEC, without importing torch
NUL_STANDIN = "\u2400"  # "␀": PostgreSQL text cannot store U+0000


class RegistrationError(ApplicationError):
    code = "sae_registration_failed"


@dataclass(frozen=True)
class Registration:
    sae: SAE
    created: bool  # False: this SAE was already registered and nothing changed
    model_created: bool


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~")) or spec.endswith("/")


def model_source(spec: str) -> str:
    """The stored form of a model spec: "demo", an absolute directory, or a hub id.

    Raises RegistrationError for an empty spec or a path that does not exist.
    """
    spec = (spec or "").strip()
    if not spec:
        raise RegistrationError("The model spec is empty: use 'demo', a local directory or a hub id.")
    if spec == DEMO_SPEC:
        return spec
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise RegistrationError(f"Model directory {str(path.resolve())!r} has no config.json.")
        return str(path.resolve())
    if _looks_like_path(spec):
        raise RegistrationError(f"Model path {spec!r} does not exist.")
    return spec


def sae_source(spec: str) -> str:
    """The stored form of an SAE spec: "demo", an absolute SAELens folder, or "release:sae_id".

    Raises RegistrationError for an empty spec, a missing folder or a spec of no known form.
    """
    spec = (spec or "").strip()
    if not spec:
        raise RegistrationError("The SAE spec is empty: use 'demo', a SAELens folder or 'release:sae_id'.")
    if spec == DEMO_SPEC:
        return spec
    path = Path(spec).expanduser()
    if path.exists():
        if not (path.is_dir() and (path / "cfg.json").is_file()):
            raise RegistrationError(f"SAE path {str(path.resolve())!r} is not a SAELens folder "
                                    "(cfg.json + sae_weights.safetensors).")
        return str(path.resolve())
    if _looks_like_path(spec) or ":" not in spec:
        raise RegistrationError(f"SAE spec {spec!r} is neither 'demo', an existing SAELens folder "
                                "nor 'release:sae_id' (no such path).")
    return spec


def _default_slug(source: str) -> str:
    if source == DEMO_SPEC:
        return DEMO_SPEC
    if source.startswith("/"):
        source = Path(source).name
    elif ":" in source:  # release:sae_id -> the sae_id is what tells SAEs of a release apart
        source = source.split(":", 1)[1]
    return slugify(re.sub(r"[./:_]+", "-", source))[:90] or "x"


def _free_slug(base: str, taken: set[str]) -> str:
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def vocab_for_storage(strings: list[str]) -> list[str]:
    return [s.replace("\x00", NUL_STANDIN) for s in strings]


def _existing(model_src: str, sae_src: str) -> SAE | None:
    return SAE.objects.select_related("model").filter(model__source=model_src, source=sae_src).first()


def sae_register(*, model_spec: str, sae_spec: str, slug: str | None = None,
                 model_slug: str | None = None) -> Registration:
    """Register a model (once per source) and an SAE on it, after checking that they fit.

    Loads both with the engine and attaches the SAE (hook exists, d_in equals the hook's
    width, 1-token dry run) before writing anything; every write happens in one transaction.
    Registering an SAE that is already registered (same model and SAE source) changes nothing
    and returns created=False, without loading anything.

    Raises RegistrationError for an unknown or unloadable spec, a model/SAE mismatch (the
    message names both widths), or a slug already used by another model or SAE.
    """
    model_src, sae_src = model_source(model_spec), sae_source(sae_spec)
    if slug is not None and slugify(slug) != slug:
        raise RegistrationError(f"SAE slug {slug!r} is not a slug (letters, digits, - and _).")
    if model_slug is not None and slugify(model_slug) != model_slug:
        raise RegistrationError(f"Model slug {model_slug!r} is not a slug (letters, digits, - and _).")
    existing = _existing(model_src, sae_src)
    if existing is not None:
        return Registration(sae=existing, created=False, model_created=False)

    # Heavy imports here only: see the module docstring.
    from workers.engine.loading import attach_sae, load_model, load_sae

    try:
        lm = load_model(model_src, device="cpu")
    except (OSError, ValueError, KeyError) as e:
        raise RegistrationError(f"Could not load model {model_spec!r}: {e}") from None
    try:
        sae = load_sae(sae_src, device="cpu")
    except (OSError, ValueError, KeyError) as e:
        raise RegistrationError(f"Could not load SAE {sae_spec!r}: {e}") from None
    try:
        attached = attach_sae(lm, sae)
    except ValueError as e:
        raise RegistrationError(str(e), code="sae_mismatch") from None

    model_fields = _model_fields(lm)
    sae_fields = _sae_fields(attached, sae_src)
    vocab = vocab_for_storage(lm.vocab_strings())

    with transaction.atomic():
        lm_row = LanguageModel.objects.select_for_update().filter(source=model_src).first()
        model_created = lm_row is None
        if lm_row is None:
            taken = set(LanguageModel.objects.values_list("slug", flat=True))
            if model_slug is not None and model_slug in taken:
                raise RegistrationError(f"Model slug {model_slug!r} is already used by another model.")
            lm_row = LanguageModel.objects.create(
                slug=model_slug or _free_slug(_default_slug(model_src), taken),
                source=model_src, vocab=vocab, **model_fields)
        elif model_slug is not None and model_slug != lm_row.slug:
            log.info("model %s is registered as %r; --model-slug %r ignored",
                     model_src, lm_row.slug, model_slug)
        row = SAE.objects.filter(model=lm_row, source=sae_src).first()
        if row is not None:  # registered concurrently since the check above
            return Registration(sae=row, created=False, model_created=False)
        taken = set(SAE.objects.filter(model=lm_row).values_list("slug", flat=True))
        if slug is not None and slug in taken:
            raise RegistrationError(f"SAE slug {slug!r} is already used on model {lm_row.slug!r}.")
        row = SAE.objects.create(model=lm_row, slug=slug or _free_slug(_default_slug(sae_src), taken),
                                 source=sae_src, **sae_fields)
    return Registration(sae=row, created=True, model_created=model_created)


def _model_fields(lm: Any) -> dict[str, Any]:
    config = lm.model.config
    return {
        "architecture": str(config.model_type),
        "d_model": lm.d_model,
        "n_layers": lm.n_layers,
        "n_ctx": lm.n_ctx,
        "revision": str(getattr(config, "_commit_hash", None) or ""),
    }


def _sae_fields(attached: Any, sae_src: str) -> dict[str, Any]:
    cfg, pre = attached.sae.cfg, attached.preprocessing
    metadata = cfg.metadata.to_dict()
    provenance = {"spec": sae_src, **{k: v for k, v in metadata.items() if _jsonable(v)}}
    return {
        "hook_name": attached.hook_name,
        "layer": attached.hook.layer,
        "d_in": attached.d_in,
        "d_sae": attached.d_sae,
        "architecture": str(cfg.architecture()),
        "preprocessing": {"prepend_bos": pre.prepend_bos, "centre": pre.center_residual,
                          "normalisation": pre.normalize_activations},
        "provenance": provenance,
    }


def _jsonable(value: Any) -> bool:
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
