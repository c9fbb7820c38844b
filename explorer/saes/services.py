"""Writes for models and SAEs: registering a (model, SAE) pair.

Loading the pair to check that it fits needs the engine (torch), which the web process never
imports (DESIGN.md §2): `manage.py add_sae` (workers/registration.py) loads it and hands the
facts it read to `sae_register`. Checking specs and slugs needs no model: `sae_registration_plan`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from django.db import transaction
from django.utils.text import slugify

from explorer.core.exceptions import ApplicationError
from explorer.saes import selectors as sae_selectors
from explorer.saes.models import SAE, LanguageModel

log = logging.getLogger(__name__)

DEMO_SPEC = "demo"  # the engine's name for its committed demo model and SAE
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
        raise RegistrationError(
            "The model spec is empty: use 'demo', a local directory or a hub id."
        )
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
        raise RegistrationError(
            "The SAE spec is empty: use 'demo', a SAELens folder or 'release:sae_id'."
        )
    if spec == DEMO_SPEC:
        return spec
    path = Path(spec).expanduser()
    if path.exists():
        if not (path.is_dir() and (path / "cfg.json").is_file()):
            raise RegistrationError(
                f"SAE path {str(path.resolve())!r} is not a SAELens folder "
                "(cfg.json + sae_weights.safetensors)."
            )
        return str(path.resolve())
    if _looks_like_path(spec) or ":" not in spec:
        raise RegistrationError(
            f"SAE spec {spec!r} is neither 'demo', an existing SAELens folder "
            "nor 'release:sae_id' (no such path)."
        )
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
    """Token strings as the vocab column stores them (NUL as NUL_STANDIN)."""
    return [s.replace("\x00", NUL_STANDIN) for s in strings]


@dataclass(frozen=True)
class RegistrationPlan:
    """A registration request checked without loading anything."""

    model_source: str  # stored form (model_source())
    sae_source: str  # stored form (sae_source())
    existing: SAE | None  # the SAE when it is already registered: nothing to load or write


def _check_slugs(*, slug: str | None, model_slug: str | None) -> None:
    if slug is not None and slugify(slug) != slug:
        raise RegistrationError(f"SAE slug {slug!r} is not a slug (letters, digits, - and _).")
    if model_slug is not None and slugify(model_slug) != model_slug:
        raise RegistrationError(
            f"Model slug {model_slug!r} is not a slug (letters, digits, - and _)."
        )


def sae_registration_plan(
    *, model_spec: str, sae_spec: str, slug: str | None = None, model_slug: str | None = None
) -> RegistrationPlan:
    """The stored sources of a (model, SAE) pair and the SAE if it is already registered, so a
    caller loads the model and SAE only for a new pair.

    Raises RegistrationError for an unknown spec or a slug that is not a slug.
    """
    model_src, sae_src = model_source(model_spec), sae_source(sae_spec)
    _check_slugs(slug=slug, model_slug=model_slug)
    return RegistrationPlan(
        model_source=model_src,
        sae_source=sae_src,
        existing=sae_selectors.sae_find(model_source=model_src, sae_source=sae_src),
    )


class ModelFields(TypedDict):
    """What registration stores of a model, read from the loaded model."""

    architecture: str  # HF model_type
    d_model: int
    n_layers: int
    n_ctx: int
    revision: str  # hub commit hash; "" for local models
    chat_template: str  # the tokenizer's Jinja chat template; "" when it has none


class SAEFields(TypedDict):
    """What registration stores of an SAE, read from the SAE attached to its model."""

    hook_name: str
    layer: int
    d_in: int
    d_sae: int
    architecture: str
    preprocessing: dict[str, bool | str]  # {"prepend_bos", "centre", "normalisation"}
    provenance: dict[str, object]  # JSON values: the SAELens metadata and the spec


def sae_register(
    *,
    model_source: str,
    sae_source: str,
    model_fields: ModelFields,
    sae_fields: SAEFields,
    vocab: list[str],
    slug: str | None = None,
    model_slug: str | None = None,
) -> Registration:
    """Write a model (once per source) and an SAE on it, in one transaction, from facts the
    caller read from the loaded pair after checking that they fit (workers/registration.py).
    `vocab[i]` is token i decoded on its own. Sources are in stored form (model_source(),
    sae_source()). An SAE already registered (same model and SAE source) is returned with
    created=False and nothing changes.

    Raises RegistrationError for a slug that is not a slug or is already used by another
    model or SAE.
    """
    _check_slugs(slug=slug, model_slug=model_slug)
    with transaction.atomic():
        lm_row = LanguageModel.objects.select_for_update().filter(source=model_source).first()
        model_created = lm_row is None
        if lm_row is None:
            taken = set(LanguageModel.objects.values_list("slug", flat=True))
            if model_slug is not None and model_slug in taken:
                raise RegistrationError(
                    f"Model slug {model_slug!r} is already used by another model."
                )
            lm_row = LanguageModel.objects.create(
                slug=model_slug or _free_slug(_default_slug(model_source), taken),
                source=model_source,
                vocab=vocab_for_storage(vocab),
                **model_fields,
            )
        elif lm_row.chat_template != model_fields.get("chat_template", lm_row.chat_template):
            lm_row.chat_template = model_fields["chat_template"]  # read afresh from the files
            lm_row.save(update_fields=["chat_template"])
        if not model_created and model_slug is not None and model_slug != lm_row.slug:
            log.info(
                "model %s is registered as %r; --model-slug %r ignored",
                model_source,
                lm_row.slug,
                model_slug,
            )
        row = SAE.objects.filter(model=lm_row, source=sae_source).first()
        if row is not None:  # registered concurrently since the caller's plan
            return Registration(sae=row, created=False, model_created=False)
        taken = set(SAE.objects.filter(model=lm_row).values_list("slug", flat=True))
        if slug is not None and slug in taken:
            raise RegistrationError(f"SAE slug {slug!r} is already used on model {lm_row.slug!r}.")
        row = SAE.objects.create(
            model=lm_row,
            slug=slug or _free_slug(_default_slug(sae_source), taken),
            source=sae_source,
            **sae_fields,
        )
    return Registration(sae=row, created=True, model_created=model_created)
