"""POST /activations/test: a feature's per-token activations on your text, or the features that
fire most on it, computed on a live worker (explorer/activations/services.py)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Field, Router, Schema

from explorer.accounts.permissions import ANONYMOUS, ReadOpenWriteAccount, api_key_from_request
from explorer.activations import services
from explorer.api.schemas import (
    RATE_LIMITED,
    StrictSchema,
    error_responses,
    rate_limited_openapi,
)
from explorer.core.clients import request_client

router = Router(tags=["activations"])
ERRORS = {**error_responses(400, 401, 404, 422, 502, 503, 504), **RATE_LIMITED}


class OpenToEveryone(ReadOpenWriteAccount):
    """Like the API's default auth, but anonymous POSTs pass too: a test changes nothing, and
    the feature page offers it to every visitor. A wrong API key is still refused."""

    def __call__(self, request: HttpRequest):
        if api_key_from_request(request) is not None:
            return super().__call__(request)
        user = getattr(request, "user", None)
        return user if user is not None and user.is_authenticated else ANONYMOUS


class ActivationTestIn(StrictSchema):
    model: str
    sae: str
    text: str
    index: int | None = Field(None, ge=0)  # omit for the top features of the text
    top_k: int = Field(20, ge=1, le=services.MAX_TOP_K)


class TopFeatureOut(Schema):
    index: int
    max_value: float
    position: int  # token (in `tokens`) where it peaks
    explanation: str | None


class ActivationTestOut(Schema):
    model: str
    sae: str
    index: int | None
    tokens: list[str]
    token_ids: list[int]
    values: list[float] | None  # one per token, when index was given
    max_activation: float
    top_features: list[TopFeatureOut]  # when index was omitted


@router.post(
    "/activations/test",
    auth=OpenToEveryone(),
    response={200: ActivationTestOut, **ERRORS},
    summary="Run a text through the model and SAE",
    description="A text not tested before on this SAE runs on the model's live worker and counts "
    "against the client's limits (an account, else the address): LIVE_TEST_RATE_LIMIT per "
    "LIVE_TEST_RATE_WINDOW_S and LIVE_TEST_CONCURRENCY at once; past them 429 with Retry-After. "
    "A repeated test is answered from the cache and counts nothing.",
    openapi_extra=rate_limited_openapi("Too many text tests at once or in this window."),
)
def activation_test(request: HttpRequest, payload: ActivationTestIn):
    return services.activation_test(
        model_slug=payload.model,
        sae_slug=payload.sae,
        text=payload.text,
        index=payload.index,
        top_k=payload.top_k,
        client=request_client(request),
    )
