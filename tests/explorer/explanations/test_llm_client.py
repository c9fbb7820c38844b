"""The LLM method's HTTP client against a local OpenAI-compatible server (real HTTP on
loopback): success with tokens counted, timeouts, 429 with Retry-After, 5xx, refusals and
malformed replies. Only the sleep between retries is replaced (recorded, not waited)."""

from __future__ import annotations

import pytest

from explorer.explanations.methods import Context, Contexts, llm
from tests.explorer.explanations.llm_server import Reply, completion


@pytest.fixture
def endpoint(fake_llm):
    return llm.Endpoint(
        base_url=fake_llm.base_url,
        model="test-model",
        api_key="sk-test",
        timeout_s=0.5,
        max_retries=2,
        backoff_s=0.25,
        max_backoff_s=5.0,
    )


@pytest.fixture
def sleeps():
    return []


def ask(endpoint, sleeps, usage=None):
    return llm.chat(
        endpoint,
        [{"role": "user", "content": "hi"}],
        usage=usage or llm.Usage(),
        sleep=sleeps.append,
    )


def test_a_reply_returns_its_text_and_counts_tokens(fake_llm, endpoint, sleeps):
    fake_llm.script = [Reply(body=completion("commas", prompt_tokens=40, completion_tokens=2))]
    usage = llm.Usage()
    assert ask(endpoint, sleeps, usage) == "commas"
    assert (usage.prompt_tokens, usage.completion_tokens) == (40, 2)
    assert fake_llm.requests[0]["model"] == "test-model"
    assert fake_llm.headers[0]["Authorization"] == "Bearer sk-test"


def test_a_429_waits_for_its_retry_after_then_retries(fake_llm, endpoint, sleeps):
    fake_llm.script = [
        Reply(429, {"error": "slow down"}, {"Retry-After": "3"}),
        Reply(body=completion("ok")),
    ]
    assert ask(endpoint, sleeps) == "ok"
    assert sleeps == [3.0]


def test_a_5xx_backs_off_exponentially_then_succeeds(fake_llm, endpoint, sleeps):
    fake_llm.script = [Reply(500, "oops"), Reply(502, "bad gateway"), Reply(body=completion("ok"))]
    assert ask(endpoint, sleeps) == "ok"
    assert sleeps == [0.25, 0.5]


def test_an_endpoint_that_keeps_failing_gives_a_retryable_error_with_the_reason(
    fake_llm, endpoint, sleeps
):
    fake_llm.script = [Reply(503, "down")] * 3
    with pytest.raises(llm.EndpointError) as err:
        ask(endpoint, sleeps)
    assert err.value.retryable
    assert "HTTP 503" in err.value.reason and "3 tries" in err.value.reason
    assert len(fake_llm.requests) == 3


def test_an_over_quota_endpoint_says_so(fake_llm, endpoint, sleeps):
    fake_llm.script = [
        Reply(429, {"error": {"message": "quota exceeded"}}, {"Retry-After": "1"})
    ] * 3
    with pytest.raises(llm.EndpointError) as err:
        ask(endpoint, sleeps)
    assert "429" in err.value.reason and "quota exceeded" in err.value.reason
    assert sleeps == [1.0, 1.0]


def test_a_retry_after_longer_than_the_cap_is_capped(fake_llm, endpoint, sleeps):
    fake_llm.script = [Reply(429, "{}", {"Retry-After": "3600"}), Reply(body=completion("ok"))]
    ask(endpoint, sleeps)
    assert sleeps == [5.0]


def test_a_timeout_is_retried_and_then_reported(fake_llm, endpoint, sleeps):
    fake_llm.script = [Reply(body=completion("late"), delay_s=1.5)] * 3
    with pytest.raises(llm.EndpointError) as err:
        ask(endpoint, sleeps)
    assert "timed out after 0.5 s" in err.value.reason
    assert err.value.retryable


def test_a_refusal_is_not_retried(fake_llm, endpoint, sleeps):
    fake_llm.script = [Reply(401, {"error": {"message": "invalid api key"}})]
    with pytest.raises(llm.EndpointError) as err:
        ask(endpoint, sleeps)
    assert not err.value.retryable and "HTTP 401" in err.value.reason
    assert sleeps == [] and len(fake_llm.requests) == 1


@pytest.mark.parametrize(
    "body", ["{not json", '{"choices": []}', '{"choices": [{"message": {}}]}', "[1, 2]"]
)
def test_a_malformed_reply_is_an_error_not_an_answer(fake_llm, endpoint, sleeps, body):
    fake_llm.script = [Reply(200, body)]
    with pytest.raises(llm.EndpointError) as err:
        ask(endpoint, sleeps)
    assert "malformed JSON" in err.value.reason or "choices" in err.value.reason


def test_an_unreachable_endpoint_is_reported(sleeps):
    dead = llm.Endpoint(
        base_url="http://127.0.0.1:9/v1", model="m", timeout_s=0.5, max_retries=1, backoff_s=0
    )
    with pytest.raises(llm.EndpointError) as err:
        ask(dead, sleeps)
    assert "unreachable" in err.value.reason


def test_retry_after_may_be_an_http_date():
    assert llm.retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert llm.retry_after_s("2.5") == 2.5
    assert llm.retry_after_s("soon") is None


def test_the_explain_prompt_marks_the_max_token_and_lists_promoted_tokens(
    fake_llm, endpoint, sleeps
):
    usage = llm.Usage()
    text = llm.explain(
        endpoint,
        examples=[Context(tokens=["The", " <script>", " cat"], position=1)],
        promoted=[" dog"],
        usage=usage,
        sleep=sleeps.append,
    )
    assert text == 'the token " <script>"'
    prompt = fake_llm.requests[0]["messages"][-1]["content"]
    assert "The<< <script>>> cat" in prompt and '" dog"' in prompt


def test_an_empty_explanation_is_an_error(fake_llm, endpoint, sleeps):
    fake_llm.script = [Reply(body=completion("  \n "))]
    with pytest.raises(llm.EndpointError, match="empty explanation"):
        llm.explain(
            endpoint,
            examples=[Context(tokens=["a"], position=0)],
            promoted=[],
            usage=llm.Usage(),
            sleep=sleeps.append,
        )


def test_the_judge_scores_balanced_accuracy(fake_llm, endpoint, sleeps):
    contexts = Contexts(
        activating=[Context([" a", " cat"], 1), Context([" cat"], 0), Context([" dog"], 0)],
        non_activating=[Context([" mat"], 0), Context([" cat", "."], 0)],
    )
    usage = llm.Usage()
    score = llm.judge(
        endpoint, explanation='the word " cat"', contexts=contexts, usage=usage, sleep=sleeps.append
    )
    # 2 of 3 activating said yes, 1 of 2 non-activating said no: (2/3 + 1/2) / 2
    assert score.value == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert (score.method, score.sample_size) == ("detection:llm:test-model", 5)
    assert usage.prompt_tokens == 5 * 11


def test_a_judge_answer_that_is_neither_yes_nor_no_fails_the_score(fake_llm, endpoint, sleeps):
    fake_llm.script = [Reply(body=completion("Perhaps"))]
    contexts = Contexts(activating=[Context(["a"], 0)], non_activating=[Context(["b"], 0)])
    with pytest.raises(llm.EndpointError, match="neither yes nor no"):
        llm.judge(
            endpoint, explanation="x", contexts=contexts, usage=llm.Usage(), sleep=sleeps.append
        )
