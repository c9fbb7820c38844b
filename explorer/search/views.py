"""The /search/ page: the same search as GET /api/v1/search, rendered server-side."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode

from explorer.core.clients import request_client
from explorer.core.exceptions import ApplicationError
from explorer.saes import selectors as sae_selectors
from explorer.search import services
from explorer.search.context_processors import scope_from_query

# Hits shown when the URL sets no limit: in all, or per SAE for a text search (which lists every
# SAE of a model).
PAGE_LIMIT = 50
PAGE_TEXT_LIMIT = 20


def _limit(value: str | None, default: int) -> int:
    """`?limit=` as the number of hits; raises ApplicationError naming it unless it is a whole
    number from 1 to MAX_LIMIT."""
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= services.MAX_LIMIT:
        raise ApplicationError(
            f"limit must be a whole number from 1 to {services.MAX_LIMIT}; got {value!r:.40}.",
            code="invalid_limit",
        )
    return limit


# Errors about where to search (no such model/SAE, a text search needing one SAE).
SCOPE_ERRORS = ("invalid_scope", "not_found")
MAX_CHOICES = 24


def _scope_choices(
    *, q: str, mode: str, model: str | None, sae: str | None, code: str
) -> list[dict]:
    """Links that rerun the search in each SAE (of `model` when it has any, else every SAE),
    then everywhere when the scope given does not exist: [{"label", "url"}]."""

    def url(scope: str) -> str:
        return f"{reverse('search:search')}?{urlencode({'q': q, 'scope': scope, 'mode': mode})}"

    ordered = ("model__slug", "slug")
    known = model is not None and services.SLUG_RE.match(model)
    saes = list(sae_selectors.sae_list(model_slug=model).order_by(*ordered)) if known else []
    saes = (saes or list(sae_selectors.sae_list().order_by(*ordered)))[:MAX_CHOICES]
    choices = [
        {"label": f"{s.model.slug} / {s.slug}", "url": url(f"{s.model.slug}/{s.slug}")}
        for s in saes
    ]
    if code == "not_found":
        choices.append({"label": "all SAEs", "url": url("")})
    return choices


def search_page(request: HttpRequest) -> HttpResponse:
    """?q=...&scope=<model>/<sae>&mode=...: results as a table; every state is in the URL.

    `model=` and `sae=` (as in the API) work too; `scope` wins when both are given
    (`scope=<model>/` is every SAE of the model). Text searches list their hits per SAE.
    """
    q = request.GET.get("q", "").strip()
    model, sae = scope_from_query(request.GET)
    mode = request.GET.get("mode") or "auto"
    saes = list(sae_selectors.sae_list())
    context = {
        "q": q,
        "search_query": q,
        "model": model or "",
        "sae": sae or "",
        "mode": mode,
        "modes": services.MODES,
        "saes": saes,
        "models": list(dict.fromkeys(s.model.slug for s in saes)),
        "hits": None,
        "groups": None,
        "error": None,
        "notice": None,
        "choose_models": None,
        "choices": [],
    }
    status, retry_after = 200, None
    if q:
        try:
            is_text = services.query_and_mode(q, mode)[1] == "text"
            result = services.search_results(
                q=q,
                model_slug=model,
                sae_slug=sae,
                mode=mode,
                limit=_limit(request.GET.get("limit"), PAGE_TEXT_LIMIT if is_text else PAGE_LIMIT),
                client=request_client(request),
            )
            context["hits"], context["notice"] = result.hits, result.notice
            context["groups"] = result.groups
        except services.ModelRequired as exc:
            context["error"] = "Searching by text runs one model's SAEs: choose the model."
            context["choose_models"] = [
                (m, f"{reverse('search:search')}?" + urlencode({"q": q, "model": m, "mode": mode}))
                for m in exc.models
            ]  # a question, not a failure: 200
        except ApplicationError as exc:
            context["error"] = exc.message
            status = exc.status
            retry_after = getattr(exc, "retry_after", None)  # a RateLimited's wait
            if exc.code in SCOPE_ERRORS:  # never a dead end: offer the scopes that exist
                context["choices"] = _scope_choices(
                    q=q, mode=mode, model=model, sae=sae, code=exc.code
                )
    response = render(request, "search/search.html", context, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response
