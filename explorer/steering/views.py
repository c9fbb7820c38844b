"""The steering page and steering permalinks (thin: selectors build the page config).

`/<model>/steer/` query string (every part optional; the page keeps it in step with the panel):

- `prompt=<text>`
- `f=<sae>:<index>:<strength>[:<mode>]`, repeatable: a feature to steer; strength in raw
  activation units (the feature page links with its max activation × 4), mode add (default),
  clamp, ablate or logit;
- `v=<vector id>:<strength>`, repeatable: a steering vector;
- `t=<temperature>`, `p=<top_p>`, `seed=<int>`, `n=<max new tokens>`,
  `pos=all|prompt|generated|assistant` (assistant: chats only);
- `chat=1`: chat mode, for a model with a chat template (the conversation itself is kept by
  each reply's permalink).

Bad features and vectors are dropped, each with a notice on the page saying why; bad settings
fall back to their defaults (the websocket refuses a bad request with a message when it is sent).
`/steer/<id>/` restores a stored SteeringResult: its request as `initial`, its texts as `result`.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from explorer.core.exceptions import NotFound
from explorer.saes.models import LanguageModel
from explorer.steering import selectors
from explorer.steering.conf import limits


def steer_page(request: HttpRequest, model: str) -> HttpResponse:
    try:
        lm = selectors.language_model_get(slug=model)
    except NotFound as exc:
        raise Http404(exc.message) from None
    lim = limits()
    initial, notices = selectors.steer_query_read(model=lm, params=request.GET, limits=lim)
    config = selectors.steer_page_config(
        model=lm,
        initial=initial,
        limits=lim,
        notices=notices,
        signed_in=request.user.is_authenticated,
    )
    return render(request, "steering/steer.html", {"steer_config": config, "model": lm})


def permalink(request: HttpRequest, result_id: str) -> HttpResponse:
    try:
        result = selectors.steering_result_get(result_id=result_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    lm = LanguageModel.objects.defer("vocab").get(pk=result.model_id)
    lim = limits()
    initial = selectors.initial_from_result(model=lm, result=result)
    config = selectors.steer_page_config(
        model=lm,
        initial=initial,
        limits=lim,
        result=result,
        signed_in=request.user.is_authenticated,
    )
    return render(
        request, "steering/steer.html", {"steer_config": config, "model": lm, "result": result}
    )
