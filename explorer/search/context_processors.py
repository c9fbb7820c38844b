"""The header search box's scope (base.html): the model and SAE of the page it is on, so a
search from a feature or SAE page (`text:` above all) runs on that page's SAE."""

from __future__ import annotations

from django.http import HttpRequest

# Pages whose URL names a model (and maybe an SAE) as `<slug:model>/<slug:sae>/`.
SCOPED_NAMESPACES = ("browser", "steering")


def scope_from_query(query) -> tuple[str | None, str | None]:
    """(model, sae) from a search URL's `scope=<model>/<sae>` or `model=` and `sae=`; `scope`
    wins when both are given. Empty parts are None."""
    model = query.get("model") or None
    sae = query.get("sae") or None
    scope = query.get("scope")
    if scope is not None:
        model, _, sae = scope.partition("/")
    return model or None, sae or None


def search_scope(request: HttpRequest) -> dict:
    """`search_scope` = {"model", "sae" ("" for a model's page), "label"}, or nothing on a page
    without one (home, lists, accounts)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return {}
    if match.namespace == "search":
        model, sae = scope_from_query(request.GET)
    elif match.namespace in SCOPED_NAMESPACES:
        model, sae = match.kwargs.get("model"), match.kwargs.get("sae")
    else:
        return {}
    if not model:
        return {}
    label = f"{model}/{sae}" if sae else model
    return {"search_scope": {"model": model, "sae": sae or "", "label": label}}
