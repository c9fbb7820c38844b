"""`manage.py eval_sae <model> <sae>`: in-process evaluation with a progress bar."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from explorer.saes.models import SAEEvaluation


def eval_sae(*args: str) -> str:
    out = StringIO()
    call_command("eval_sae", *args, stdout=out)
    return out.getvalue()


def test_it_evaluates_stores_and_prints_the_metrics(demo_rows):
    out = eval_sae("demo", "demo", "--tokens", "1500")
    row = SAEEvaluation.objects.get()
    assert row.status == SAEEvaluation.Status.DONE
    assert "Evaluating demo/demo on demo:val (1,500 tokens)" in out
    for label in ("Loss recovered", "Explained variance", "L0", "KL divergence", "Dead features"):
        assert label in out
    assert f"{row.metrics['loss_recovered']:.2%}" in out
    assert "1,500/1,500 tokens" in out or "tokens ·" in out  # the progress bar's last line
    assert f"Evaluated demo/demo on {row.metrics['tokens']:,} tokens" in out


def test_an_unknown_sae_is_a_command_error(demo_rows):
    with pytest.raises(CommandError, match="No SAE demo/nope"):
        eval_sae("demo", "nope")
    assert not SAEEvaluation.objects.exists()


@pytest.mark.parametrize("tokens", ["0", "-5"])
def test_a_bad_token_count_is_a_command_error(demo_rows, tokens):
    with pytest.raises(CommandError, match="--tokens"):
        eval_sae("demo", "demo", "--tokens", tokens)
    assert not SAEEvaluation.objects.exists()


def test_an_unreadable_corpus_is_a_command_error(demo_rows, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        eval_sae("demo", "demo", "--corpus", str(tmp_path / "missing.txt"))
