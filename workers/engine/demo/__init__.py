"""The demo model: a small GPT-2 trained from scratch on English text, and an SAE on it.

The committed checkpoint lives in `checkpoint/` (`model/` is a Hugging Face GPT-2
directory with its tokenizer, `sae/` is a SAELens folder). `train.py` runs the seeded
recipe that produced it: settings in `recipe.py`, tokenizer and language model in `lm.py`,
the SAE in `sae.py`; `corpus.py` reads the training text.
"""

from pathlib import Path

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoint"
MODEL_DIR = CHECKPOINT_DIR / "model"
SAE_DIR = CHECKPOINT_DIR / "sae"

# A latent of the committed SAE whose steering visibly changes generations (README.md beside
# this file): it fires on " they" and pulls the text towards public affairs ("the United
# States", "local administration"). Retraining the checkpoint means choosing it again.
STEERING_FEATURE = 574

__all__ = ["CHECKPOINT_DIR", "MODEL_DIR", "SAE_DIR", "STEERING_FEATURE"]
