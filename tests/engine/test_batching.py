"""Continuous batching: rows join and leave between steps, each with its own steering."""

from __future__ import annotations

import threading

import pytest
import torch
import transformers

from workers.engine.batching import DecodeBatch, Job, RowRequest, RowState
from workers.engine.generation import generate
from workers.engine.hooks import active_hook_count, family_of, intercept
from workers.engine.interventions import Intervention, SteerSpec, compile_plan
from workers.engine.loading import LoadedModel
from workers.engine.scheduler import run_job


def one_row_job(lm, prompt: str, n: int, *, plan=None, temperature=0.0, seed=0) -> Job:
    """A job of one row whose result is its token list."""
    req = RowRequest(
        label="row",
        prompt_ids=lm.encode(prompt).tolist(),
        plan=plan,
        temperature=temperature,
        top_p=1.0,
        seed=seed,
        max_new_tokens=n,
    )
    return Job(rows=[req], finish=lambda out, cancelled: out["row"][0])


def alone(lm, prompt: str, n: int, **kw) -> list[int]:
    return run_job(lm, one_row_job(lm, prompt, n, **kw), stop_ids=())


def test_rows_joining_and_leaving_mid_flight_get_the_same_tokens_as_alone(tiny_lm):
    a = one_row_job(tiny_lm, "The cat sat on the mat.", 5)
    b = one_row_job(tiny_lm, "A dog", 12)
    c = one_row_job(tiny_lm, "She said that the weather was fine", 4)
    batch = DecodeBatch(tiny_lm, stop_ids=())
    widths = []
    with torch.inference_mode():
        batch.join(a)
        batch.step()
        batch.step()
        batch.join(b)  # joins with a shorter prompt while a is mid-flight
        while len(batch.rows) == 2:
            batch.step()  # a leaves after its 5th token; b goes on
        widths.append(batch.mask.shape[1])
        batch.join(c)  # joins after a left
        while batch.rows:
            batch.step()
    for job, prompt, n in (
        (a, "The cat sat on the mat.", 5),
        (b, "A dog", 12),
        (c, "She said that the weather was fine", 4),
    ):
        assert job.finish(job.outputs(), False) == alone(tiny_lm, prompt, n)
    # a's long prompt was trimmed from the cache once a left (b's 2 prompt + 4 generated)
    assert widths[0] < len(tiny_lm.encode("The cat sat on the mat.")) + 5


def test_a_rows_tokens_do_not_depend_on_another_rows_steering(tiny_att):
    lm = tiny_att.lm
    strong = compile_plan(
        tiny_att,
        [Intervention(5, 20.0), Intervention(7, 5.0, "clamp"), Intervention(9, 50.0, "logit")],
    )
    outputs = []
    for plan in (None, strong):
        i = one_row_job(lm, "The cat sat", 10, plan=plan)
        j = one_row_job(lm, "The cat sat", 10, temperature=1.0, seed=5)
        with DecodeBatch(lm, stop_ids=()) as batch, torch.inference_mode():
            batch.join(i)
            batch.join(j)
            while batch.rows:
                batch.step()
        outputs.append((i.outputs()["row"][0], j.outputs()["row"][0]))
    (i_plain, j_plain), (i_steered, j_steered) = outputs
    assert i_plain != i_steered  # row i really was steered
    assert j_plain == j_steered
    assert active_hook_count(lm) == 0  # the batch's hooks left with it


def test_a_seeded_row_samples_the_same_tokens_alone_or_in_a_batch(tiny_lm):
    batch = DecodeBatch(tiny_lm, stop_ids=())
    jobs = [
        one_row_job(tiny_lm, p, 8, temperature=1.0, seed=3)
        for p in ("The cat", "A quick brown fox", "Numbers like 1")
    ]
    with torch.inference_mode():
        for job in jobs:
            batch.join(job)
        while batch.rows:
            batch.step()
    assert jobs[1].outputs()["row"][0] == alone(
        tiny_lm, "A quick brown fox", 8, temperature=1.0, seed=3
    )


# --- other architecture families ------------------------------------------------------------

FAMILY_CONFIGS = {
    "gpt_neox": lambda v: transformers.GPTNeoXConfig(
        vocab_size=v,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    ),
    "llama": lambda v: transformers.LlamaConfig(
        vocab_size=v,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    ),
    # a sliding window shorter than the prompts exercises the windowed masks
    "gemma2": lambda v: transformers.Gemma2Config(
        vocab_size=v,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=64,
        max_position_embeddings=64,
        sliding_window=4,
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILY_CONFIGS))
def test_other_families_decode_like_a_cacheless_loop_and_batch_transparently(tiny_lm, family):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(
        FAMILY_CONFIGS[family](len(tiny_lm.tokenizer))
    ).eval()
    lm = LoadedModel(
        model=model,
        tokenizer=tiny_lm.tokenizer,
        family=family_of(model),
        name=family,
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    prompts = {"The cat sat on the mat.": 6, "A dog": 10}
    reference = {}
    for prompt, n in prompts.items():
        ids = lm.encode(prompt).tolist()
        with torch.no_grad():
            for _ in range(n):
                ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
        reference[prompt] = ids[-n:]
        assert alone(lm, prompt, n) == reference[prompt]
    jobs = {p: one_row_job(lm, p, n) for p, n in prompts.items()}
    batch = DecodeBatch(lm, stop_ids=())
    with torch.inference_mode():
        batch.join(jobs["The cat sat on the mat."])
        batch.step()
        batch.join(jobs["A dog"])
        while batch.rows:
            batch.step()
    assert {p: j.outputs()["row"][0] for p, j in jobs.items()} == reference


def test_steering_hooks_ignore_forward_passes_of_other_threads(tiny_att):
    """Module hooks are global; a forward pass on another thread that runs while a steered
    step is in flight (here: started from inside it) must see the clean model."""
    lm = tiny_att.lm
    ids = lm.encode("The cat sat")[None]
    with torch.no_grad():
        clean = lm.model(ids).logits
    seen = []

    main = threading.get_ident()

    def other_thread_forward(x):
        if threading.get_ident() != main:
            return  # the other thread's own pass through this hook

        def run():
            with torch.no_grad():
                seen.append(lm.model(ids, use_cache=False).logits)

        t = threading.Thread(target=run)
        t.start()
        t.join()

    spec = SteerSpec((Intervention(5, 50.0), Intervention(6, 9.0, "clamp")), max_new_tokens=2)
    with intercept(lm, "blocks.0.hook_resid_pre", other_thread_forward):
        generate(tiny_att, "The cat", spec)
    assert len(seen) >= 2
    for logits in seen:
        torch.testing.assert_close(logits, clean, rtol=0, atol=0)


def test_a_failing_cancel_check_ends_the_request_with_its_error(tiny_att):
    def cancel():
        raise ConnectionError("redis is down")

    with pytest.raises(ConnectionError, match="redis is down"):
        generate(tiny_att, "The cat", SteerSpec(max_new_tokens=5), cancel=cancel)


def test_streamed_text_never_splits_a_character_and_adds_up_to_the_text(tiny_lm):
    text = " naïve café 😀 ok — 東京"
    ids = tiny_lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    batch = DecodeBatch(tiny_lm)
    job = one_row_job(tiny_lm, "x", len(ids))
    row = RowState(req=job.rows[0], job=job, generator=torch.Generator())
    deltas = []
    for i, tok in enumerate(ids):
        row.tokens.append(tok)
        row.done = i == len(ids) - 1
        deltas.append(batch._delta(row))
        row.text += deltas[-1]
    assert "".join(deltas) == tiny_lm.decode(ids) == text
    assert not any("\ufffd" in d for d in deltas)
