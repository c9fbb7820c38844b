"""The browser's pages: a model, an SAE (table + map), a feature (and its embed).

Thin: parse the URL, call selectors, render. Unknown models, SAEs and features get a 404
page that says what was not found (`browser/not_found.html`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_safe

from explorer.activations import services as activation_services
from explorer.activations.services import test_text_max_chars
from explorer.browser import selectors
from explorer.browser.tokens import CONTEXT_WIDTHS, DEFAULT_CONTEXT
from explorer.core.exceptions import NotFound
from explorer.explanations import services as explanation_services
from explorer.explanations.selectors import my_votes
from explorer.lists.selectors import feature_list_visible
from explorer.saes import selectors as sae_selectors
from explorer.steering import selectors as steering_selectors
from explorer.steering.conf import limits as steering_limits
from workers.engine.explain import percent as density_percent

EMBED_PARTS = ("explanation", "plots", "examples", "test", "steer")
EMBED_DEFAULTS = {
    "explanation": True,
    "plots": True,
    "examples": True,
    "test": False,
    "steer": False,
}


def not_found(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "browser/not_found.html", {"message": message}, status=404)


class BadParameter(Exception):
    """A query parameter a page does not take (friendly_404 renders it as the 400 page)."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name, self.message = name, message


def bad_parameter(request: HttpRequest, name: str, message: str) -> HttpResponse:
    """The 400 page for a query parameter's value the page does not take, with a link to the
    page without it."""
    params = request.GET.copy()
    params.pop(name, None)
    query = params.urlencode()
    return render(
        request,
        "400.html",
        {
            "message": message,
            "retry_url": request.path + (f"?{query}" if query else ""),
            "retry_label": f"Open the page without {name}",
        },
        status=400,
    )


def _choice(
    request: HttpRequest, name: str, choices: tuple[str, ...], default: str | None
) -> str | None:
    """The `name` parameter when it is one of `choices` (absent or empty: `default`); raises
    BadParameter naming it otherwise."""
    value = request.GET.get(name)
    if not value:
        return default
    if value not in choices:
        raise BadParameter(name, f"{name} must be one of {', '.join(choices)}; got {value!r:.40}.")
    return value


def friendly_404(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Render NotFound from a selector as the browser's 404 page with its message, and
    BadParameter as the 400 page naming the parameter."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            return not_found(request, exc.message)
        except BadParameter as exc:
            return bad_parameter(request, exc.name, exc.message)

    return wrapped


@require_safe
@friendly_404
def model_page(request: HttpRequest, model: str) -> HttpResponse:
    summary = next((s for s in selectors.model_summaries() if s.model.slug == model), None)
    if summary is None:
        raise NotFound(f"No model {model!r}.")
    return render(request, "browser/model.html", {"summary": summary})


@require_safe
@friendly_404
def sae_page(request: HttpRequest, model: str, sae: str) -> HttpResponse:
    sae_row = sae_selectors.sae_get(model_slug=model, slug=sae)
    q = request.GET.get("q", "").strip()
    if q.lstrip("#").isdigit():  # "#123" or "123": jump straight to that feature
        return redirect(f"/{model}/{sae}/{int(q.lstrip('#'))}/")
    live_only = request.GET.get("live") == "1"
    page = selectors.feature_table(
        sae=sae_row,
        sort=_choice(request, "sort", tuple(selectors.TABLE_SORTS), "index"),
        direction=_choice(request, "dir", ("asc", "desc"), None),
        q=q,
        live_only=live_only,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
    )

    def link(**changes: str | None) -> str:
        params = {
            "q": q,
            "live": "1" if live_only else "",
            "sort": page.sort,
            "dir": page.direction,
        }
        params.update(changes)
        return "?" + urlencode({k: v for k, v in params.items() if v})

    columns = []
    for key, label in (("index", "Feature"), ("density", "Density"), ("max", "Max activation")):
        active = page.sort == key
        default_dir = selectors.TABLE_SORTS[key][1]
        flip = "asc" if page.direction == "desc" else "desc"
        columns.append(
            {
                "key": key,
                "label": label,
                "active": active,
                "direction": page.direction if active else "",
                "url": link(sort=key, dir=flip if active else default_dir),
            }
        )
    run = sae_selectors.index_run_active(sae=sae_row)
    metrics = selectors.metrics_panel(sae=sae_row)
    return render(
        request,
        "browser/sae.html",
        {
            "sae": sae_row,
            "model": sae_row.model,
            "page": page,
            "q": q,
            "live_only": live_only,
            "columns": columns,
            "run": run,
            "metrics": metrics,
            "pending": selectors.pending_steps(sae=sae_row, metrics=metrics),
            "next_url": link(after=page.next_cursor) if page.next_cursor else None,
            "prev_url": link(before=page.prev_cursor) if page.prev_cursor else None,
            "first_url": link() if page.prev_cursor else None,
            "map_src": f"/{model}/{sae}/map.json",
        },
    )


@require_safe
@friendly_404
@gzip_page  # a 250k-feature map is ~8 MB of JSON, ~2 MB gzipped
def sae_map_json(request: HttpRequest, model: str, sae: str) -> JsonResponse:
    """Every feature's map point, columnar (the map chart fetches it). Cached for a minute once
    laid out; before that not at all, so the reload after the map is computed shows it."""
    sae_row = sae_selectors.sae_get(model_slug=model, slug=sae)
    points = sae_selectors.feature_map_points(sae=sae_row)
    response = JsonResponse({"model": model, "sae": sae, "points": points})
    laid_out = None not in points["x"]
    patch_cache_control(response, **({"max_age": 60} if laid_out else {"no_cache": True}))
    return response


@require_safe
@friendly_404
def sae_pending_json(request: HttpRequest, model: str, sae: str) -> JsonResponse:
    """What is still being computed for the SAE, polled by its page until nothing is left."""
    sae_row = sae_selectors.sae_get(model_slug=model, slug=sae)
    steps = selectors.pending_steps(sae=sae_row)
    return JsonResponse({"pending": [asdict(s) for s in steps]})


@require_safe
@friendly_404
def sae_progress_json(request: HttpRequest, model: str, sae: str) -> JsonResponse:
    """The newest index run's progress, polled by the SAE page while a run is active."""
    run = sae_selectors.index_run_latest(sae=sae_selectors.sae_get(model_slug=model, slug=sae))
    if run is None:
        return JsonResponse({"status": None})
    return JsonResponse(
        {
            "status": run.status,
            "tokens_done": run.tokens_done,
            "tokens_total": run.tokens_total or run.tokens,
            "error": run.error,
        }
    )


@require_safe
@friendly_404
def random_feature(request: HttpRequest, model: str, sae: str) -> HttpResponse:
    sae_row = sae_selectors.sae_get(model_slug=model, slug=sae)
    index = sae_selectors.random_live_index(sae=sae_row)
    if index is None:
        raise NotFound(f"{model}/{sae} has no live features yet.")
    query = request.GET.urlencode()
    return redirect(f"/{model}/{sae}/{index}/" + (f"?{query}" if query else ""))


@require_safe
@friendly_404
def bad_index(request: HttpRequest, model: str, sae: str, index: str) -> HttpResponse:
    sae_selectors.sae_get(model_slug=model, slug=sae)  # an unknown SAE is the better message
    return not_found(
        request, f"{index!r} is not a feature index: use a whole number, as in /{model}/{sae}/0/."
    )


def _flag(request: HttpRequest, name: str, default: bool) -> bool:
    value = request.GET.get(name)
    return default if value is None else value not in ("0", "false", "no", "off", "")


@require_safe
@friendly_404
def feature_page(request: HttpRequest, model: str, sae: str, index: int) -> HttpResponse:
    context_key = _choice(request, "ctx", tuple(CONTEXT_WIDTHS), DEFAULT_CONTEXT)
    page = selectors.feature_page_get(
        model_slug=model, sae_slug=sae, index=index, width=CONTEXT_WIDTHS[context_key]
    )
    feature = page.feature
    votes = my_votes(user=request.user, explanation_ids=[e.id for e in page.explanations])
    for e in page.explanations:
        e.my_vote = votes.get(e.id, 0)  # marks the reader's own vote (a vote is cast once)
    text = request.GET.get("text", "")
    max_chars = test_text_max_chars()  # the activation-test API's own limit
    text_error = (
        f"This text is {len(text):,} characters long; the limit is {max_chars:,}."
        if len(text) > max_chars
        else ""
    )
    embed = request.GET.get("embed") == "1"
    show = {
        part: _flag(request, part, EMBED_DEFAULTS[part]) if embed else True for part in EMBED_PARTS
    }
    steer_start = _steer_start(page)
    base = f"/{model}/{sae}/"
    keep = f"?ctx={context_key}" if "ctx" in request.GET else ""  # ← → keep the context width
    charts = page.chart_data()
    context = {
        "p": page,
        "sae": page.sae,
        "model": page.sae.model,
        "feature": feature,
        "embed": embed,
        "show": show,
        "text": "" if text_error else text,
        "text_error": text_error,
        "text_max_chars": max_chars,
        "context_key": context_key,
        # An over-long text is left out of the links (it is not shown either).
        "context_links": [
            (w, _with_param(request, "ctx", w, drop=("text",) if text_error else ()))
            for w in CONTEXT_WIDTHS
        ],
        "logit_scale": page.logit_scale,
        "steer_url": steering_selectors.feature_steer_url(
            model_slug=model, sae_slug=sae, index=index, start=steer_start
        ),
        "base": base,
        "prev_url": f"{base}{page.prev_index}/{keep}" if page.prev_index is not None else None,
        "next_url": f"{base}{page.next_index}/{keep}" if page.next_index is not None else None,
        "random_url": f"{base}random/{keep}",
        "histogram": charts["histogram"],
        "logits": charts["logits"],
        "examples_data": charts["examples"],
        "test_config": {
            "model": model,
            "sae": sae,
            "index": index,
            "max": feature.max_activation or None,
            "endpoint": "/api/v1/activations/test",
            "maxChars": max_chars,
            # False until a live worker said it holds the model: the first test may wait for it.
            "modelReady": activation_services.model_warm_state(model_slug=model)
            == activation_services.WARM_READY,
        },
        "lists": list(feature_list_visible(user=request.user, mine=True)[:50])
        if request.user.is_authenticated
        else [],
        "embed_snippet": _embed_snippet(request, page.url),
        # The model a signed-in reader can ask for an explanation; None without an endpoint.
        "llm_explainer": settings.EXPLAINER_MODEL
        if explanation_services.endpoint_configured()
        else None,
        "embed_parts": list(EMBED_DEFAULTS.items()),
        "og_description": _og_description(page),
        # This URL (with its text), unless the text is too long to keep.
        "og_url": request.build_absolute_uri(page.url if text_error else None),
        # The live steering panel (opened on demand): this feature at its max activation.
        "steer_config": None
        if embed or feature.dead
        else steering_selectors.feature_panel_config(
            sae=page.sae,
            index=index,
            max_activation=feature.max_activation,
            label=page.explanations[0].text if page.explanations else "",
            limits=steering_limits(),
            start=steer_start,
        ),
    }
    get_token(request)  # the test and add-to-list forms POST JSON with the CSRF cookie's token
    if embed:
        response = render(request, "browser/feature_embed.html", context)
        # Embeds are meant for other sites' iframes; every other page stays DENY.
        response.xframe_options_exempt = True
        return response
    return render(request, "browser/feature.html", context)


def _steer_start(page: selectors.FeaturePage) -> steering_selectors.FeatureSteerStart:
    """How "Steer with this feature" starts: the lead-in of the strongest (first top) example."""
    top = next((g.examples[0] for g in page.groups if g.kind == "top" and g.examples), None)
    return steering_selectors.feature_steer_start(
        max_activation=page.feature.max_activation,
        example_tokens=top.tokens if top else None,
        max_position=top.max_position if top else None,
        limits=steering_limits(),
    )


def _with_param(request: HttpRequest, name: str, value: str, drop: tuple[str, ...] = ()) -> str:
    params = request.GET.copy()
    params[name] = value
    for other in drop:
        params.pop(other, None)
    return "?" + params.urlencode()


def _embed_snippet(request: HttpRequest, url: str) -> str:
    src = request.build_absolute_uri(url) + "?embed=1"
    return (
        f'<iframe src="{src}" width="100%" height="640" style="border:0" loading="lazy"></iframe>'
    )


def _og_description(page: selectors.FeaturePage) -> str:
    f = page.feature
    if f.dead:
        return f"A dead feature of {page.sae}: it never fired on the indexed corpus."
    parts = [page.explanation] if page.explanation else []
    if page.top_logits:
        parts.append(
            "Promotes "
            + ", ".join(json.dumps(t.token, ensure_ascii=False) for t in page.top_logits[:5])
        )
    parts.append(f"density {density_percent(f.density)}, max activation {f.max_activation:.3g}")
    return ". ".join(parts)
