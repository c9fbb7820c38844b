"""The shared schema pieces: input and query schemas refuse NaN and infinite numbers, which
Python's JSON parser (and float()) accept."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from explorer.api.schemas import QuerySchema, StrictSchema


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


def test_finite_numbers_and_unknown_query_parameters_pass():
    assert Body.model_validate({"strength": "1.5"}).strength == 1.5
    assert Params.model_validate({"min_density": "1e-3", "utm_source": "x"}).min_density == 0.001
