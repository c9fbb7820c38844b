"""Pages for feature lists: /lists/ (public lists and yours, create one) and /lists/<id>/ (the
list; its owner edits notes, removes features, renames and (un)publishes it). Adding a feature
happens on the feature page through POST /api/v1/lists/{id}/items."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from explorer.accounts.permissions import writes_need_account
from explorer.core.exceptions import ApplicationError, NotFound
from explorer.lists import selectors, services


@writes_need_account
def list_index(request: HttpRequest) -> HttpResponse:
    """GET: public lists and the user's own. POST (signed in): create a list, then open it."""
    error = None
    if request.method == "POST":
        try:
            fl = services.feature_list_create(
                user=request.user,
                name=request.POST.get("name", ""),
                public=request.POST.get("public") == "on",
                description=request.POST.get("description", ""),
            )
        except ApplicationError as exc:
            error = exc.message
        else:
            return redirect(fl.get_absolute_url())
    context = {
        "public_lists": selectors.feature_list_visible(user=None)[:200],
        "my_lists": selectors.feature_list_visible(user=request.user, mine=True)[:200],
        "error": error,
    }
    return render(request, "lists/index.html", context, status=400 if error else 200)


@writes_need_account
def list_detail(request: HttpRequest, list_id: uuid.UUID) -> HttpResponse:
    """GET: the list (404 when private and not yours). POST (owner): rename / (un)publish, or
    delete with action=delete."""
    try:
        fl = selectors.feature_list_get(user=request.user, list_id=list_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    if request.method == "POST":
        try:
            if request.POST.get("action") == "delete":
                services.feature_list_delete(user=request.user, list_id=list_id)
                messages.success(request, f"Deleted the list {fl.name}.")
                return redirect("lists:index")
            services.feature_list_update(
                user=request.user,
                list_id=list_id,
                name=request.POST.get("name", fl.name),
                public=request.POST.get("public") == "on",
                description=request.POST.get("description", fl.description),
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect(fl.get_absolute_url())
    is_owner = request.user.is_authenticated and fl.owner_id == request.user.pk
    return render(
        request,
        "lists/detail.html",
        {
            "list": selectors.feature_list_detail(fl),
            "is_owner": is_owner,
            "share_url": request.build_absolute_uri(fl.get_absolute_url()),
        },
    )


@require_POST
@login_required
@writes_need_account
def item_edit(request: HttpRequest, list_id: uuid.UUID, item_id: int) -> HttpResponse:
    """The owner saves an item's note (action=save) or removes it (action=remove)."""
    try:
        if request.POST.get("action") == "remove":
            services.feature_list_remove(user=request.user, list_id=list_id, item_id=item_id)
        else:
            services.feature_list_item_update(
                user=request.user,
                list_id=list_id,
                item_id=item_id,
                note=request.POST.get("note", ""),
            )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("lists:detail", list_id=list_id)
