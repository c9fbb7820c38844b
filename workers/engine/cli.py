"""Command line for the engine, usable without the web stack.

    python -m workers.engine steer --model demo --sae demo --prompt "The city" \\
        --feature 12:8 --feature 40:0:ablate --seed 0 --max-new-tokens 24
    python -m workers.engine activations --model demo --sae demo --text "The city" --top 5

`--model` takes ``demo``, a local Hugging Face directory or a hub id; `--sae` takes ``demo``,
a local SAELens folder or ``release:sae_id``. Output is one JSON object on stdout. Bad input
(a corrupt or mismatched model or SAE file included) prints one line, ``error: <message>``, on
stderr and exits with status 2 (no traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2
# MODE in --feature: a registered mode, or ablate-<zero|mean|resample>
FEATURE_HELP = (
    "INDEX:STRENGTH[:MODE], MODE one of add (default), clamp, logit, ablate[-mean|-resample]"
)


class BadInput(ValueError):
    pass


def parse_feature(text: str) -> Any:
    """``"12:8.5"`` -> Intervention(12, 8.5, "add"); ``"3:0:ablate-mean"`` -> mean ablation."""
    from workers.engine.specs import Intervention

    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise BadInput(f"--feature {text!r}: expected {FEATURE_HELP}")
    try:
        index, strength = int(parts[0]), float(parts[1])
    except ValueError:
        raise BadInput(
            f"--feature {text!r}: INDEX must be an integer and STRENGTH a number"
        ) from None
    mode, _, ablation = (parts[2] if len(parts) == 3 else "add").partition("-")
    try:
        return Intervention(index, strength, mode, ablation or "zero")
    except ValueError as e:
        raise BadInput(f"--feature {text!r}: {e}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workers.engine", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", default="demo", help="demo | HF directory | hub id")
        sp.add_argument("--sae", default="demo", help="demo | SAELens folder | release:sae_id")
        sp.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA if any)")
        sp.add_argument("--dtype", default=None, help="fp32 | bf16 | fp16")
        sp.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")

    st = sub.add_parser("steer", help="default and steered continuation of a prompt")
    common(st)
    st.add_argument("--prompt", required=True)
    st.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="INDEX:STRENGTH[:MODE]",
        help=FEATURE_HELP + " (repeatable)",
    )
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--max-new-tokens", type=int, default=32)
    st.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    st.add_argument("--top-p", type=float, default=1.0)
    st.add_argument("--positions", default="all", choices=["all", "prompt", "generated"])

    ac = sub.add_parser("activations", help="top SAE features of each token of a text")
    common(ac)
    ac.add_argument("--text", required=True)
    ac.add_argument("--top", type=int, default=5)
    return p


def _attach(args: argparse.Namespace) -> Any:
    from transformers.utils import logging as hf_logging

    from workers.engine.loading import attach_sae, load_model, load_sae

    if not args.verbose:  # stderr is for errors; the weight-loading bar and report are noise
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

    lm = load_model(args.model, device=args.device, dtype=args.dtype)
    sae = load_sae(args.sae, device=str(lm.device))
    return attach_sae(lm, sae)


def _steer(args: argparse.Namespace) -> dict[str, Any]:
    from workers.engine.generation import generate
    from workers.engine.specs import SteerSpec

    # Validate everything that needs no model before loading one.
    spec = SteerSpec(
        interventions=tuple(parse_feature(f) for f in args.feature),
        positions=args.positions,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
    )
    if not args.prompt.strip():
        raise BadInput("prompt is empty")
    att = _attach(args)
    result = generate(att, args.prompt, spec)
    return {**result.to_dict(), "seed": result.seed, "spec": spec.to_dict()}


def _activations(args: argparse.Namespace) -> dict[str, Any]:
    from workers.engine.activations import feature_activations

    if args.top < 1:
        raise BadInput(f"--top must be >= 1, got {args.top}")
    if not args.text:
        raise BadInput("text is empty")
    att = _attach(args)
    (row,) = feature_activations(att, args.text)
    vals, idx = row.values.topk(min(args.top, att.d_sae), dim=-1)  # [pos, k]
    tokens = [
        {
            "token": tok,
            "id": tid,
            "is_bos": bos,
            "features": [
                {"index": int(f), "value": float(v)}
                for f, v in zip(idx[p], vals[p], strict=True)
                if v > 0
            ],
        }
        for p, (tok, tid, bos) in enumerate(zip(row.tokens, row.token_ids, row.is_bos, strict=True))
    ]
    return {"hook_name": att.hook_name, "d_sae": att.d_sae, "tokens": tokens}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)  # argparse itself exits 2 on malformed arguments
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    run = {"steer": _steer, "activations": _activations}[args.command]
    try:
        out = run(args)
    except (ValueError, OSError) as e:  # bad specs, missing or corrupt files, unknown hub ids
        message = " ".join(str(e).split())  # one line, whatever the library wrote
        sys.stderr.write(f"error: {message}\n")
        return EXIT_BAD_INPUT
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    return 0
