"""The LLM method: an OpenAI-compatible chat endpoint explains a feature and judges contexts.

Only `POST {base_url}/chat/completions` is used, so OpenAI, vLLM, llama.cpp's server and
Ollama's /v1 all work. `chat` retries timeouts, connection errors, 429 and 5xx with exponential
backoff (a 429's Retry-After wins) and raises EndpointError with a readable reason otherwise:
callers store the reason and never invent an answer. Plain code (no Django): the Endpoint is
built by services from settings and the job row.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from explorer.explanations.methods import Context, Contexts, Score, detection_score

MAX_REASON_CHARS = 500
MAX_EXPLANATION_CHARS = 300
EXAMPLES_IN_PROMPT = 10
MARK_OPEN, MARK_CLOSE = "<<", ">>"


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0


class EndpointError(Exception):
    """The endpoint gave no usable answer. `reason` is stored on the job; `retryable` says
    whether trying again later may help (down, timeout, quota) or not (401, bad request)."""

    def __init__(
        self, reason: str, *, retryable: bool, prompt_tokens: int = 0, completion_tokens: int = 0
    ):
        super().__init__(reason)
        self.reason = reason[:MAX_REASON_CHARS]
        self.retryable = retryable
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


@dataclass
class Usage:
    """Tokens used, summed over calls (from each reply's `usage`; 0 when a server omits it)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, prompt: int, completion: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(text: str) -> str:
    return " ".join(text.split())[:200]


def chat(
    endpoint: Endpoint,
    messages: list[dict],
    *,
    usage: Usage,
    max_tokens: int = 100,
    sleep: Callable[[float], None] = time.sleep,
    client: httpx.Client | None = None,
) -> str:
    """The reply text of one chat completion; tokens used are added to `usage`.

    Raises EndpointError after `max_retries` retries of retryable failures, or at once for a
    refusal (4xx but 429) or a malformed reply (not JSON, no choices[0].message.content).
    """
    url = endpoint.base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    body = {
        "model": endpoint.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    own = client is None
    http = client or httpx.Client(timeout=endpoint.timeout_s)
    try:
        attempt = 0
        while True:
            try:
                return _post_once(
                    http, url, body=body, headers=headers, timeout_s=endpoint.timeout_s, usage=usage
                )
            except _TryAgain as failure:
                if attempt >= endpoint.max_retries:
                    raise EndpointError(
                        f"{failure.reason} (gave up after {attempt + 1} tries)", retryable=True
                    ) from None
                wait = failure.wait
                if wait is None:
                    wait = endpoint.backoff_s * 2**attempt
            sleep(min(wait, endpoint.max_backoff_s))
            attempt += 1
    finally:
        if own:
            http.close()


class _TryAgain(Exception):
    """A failure that may pass: `reason` goes into the final error, `wait` is a Retry-After."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


def _post_once(
    http: httpx.Client,
    url: str,
    *,
    body: dict,
    headers: dict[str, str],
    timeout_s: float,
    usage: Usage,
) -> str:
    """One POST: the reply text, or _TryAgain for a timeout, a connection error, 429 or 5xx.

    Raises EndpointError for a refusal (4xx but 429) or a malformed reply.
    """
    try:
        response = http.post(url, json=body, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        raise _TryAgain(f"the endpoint timed out after {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise _TryAgain(f"the endpoint is unreachable: {type(exc).__name__}: {exc}") from None
    status = response.status_code
    if status == 200:
        return _reply_text(response, usage)
    if status == 429:
        raise _TryAgain(
            f"over quota or rate-limited (HTTP 429): {_snippet(response.text)}",
            wait=retry_after_s(response.headers.get("Retry-After")),
        )
    reason = f"HTTP {status} from the endpoint: {_snippet(response.text)}"
    if status < 500:  # a refusal (bad key, unknown model, bad request): retrying won't help
        raise EndpointError(reason, retryable=False)
    raise _TryAgain(reason)


def _reply_text(response: httpx.Response, usage: Usage) -> str:
    try:
        data = response.json()
    except ValueError:
        raise EndpointError(
            f"malformed JSON reply: {_snippet(response.text)!r}", retryable=True
        ) from None
    try:
        text = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise EndpointError(
            f"reply without choices[0].message.content: {_snippet(json.dumps(data))!r}",
            retryable=True,
        ) from None
    if not isinstance(text, str):
        raise EndpointError("reply content is not text", retryable=True)
    u = data.get("usage") if isinstance(data, dict) else None
    if isinstance(u, dict):
        usage.add(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
    return text


# -- explaining -------------------------------------------------------------------------------

EXPLAIN_SYSTEM = (
    "You explain features of a sparse autoencoder trained on a language model's activations. "
    "You see text excerpts where the feature fires; the token where it fires most is marked "
    f"{MARK_OPEN}like this{MARK_CLOSE}. "
    "You also see the tokens the feature makes more likely next. Reply with one short phrase "
    "(at most 12 words) saying what the feature responds to. "
    "No preamble, no quotes around the answer."
)


def context_text(ctx: Context, *, mark: bool) -> str:
    parts = []
    for i, tok in enumerate(ctx.tokens):
        parts.append(f"{MARK_OPEN}{tok}{MARK_CLOSE}" if mark and i == ctx.position else tok)
    return "".join(parts).replace("\n", "⏎")


def explain_messages(*, examples: list[Context], promoted: list[str]) -> list[dict]:
    lines = [
        f"Example {i + 1}: {context_text(c, mark=True)}"
        for i, c in enumerate(examples[:EXAMPLES_IN_PROMPT])
    ]
    if promoted:
        lines.append(
            "Tokens it promotes: " + ", ".join(json.dumps(t, ensure_ascii=False) for t in promoted)
        )
    return [
        {"role": "system", "content": EXPLAIN_SYSTEM},
        {"role": "user", "content": "\n".join(lines)},
    ]


def clean_explanation(text: str) -> str:
    """The first non-empty line, without wrapping quotes or an "Explanation:" prefix."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    for prefix in ("explanation:", "answer:", "feature:"):
        if line.lower().startswith(prefix):
            line = line[len(prefix) :].strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    return line[:MAX_EXPLANATION_CHARS]


def explain(
    endpoint: Endpoint,
    *,
    examples: list[Context],
    promoted: list[str],
    usage: Usage,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """One explanation of a feature from its top examples and promoted tokens.

    Raises EndpointError (see `chat`), also for an empty answer: nothing is made up.
    """
    text = clean_explanation(
        chat(
            endpoint,
            explain_messages(examples=examples, promoted=promoted),
            usage=usage,
            max_tokens=60,
            sleep=sleep,
        )
    )
    if not text:
        raise EndpointError("the endpoint answered with an empty explanation", retryable=True)
    return text


# -- judging (detection score) ----------------------------------------------------------------

JUDGE_SYSTEM = (
    "A feature of a language model is described below. Decide whether the feature fires "
    "anywhere in the text excerpt. Answer with exactly one word: yes or no."
)


def judge_messages(*, explanation: str, ctx: Context) -> list[dict]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {
            "role": "user",
            "content": f"Feature: {explanation}\nExcerpt: {context_text(ctx, mark=False)}",
        },
    ]


def parse_yes_no(text: str) -> bool:
    word = (
        text.strip().strip(".!\"'`*").split()[0].lower().strip(".,!:;\"'`*") if text.strip() else ""
    )
    if word in ("yes", "y", "true"):
        return True
    if word in ("no", "n", "false"):
        return False
    raise EndpointError(
        f"the judge answered neither yes nor no: {_snippet(text)!r}", retryable=True
    )


def judge(
    endpoint: Endpoint,
    *,
    explanation: str,
    contexts: Contexts,
    usage: Usage,
    sleep: Callable[[float], None] = time.sleep,
) -> Score:
    """Detection score: the judge is asked, one context at a time, whether the feature fires
    in it; the score is the balanced accuracy of its yes/no over activating and
    non-activating contexts. Raises EndpointError on any failed or unreadable answer (a score
    from part of the sample would not be comparable)."""
    if not contexts.activating or not contexts.non_activating:
        raise EndpointError(
            "too few contexts to score (needs activating and non-activating ones)", retryable=False
        )

    def fires(ctx: Context) -> bool:
        answer = chat(
            endpoint,
            judge_messages(explanation=explanation, ctx=ctx),
            usage=usage,
            max_tokens=3,
            sleep=sleep,
        )
        return parse_yes_no(answer)

    return detection_score(contexts, fires=fires, method=f"detection:llm:{endpoint.model}")
