"""Reads for live steering: resolving a client request against the database, results, vectors,
and the steering page's configuration. Importable without torch."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.urls import reverse

from explorer.core.exceptions import NotFound
from explorer.saes import selectors as sae_selectors
from explorer.saes.models import SAE, Feature, LanguageModel
from explorer.steering import protocol
from explorer.steering.conf import Limits
from explorer.steering.models import SteeringResult, SteeringVector
from explorer.steering.protocol import ProtocolError, SteerMessage
from explorer.steering.streams import alternatives_fields
from workers.engine import specs


@dataclass(frozen=True)
class ResolvedSteer:
    """A steer message checked against the database and translated, once, into the engine's
    `SteerRequest` (the only form the worker receives and the only input of the cache key)."""

    model_slug: str
    sae_slug: str
    engine: specs.SteerRequest
    key: str

    def payload(self, run: str, *, client: str | None = None) -> dict[str, Any]:
        """The live task's argument: the run id, the engine request and the client's tag
        (`streams.client_tag`; the worker's scheduler takes turns between clients; not part
        of the request, so not of its cache key). Sources, not row ids: the worker loads the
        model and SAE from them and the result is stored by source, so a catalogue the
        consumer cached a few seconds ago is still right even if the rows were re-created
        meanwhile."""
        payload = {"run": run, "request": self.engine.to_dict()}
        if client is not None:
            payload["client"] = client
        return payload


def language_model_get(*, slug: str) -> LanguageModel:
    """Raises NotFound."""
    try:
        return LanguageModel.objects.defer("vocab").get(slug=slug)
    except LanguageModel.DoesNotExist:
        raise NotFound(f"No model {slug!r}.") from None


@dataclass(frozen=True)
class SAEInfo:
    id: int
    slug: str
    source: str
    d_sae: int


@dataclass(frozen=True)
class Catalogue:
    """What checking a steer request needs of a model and its SAEs (small; the consumer
    caches it for a few seconds so the common request needs no database round trip)."""

    model_id: int
    model_slug: str
    model_source: str
    saes: tuple[SAEInfo, ...]  # by layer, then slug: the first is the default
    chat: bool = False  # whether the model has a chat template (steering chats needs one)


@dataclass(frozen=True)
class VectorInfo:
    id: int
    model_id: int
    sae_slug: str
    status: str
    values: tuple[float, ...] | None  # None until it is built


def _saes(model: LanguageModel) -> list[SAE]:
    return list(SAE.objects.filter(model=model).order_by("layer", "slug"))


def steer_catalogue(*, model_slug: str | None) -> Catalogue:
    """The model `model_slug` (or the only registered model when None) and its SAEs.

    Raises ProtocolError for an unknown model, for None when there is not exactly one model,
    and for a model without SAEs.
    """
    if model_slug is not None:
        model = LanguageModel.objects.defer("vocab").filter(slug=model_slug).first()
        if model is None:
            raise ProtocolError(f"unknown model {model_slug!r:.60}")
    else:
        models = list(LanguageModel.objects.defer("vocab")[:2])
        if len(models) != 1:
            raise ProtocolError('say which model to steer: add "model" to the message')
        model = models[0]
    saes = tuple(
        SAEInfo(id=s.pk, slug=s.slug, source=s.source, d_sae=s.d_sae) for s in _saes(model)
    )
    if not saes:
        raise ProtocolError(f"model {model.slug!r} has no SAE to steer with")
    return Catalogue(
        model_id=model.pk,
        model_slug=model.slug,
        model_source=model.source,
        saes=saes,
        chat=model.has_chat_template,
    )


def vector_infos(*, ids: list[int]) -> dict[int, VectorInfo]:
    rows = SteeringVector.objects.filter(pk__in=ids).values_list(
        "pk", "sae__model_id", "sae__slug", "status", "vector"
    )
    return {
        pk: VectorInfo(id=pk, model_id=m, sae_slug=slug, status=st, values=tuple(v) if v else None)
        for pk, m, slug, st, v in rows
    }


def steer_request_build(
    *, message: SteerMessage, catalogue: Catalogue, vectors: dict[int, VectorInfo]
) -> ResolvedSteer:
    """Check the message's SAEs, feature indexes and vectors against `catalogue`/`vectors`
    (no database access) and translate it into the engine's request.

    Raises ProtocolError for an unknown SAE, feature or vector, a vector that is not ready or
    belongs to another model, and features from more than one SAE in one request (the engine
    steers at one SAE hook per request).
    """
    saes = {s.slug: s for s in catalogue.saes}
    used: set[str] = set()
    for f in message.features:
        sae = saes.get(f.sae)
        if sae is None:
            raise ProtocolError(f"unknown SAE {f.sae!r:.60} of model {catalogue.model_slug!r}")
        if f.index >= sae.d_sae:
            raise ProtocolError(
                f"unknown feature {f.sae}:{f.index}: this SAE has {sae.d_sae} "
                f"features (0..{sae.d_sae - 1})"
            )
        used.add(sae.slug)
    for t in message.vectors:
        vec = vectors.get(t.vector)
        if vec is None or vec.model_id != catalogue.model_id:
            raise ProtocolError(
                f"unknown steering vector {t.vector} for model {catalogue.model_slug!r}"
            )
        if vec.status != SteeringVector.Status.READY:
            raise ProtocolError(f"steering vector {t.vector} is {vec.status}, not ready")
        used.add(vec.sae_slug)
    if len(used) > 1:
        raise ProtocolError(
            "all features of one request must come from one SAE; got " + ", ".join(sorted(used))
        )
    sae = saes[used.pop()] if used else catalogue.saes[0]
    if message.messages is not None and not catalogue.chat:
        raise ProtocolError(
            f"model {catalogue.model_slug!r} has no chat template (its tokenizer defines "
            "none), so it cannot be steered in a chat: send a prompt instead"
        )
    interventions = [
        specs.Intervention(feature=f.index, strength=f.strength, mode=f.mode)
        for f in message.features
    ]
    interventions += [
        specs.Intervention(
            feature=t.vector, strength=t.strength, mode="vector", values=vectors[t.vector].values
        )
        for t in message.vectors
    ]
    try:
        engine = specs.SteerRequest(
            model=catalogue.model_source,
            sae=sae.source,
            prompt=message.prompt,
            messages=message.messages,
            steered_messages=message.steered_messages,
            spec=specs.SteerSpec(
                interventions=tuple(interventions),
                positions=message.positions,
                temperature=message.temperature,
                top_p=message.top_p,
                seed=message.seed,
                max_new_tokens=message.max_new_tokens,
            ),
        )
    except specs.SpecError as exc:
        raise ProtocolError(str(exc)) from None
    return ResolvedSteer(
        model_slug=catalogue.model_slug, sae_slug=sae.slug, engine=engine, key=engine.key()
    )


def steer_request_resolve(*, message: SteerMessage, model_slug: str | None) -> ResolvedSteer:
    """`steer_request_build` with the catalogue and vectors read from the database."""
    catalogue = steer_catalogue(model_slug=message.model or model_slug)
    vectors = vector_infos(ids=[t.vector for t in message.vectors]) if message.vectors else {}
    return steer_request_build(message=message, catalogue=catalogue, vectors=vectors)


def request_display(
    *, request: specs.SteerRequest, model_slug: str, sae_slug: str
) -> dict[str, Any]:
    """The form a SteeringResult keeps and pages show: slugs instead of sources, features as
    {sae, index, strength, mode} and vectors as {vector, strength} (their values stay in the
    vector's row), in the engine's canonical order."""
    spec = request.spec
    return {
        "model": model_slug,
        "sae": sae_slug,
        "prompt": request.prompt,
        "features": [
            {"sae": sae_slug, "index": i.feature, "strength": i.strength, "mode": i.mode}
            for i in spec.interventions
            if i.mode != "vector"
        ],
        "vectors": [
            {"vector": i.feature, "strength": i.strength}
            for i in spec.interventions
            if i.mode == "vector"
        ],
        "positions": spec.positions,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "seed": spec.seed,
        "max_new_tokens": spec.max_new_tokens,
        **_chat_display(request),
    }


def _chat_display(request: specs.SteerRequest) -> dict[str, Any]:
    """A chat's conversations (absent for a prompt, so stored prompt results keep their form)."""
    out: dict[str, Any] = {}
    if request.messages is not None:
        out["messages"] = [m.to_dict() for m in request.messages]
    if request.steered_messages is not None:
        out["steered_messages"] = [m.to_dict() for m in request.steered_messages]
    return out


def chat_initial(request: dict[str, Any]) -> dict[str, Any] | None:
    """The page's `chat` of a stored chat request: each column's history before the last user
    message (which is the page's prompt); None for a prompt."""
    messages = request.get("messages")
    if not messages:
        return None
    steered = request.get("steered_messages") or messages
    return {"default": messages[:-1], "steered": steered[:-1]}


def steering_result_find(*, key: str) -> SteeringResult | None:
    return SteeringResult.objects.filter(key=key).first()


def steering_result_get(*, result_id: str) -> SteeringResult:
    """Raises NotFound."""
    try:
        return SteeringResult.objects.select_related("model").get(pk=result_id)
    except SteeringResult.DoesNotExist:
        raise NotFound(f"No steering result {result_id!r}.") from None


def steering_vector_list(*, model_slug: str | None = None) -> QuerySet[SteeringVector]:
    qs = SteeringVector.objects.select_related("sae", "sae__model").defer("sae__model__vocab")
    if model_slug is not None:
        qs = qs.filter(sae__model__slug=model_slug)
    return qs


def aligned_labels(*, vectors: list[SteeringVector]) -> dict[tuple[int, int], str]:
    """{(sae id, index): best explanation} of the SAE features `vectors` align with (two
    queries for any number of vectors)."""
    from explorer.explanations.selectors import best_explanations

    wanted = {(v.sae_id, f["index"]) for v in vectors for f in v.features or []}
    if not wanted:
        return {}
    rows = Feature.objects.filter(
        sae_id__in={s for s, _ in wanted}, index__in={i for _, i in wanted}
    ).values_list("pk", "sae_id", "index")
    keys = {pk: (sae_id, index) for pk, sae_id, index in rows if (sae_id, index) in wanted}
    best = best_explanations(feature_ids=keys)
    return {keys[pk]: e.text for pk, e in best.items()}


@dataclass(frozen=True)
class VectorBuildJob:
    """What building a CAA vector needs: the sources to load and the contrast pairs."""

    model_source: str
    sae_source: str
    pairs: list[dict[str, str]]


def vector_build_job(*, vector_id: int) -> VectorBuildJob | None:
    """None when the vector is gone."""
    row = (
        SteeringVector.objects.filter(pk=vector_id)
        .values_list("sae__model__source", "sae__source", "pairs")
        .first()
    )
    return VectorBuildJob(*row) if row is not None else None


def steering_vector_get(*, vector_id: int) -> SteeringVector:
    """Raises NotFound."""
    try:
        return steering_vector_list().get(pk=vector_id)
    except SteeringVector.DoesNotExist:
        raise NotFound(f"No steering vector {vector_id}.") from None


# --------------------------------------------------------------------------- the page


def result_dict(result: SteeringResult) -> dict[str, Any]:
    """The `result` of the page config and of the API."""
    return {
        "id": result.pk,
        "url": reverse("steering:permalink", args=[result.pk]),
        "request": result.request,
        "default_text": result.default_text,
        "steered_text": result.steered_text,
        "default_tokens": sae_selectors.token_strings(
            model_id=result.model_id, ids=result.default_tokens
        ),
        "steered_tokens": sae_selectors.token_strings(
            model_id=result.model_id, ids=result.steered_tokens
        ),
        "default_token_ids": list(result.default_tokens),
        "steered_token_ids": list(result.steered_tokens),
        **{
            f"{row}_{k}": v
            for row in ("default", "steered")
            for k, v in alternatives_fields(
                (result.alternatives or {}).get(row),
                lambda ids: sae_selectors.token_strings(model_id=result.model_id, ids=ids),
            ).items()
        },
        "engine_version": result.engine_version,
        "created": result.created.isoformat(),
    }


def result_frames(result: SteeringResult) -> list[dict[str, Any]]:
    """A stored result as the frames of a finished run: each row's whole text as one delta,
    then `done` per row (what the consumer replays on a cache hit)."""
    d = result_dict(result)
    frames: list[dict[str, Any]] = []
    for row in ("default", "steered"):
        if d[f"{row}_text"]:
            frames.append(
                {"type": "delta", "row": row, "seq": len(frames) + 1, "text": d[f"{row}_text"]}
            )
    for row in ("default", "steered"):
        frames.append(
            {
                "type": "done",
                "row": row,
                "seq": len(frames) + 1,
                "text": d[f"{row}_text"],
                "tokens": d[f"{row}_tokens"],
                "token_ids": d[f"{row}_token_ids"],
                "result": result.pk,
                **{k: d[f"{row}_{k}"] for k in ("probs", "alternatives") if f"{row}_{k}" in d},
            }
        )
    return frames


def _feature_facts(sae: SAE | None, index: int) -> tuple[float | None, str]:
    """(max activation, best explanation) of a feature, when it is indexed."""
    if sae is None:
        return None, ""
    feature = Feature.objects.filter(sae=sae, index=index).only("id", "max_activation").first()
    if feature is None:
        return None, ""
    from explorer.explanations.models import Explanation

    best = Explanation.objects.filter(feature=feature).order_by("-score", "-created").first()
    return feature.max_activation, best.text if best else ""


def _initial_features(model: LanguageModel, terms: list[dict]) -> list[dict]:
    saes = {s.slug: s for s in _saes(model)}
    out = []
    for t in terms:
        if "vector" in t:
            vec = SteeringVector.objects.select_related("sae").filter(pk=t["vector"]).first()
            out.append(
                {
                    "sae": vec.sae.slug if vec else "",  # where it steers (the panel's SAE)
                    "index": -1,
                    "vector": t["vector"],
                    "strength": t["strength"],
                    "mode": "add",
                    "label": vec.label if vec else "",
                    "max_activation": None,
                }
            )
            continue
        mx, label = _feature_facts(saes.get(t["sae"]), t["index"])
        out.append({**t, "max_activation": mx, "label": label})
    return out


def initial_from_query(*, model: LanguageModel, params: Any, limits: Limits) -> dict[str, Any]:
    """The page's `initial` from its query string (`steer_query_read` without its notices)."""
    return steer_query_read(model=model, params=params, limits=limits)[0]


def steer_query_read(
    *, model: LanguageModel, params: Any, limits: Limits
) -> tuple[dict[str, Any], list[str]]:
    """(the page's `initial`, notices) from its query string (see views.steer_page for the
    format).

    Bad parts are dropped rather than refused, so a hand-edited or outdated link still opens
    the page; each dropped feature or vector gets a notice saying why (the page shows them).
    Out-of-range settings fall back to their defaults silently.
    """
    saes = {s.slug: s for s in _saes(model)}
    notices: list[str] = []
    raw_features, raw_vectors = params.getlist("f"), params.getlist("v")
    features: list[dict] = []
    for raw in raw_features:
        term, notice = _feature_term(raw, model.slug, saes, limits)
        if notice:
            notices.append(notice)
        if term is not None:
            features.append(term)
    vectors = _vector_terms(raw_vectors, model, notices)
    terms = features + vectors
    if len(terms) > limits.max_features:
        notices.append(
            f"Left out {len(terms) - limits.max_features} of {len(terms)} features: "
            f"at most {limits.max_features} are steered at once."
        )
        terms = terms[: limits.max_features]

    def number(name: str, default: Any, cast, low, high):
        try:
            value = cast(params.get(name, default))
        except (TypeError, ValueError):
            return default
        return value if low <= value <= high and (cast is int or math.isfinite(value)) else default

    positions = params.get("pos", protocol.DEFAULTS["positions"])
    chat = model.has_chat_template and params.get("chat") == "1"
    if positions == "assistant" and not chat:
        positions = protocol.DEFAULTS["positions"]
    initial = {
        "prompt": params.get("prompt", "")[: limits.max_prompt_chars],
        "chat": {"default": [], "steered": []} if chat else None,
        "sae": next(iter(saes), None),
        "features": _initial_features(model, terms),
        "positions": positions
        if positions in protocol.POSITIONS
        else protocol.DEFAULTS["positions"],
        "temperature": number("t", protocol.DEFAULTS["temperature"], float, 0.0, 5.0),
        "top_p": number("p", protocol.DEFAULTS["top_p"], float, 1e-6, 1.0),
        "seed": number("seed", protocol.DEFAULTS["seed"], int, 0, protocol.MAX_SEED),
        "max_new_tokens": number(
            "n",
            min(protocol.DEFAULTS["max_new_tokens"], limits.max_new_tokens),
            int,
            1,
            limits.max_new_tokens,
        ),
    }
    return initial, notices


def _feature_term(
    raw: str, model_slug: str, saes: dict[str, SAE], limits: Limits
) -> tuple[dict[str, Any] | None, str | None]:
    """One `f=sae:index:strength[:mode]` as a term, or None and why it was left out. A
    strength past the limit is clamped, with a notice."""
    parts = raw.split(":")
    if len(parts) not in (3, 4):
        return None, f"Left out “f={raw:.80}”: write a feature as sae:index:strength[:mode]."
    sae = saes.get(parts[0])
    if sae is None:
        known = ", ".join(saes) or "none"
        return None, (
            f"Left out feature {parts[0]:.60}#{parts[1]:.12}: {model_slug} has no SAE "
            f"“{parts[0]:.60}” (its SAEs: {known})."
        )
    try:
        index, strength = int(parts[1]), float(parts[2])
    except ValueError:
        return None, f"Left out “f={raw:.80}”: the index and the strength must be numbers."
    mode = parts[3] if len(parts) == 4 else "add"
    name = f"{sae.slug}#{index}"
    if not 0 <= index < sae.d_sae:
        return None, (
            f"Left out feature {name}: {sae.slug} has {sae.d_sae} features (0–{sae.d_sae - 1})."
        )
    if mode not in protocol.MODES:
        modes = ", ".join(protocol.MODES)
        return None, f"Left out feature {name}: its mode must be one of {modes}."
    if not math.isfinite(strength):
        return None, f"Left out feature {name}: its strength must be a finite number."
    clamped = max(-limits.strength_max, min(limits.strength_max, strength))
    notice = None
    if clamped != strength:
        notice = f"The strength of {name} is limited to ±{limits.strength_max:g}."
    return {"sae": sae.slug, "index": index, "strength": clamped, "mode": mode}, notice


def _vector_terms(raws: list[str], model: LanguageModel, notices: list[str]) -> list[dict]:
    """The `v=<id>:<strength>` terms that name a steering vector of `model`; a notice for each
    other one."""
    parsed: list[tuple[str, int, float]] = []
    for raw in raws:
        parts = raw.split(":")
        try:
            vector, strength = int(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            notices.append(f"Left out “v={raw:.80}”: write a steering vector as id:strength.")
            continue
        if len(parts) != 2 or not math.isfinite(strength):
            notices.append(f"Left out “v={raw:.80}”: write a steering vector as id:strength.")
            continue
        parsed.append((raw, vector, strength))
    known = set(
        SteeringVector.objects.filter(
            pk__in=[v for _, v, _ in parsed], sae__model=model
        ).values_list("pk", flat=True)
    )
    terms = []
    for _, vector, strength in parsed:
        if vector in known:
            terms.append({"vector": vector, "strength": strength})
        else:
            notices.append(f"Left out steering vector {vector}: {model.slug} has no such vector.")
    return terms


def initial_from_result(*, model: LanguageModel, result: SteeringResult) -> dict[str, Any]:
    r = result.request
    terms = [*r.get("features", []), *r.get("vectors", [])]
    chat = chat_initial(r)
    return {
        "prompt": r["messages"][-1]["content"] if chat is not None else r["prompt"],
        "chat": chat,
        "sae": r.get("sae"),
        "features": _initial_features(model, terms),
        "positions": r["positions"],
        "temperature": r["temperature"],
        "top_p": r["top_p"],
        "seed": r["seed"],
        "max_new_tokens": r["max_new_tokens"],
    }


FEATURE_PANEL_PROMPT = "In the"  # when a feature has no usable example: a neutral start
# "Steer with this feature" steers at this multiple of the feature's max activation, the one
# the add box of the steering page uses. Measured on the demo model (30 random live features,
# each continuing the 24 tokens before its strongest activation in 300 corpus snippets, seed
# 0, temperature 0.7, 24 new tokens): at 1× 27 of 30 continuations changed, the first changed
# token 7.3 tokens in on average; at 2× all 30, from token 3.7; at 4× all 30, from token 2.3,
# with 76% of the positions different: the change shows at once.
FEATURE_STEER_FACTOR = 4.0
FEATURE_LEAD_IN_TOKENS = 24  # how much of the example before its peak the prompt keeps
_SPECIAL_TOKEN = re.compile(r"^(<\|[^|]*\|>|</?s>|<bos>|<eos>|<pad>)$")


@dataclass(frozen=True)
class FeatureSteerStart:
    """How "Steer with this feature" opens the steering panel: a prompt leading up to where
    the feature fires, and a strength that visibly changes the continuation."""

    prompt: str
    strength: float


def feature_steer_start(
    *,
    max_activation: float,
    example_tokens: Sequence[str] | None = None,
    max_position: int | None = None,
    limits: Limits,
) -> FeatureSteerStart:
    """The panel's start for a feature whose strongest example is `example_tokens` peaking at
    `max_position` (None: no example). The prompt is the example's text before the peak token
    (at most FEATURE_LEAD_IN_TOKENS tokens, from a line or word start, special tokens left
    out), or FEATURE_PANEL_PROMPT when that is empty; the strength is FEATURE_STEER_FACTOR ×
    `max_activation` (1.0 for a feature never seen active), within the strength limit."""
    lead_in = ""
    if example_tokens is not None and max_position is not None and max_position > 0:
        lead_in = _lead_in(list(example_tokens[:max_position]))[-limits.max_prompt_chars :]
    raw = FEATURE_STEER_FACTOR * max_activation if max_activation > 0 else 1.0
    strength = float(f"{min(raw, limits.strength_max):.3g}")
    return FeatureSteerStart(prompt=lead_in or FEATURE_PANEL_PROMPT, strength=strength)


def _lead_in(tokens: list[str]) -> str:
    """The last FEATURE_LEAD_IN_TOKENS of `tokens` as text: after the last special token, from
    the last line start when enough text follows it, else from a word start."""
    specials = [i for i, t in enumerate(tokens) if _SPECIAL_TOKEN.match(t)]
    if specials:
        tokens = tokens[specials[-1] + 1 :]
    cut = len(tokens) > FEATURE_LEAD_IN_TOKENS
    tokens = tokens[-FEATURE_LEAD_IN_TOKENS:]
    text = "".join(tokens)
    line = text.rfind("\n", 0, max(0, len(text) - 12))
    if line >= 0:
        return text[line + 1 :].strip()
    if cut:  # the window starts inside a word: start at the next one
        for i, t in enumerate(tokens):
            if t[:1].isspace():
                return "".join(tokens[i:]).strip()
    return text.strip()


def feature_steer_url(
    *, model_slug: str, sae_slug: str, index: int, start: FeatureSteerStart
) -> str:
    """The steering page opened on one feature (it generates at once)."""
    query = urlencode({"prompt": start.prompt, "f": f"{sae_slug}:{index}:{start.strength:g}"})
    return f"/{model_slug}/steer/?{query}"


def feature_panel_config(
    *,
    sae: SAE,
    index: int,
    max_activation: float,
    label: str,
    limits: Limits,
    start: FeatureSteerStart | None = None,
) -> dict[str, Any]:
    """`steer_config` of the live panel on a feature page: that feature steered as `start`
    says (default: `feature_steer_start` without an example), the default settings. Reads
    nothing from the database (the page has the rows)."""
    if start is None:
        start = feature_steer_start(max_activation=max_activation, limits=limits)
    d = protocol.DEFAULTS
    initial = {
        "prompt": start.prompt,
        "sae": sae.slug,
        "features": [
            {
                "sae": sae.slug,
                "index": index,
                "strength": start.strength,
                "mode": "add",
                "max_activation": max_activation or None,
                "label": label,
            }
        ],
        "positions": d["positions"],
        "temperature": d["temperature"],
        "top_p": d["top_p"],
        "seed": d["seed"],
        "max_new_tokens": min(d["max_new_tokens"], limits.max_new_tokens),
    }
    return {
        "model": sae.model.slug,
        "chat": False,
        "ws_path": "/ws/steer/",
        "saes": [{"slug": sae.slug, "d_sae": sae.d_sae, "hook_name": sae.hook_name}],
        "limits": limits.to_page(),
        "initial": initial,
        "result": None,
    }


def steer_page_config(
    *,
    model: LanguageModel,
    initial: dict[str, Any],
    limits: Limits,
    result: SteeringResult | None = None,
    notices: list[str] | None = None,
    signed_in: bool = False,
) -> dict[str, Any]:
    """The `steer_config` of steering/steer.html (the contract in explorer/steering/README.md).
    `notices`: what the page says about its link (parts left out); `signed_in`: whether the
    reader may create steering vectors (the CAA form says how to sign in otherwise)."""
    return {
        "model": model.slug,
        "chat": model.has_chat_template,  # whether the page offers chat mode
        "ws_path": "/ws/steer/",
        "saes": [
            {"slug": s.slug, "d_sae": s.d_sae, "hook_name": s.hook_name} for s in _saes(model)
        ],
        "limits": limits.to_page(),
        "initial": initial,
        "result": result_dict(result) if result is not None else None,
        "notices": list(notices or []),
        "signed_in": signed_in,
    }
