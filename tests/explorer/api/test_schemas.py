"""The shared schema pieces: input and query schemas refuse NaN and infinite numbers, which
Python's JSON parser (and float()) accept; a list endpoint's query refuses unknown parameters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from explorer.api.schemas import QuerySchema, StrictSchema
from explorer.core.exceptions import ApplicationError


class Body(StrictSchema):
    strength: float


class Params(QuerySchema):
    min_density: float = 0.0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "NaN", "-Infinity"])
def test_a_body_refuses_a_non_finite_number_by_name(value):
    with pytest.raises(ValidationError) as caught:
        Body.model_validate({"strength": value})
    assert caught.value.errors()[0]["loc"] == ("strength",)


@pytest.mark.parametrize("value", ["NaN", "inf", "-inf"])
def test_a_query_refuses_a_non_finite_number_by_name(value):
    with pytest.raises(ValidationError) as caught:
        Params.model_validate({"min_density": value})
    assert caught.value.errors()[0]["loc"] == ("min_density",)


def test_finite_numbers_pass():
    assert Body.model_validate({"strength": "1.5"}).strength == 1.5
    assert Params.model_validate({"min_density": "1e-3"}).min_density == 0.001


def test_a_query_parameter_the_schema_lacks_is_refused_by_name(rf):
    Params.check_known(rf.get("/", {"min_density": "0.1"}))
    with pytest.raises(ApplicationError) as caught:
        Params.check_known(rf.get("/", {"order": "evil", "min_density": "0.1"}))
    assert caught.value.status == 422
    assert (
        caught.value.message == "query.order: unknown parameter; this endpoint takes min_density."
    )
