"""The /search/ page: the same search as GET /api/v1/search, rendered server-side."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from explorer.core.exceptions import ApplicationError
from explorer.saes import selectors as sae_selectors
from explorer.search import services

# Hits shown when the URL sets no limit: in all, or per SAE for a text search (which lists every
# SAE of a model).
PAGE_LIMIT = 50
PAGE_TEXT_LIMIT = 20


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def search_page(request: HttpRequest) -> HttpResponse:
    """?q=...&scope=<model>/<sae>&mode=...: results as a table; every state is in the URL.

    `model=` and `sae=` (as in the API) work too; `scope` wins when both are given
    (`scope=<model>/` is every SAE of the model). Text searches list their hits per SAE.
    """
    q = request.GET.get("q", "").strip()
    model = request.GET.get("model") or None
    sae = request.GET.get("sae") or None
    scope = request.GET.get("scope")
    if scope is not None:
        model, _, sae = scope.partition("/")
        model, sae = model or None, sae or None
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
    }
    status = 200
    if q:
        try:
            is_text = services.query_and_mode(q, mode)[1] == "text"
            result = services.search_results(
                q=q,
                model_slug=model,
                sae_slug=sae,
                mode=mode,
                limit=_int(request.GET.get("limit"), PAGE_TEXT_LIMIT if is_text else PAGE_LIMIT),
            )
            context["hits"], context["notice"] = result.hits, result.notice
            context["groups"] = result.groups
        except services.ModelRequired as exc:
            context["error"] = "Searching by text runs one model's SAEs: choose the model."
            context["choose_models"] = [
                (m, "?" + urlencode({"q": q, "model": m, "mode": mode})) for m in exc.models
            ]  # a question, not a failure: 200
        except ApplicationError as exc:
            context["error"] = exc.message
            status = exc.status
    return render(request, "search/search.html", context, status=status)
