"""`python -m workers.engine steer|activations`: JSON on stdout, exit 2 + message on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.builders import build_sae, damage
from workers.engine.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_sae_dir(tmp_path_factory, _tiny_lm_cached) -> Path:
    path = tmp_path_factory.mktemp("tiny_sae")
    build_sae(_tiny_lm_cached.d_model).save_model(path)
    return path


@pytest.fixture
def models(tiny_model_dir, tiny_sae_dir) -> list[str]:
    return ["--model", str(tiny_model_dir), "--sae", str(tiny_sae_dir), "--device", "cpu"]


def run_main(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_steer_prints_default_and_steered_text_and_tokens(capsys, models):
    code, out, _ = run_main(
        capsys,
        [
            "steer",
            *models,
            "--prompt",
            "The cat",
            "--feature",
            "3:6",
            "--feature",
            "5:2:clamp",
            "--seed",
            "1",
            "--max-new-tokens",
            "5",
            "--temperature",
            "0.8",
        ],
    )
    assert code == 0
    result = json.loads(out)
    for row in ("default", "steered"):
        assert set(result[row]) == {"text", "tokens"}
        assert len(result[row]["tokens"]) <= 5
    assert result["seed"] == 1
    assert [i["mode"] for i in result["spec"]["interventions"]] == ["add", "clamp"]


def test_steer_is_reproducible_for_a_seed(capsys, models):
    argv = [
        "steer",
        *models,
        "--prompt",
        "The cat",
        "--feature",
        "3:6",
        "--seed",
        "4",
        "--max-new-tokens",
        "6",
        "--temperature",
        "1.0",
        "--top-p",
        "0.9",
        "--positions",
        "generated",
    ]
    assert run_main(capsys, argv)[1] == run_main(capsys, argv)[1]


def test_activations_prints_each_token_with_its_top_features(capsys, models):
    code, out, _ = run_main(capsys, ["activations", *models, "--text", "The cat sat", "--top", "3"])
    assert code == 0
    result = json.loads(out)
    assert result["d_sae"] == 64
    assert result["tokens"][0]["is_bos"] is True
    for token in result["tokens"]:
        values = [f["value"] for f in token["features"]]
        assert len(values) <= 3 and values == sorted(values, reverse=True)
        assert all(0 <= f["index"] < 64 for f in token["features"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--feature", "64:1"], "d_sae=64"),
        (["--feature", "3:nan"], "strength must be finite"),
        (["--feature", "3"], "expected INDEX:STRENGTH"),
        (["--feature", "3:1:boost"], "mode must be one of add, clamp, ablate, logit, vector"),
        (["--feature", "3:1:ablate-mean"], "needs FeatureStats.mean"),
        (["--max-new-tokens", "0"], "max_new_tokens must be between 1 and"),
    ],
)
def test_bad_steer_input_exits_2_with_a_message(capsys, models, args, message):
    code, out, err = run_main(capsys, ["steer", *models, "--prompt", "The cat", *args])
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_an_empty_prompt_and_a_missing_sae_folder_exit_2(capsys, models, tmp_path):
    code, _, err = run_main(capsys, ["steer", *models, "--prompt", " "])
    assert code == 2 and "prompt is empty" in err
    code, _, err = run_main(
        capsys,
        ["activations", "--model", models[1], "--sae", str(tmp_path / "nope"), "--text", "hi"],
    )
    assert code == 2 and "SAE spec" in err


@pytest.fixture
def broken(tmp_path, tiny_model_dir, tiny_sae_dir):
    """Copies of the tiny model and SAE folders, for a test to damage."""
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    sae = Path(shutil.copytree(tiny_sae_dir, tmp_path / "sae"))
    return model, sae


def one_error_line(err: str) -> str:
    """The message of an stderr that is exactly one line starting `error: `."""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


@pytest.mark.parametrize(
    ("which", "file", "how", "cfg", "message"),
    [
        ("sae", "sae_weights.safetensors", "truncate", {}, "is not a readable safetensors file"),
        ("sae", "sae_weights.safetensors", "random", {}, "is not a readable safetensors file"),
        ("sae", "sae_weights.safetensors", "delete", {}, "sae_weights.safetensors is missing"),
        ("sae", "cfg.json", "not-json", {}, "cfg.json is not valid JSON"),
        ("sae", "cfg.json", "edit", {"d_in": 48}, "W_enc has shape [32, 64], but cfg.json says"),
        ("sae", "cfg.json", "edit", {"d_sae": 65}, "so it must be [32, 65]"),
        ("model", "model.safetensors", "truncate", {}, "is not a readable safetensors file"),
        ("model", "config.json", "not-json", {}, "config.json is not valid JSON"),
        ("model", "config.json", "edit", {"n_layer": 3}, "the weights lack 12 parameter(s)"),
    ],
)
def test_a_corrupt_or_mismatched_file_exits_2_with_one_error_line(
    capsys, broken, which, file, how, cfg, message
):
    model, sae = broken
    damage((sae if which == "sae" else model) / file, how, **cfg)
    argv = ["activations", "--model", str(model), "--sae", str(sae), "--device", "cpu"]

    code, out, err = run_main(capsys, [*argv, "--text", "The cat"])

    assert code == 2 and out == ""
    assert message in one_error_line(err)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("which", "file", "how", "cfg", "message"),
    [
        (
            "sae",
            "sae_weights.safetensors",
            "truncate",
            {},
            (
                "{sae}/sae_weights.safetensors is not a readable safetensors file (truncated or "
                "corrupt?): Error while deserializing header: incomplete metadata, file not fully "
                "covered"
            ),
        ),
        (
            "model",
            "config.json",
            "edit",
            {"n_layer": 3},
            (
                "{model}: the weights lack 12 parameter(s) that config.json needs: "
                "transformer.h.2.attn.c_attn.bias, transformer.h.2.attn.c_attn.weight, "
                "transformer.h.2.attn.c_proj.bias and 9 more"
            ),
        ),
    ],
    ids=["truncated-sae", "model-missing-layers"],
)
def test_python_dash_m_reports_a_broken_file_in_one_line(broken, which, file, how, cfg, message):
    """The real process: nothing else on stderr (no loading report, warning or traceback)."""
    model, sae = broken
    damage((sae if which == "sae" else model) / file, how, **cfg)
    result = subprocess.run(
        [sys.executable, "-m", "workers.engine", "activations", "--model", str(model)]
        + ["--sae", str(sae), "--text", "The cat", "--device", "cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2 and result.stdout == ""
    assert one_error_line(result.stderr) == message.format(model=model, sae=sae)


@pytest.mark.slow
def test_python_dash_m_runs_the_cli_and_reports_bad_input_without_a_traceback(models):
    """One real process (imports torch: ~10 s on a busy machine); in-process tests cover the
    rest of the CLI."""
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.engine",
            "steer",
            *models,
            "--prompt",
            "The cat",
            "--feature",
            "999:1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "d_sae=64" in bad.stderr and "Traceback" not in bad.stderr
