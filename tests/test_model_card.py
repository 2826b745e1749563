"""What a model declares about itself: the shipped card, the vocabulary notice, and cards that say nothing."""

from multifusion.model_card import ModelCard
from multifusion.runtime import DEFAULT_MODEL
from multifusion.shapes.vocabulary import shapes_vocabulary
from ui import handlers
from ui.handlers import Studio


def test_the_shipped_model_declares_what_it_draws_and_every_word_it_knows():
    card = ModelCard.load(DEFAULT_MODEL)
    assert "circle" in card.draws and card.languages == ("en", "de", "fr", "it", "es")
    assert card.vocabulary == shapes_vocabulary()  # vocabulary.txt is the shapes world's, not a stale copy
    assert card.unknown_words(["Zeichne einen kleinen roten Kreis links, bitte!", "un cœur vert à droite"]) == []
    assert card.unknown_words(["a cat on a sofa, oil painting", "a red circle 3"]) == ["cat", "sofa", "oil", "painting"]


def test_a_model_without_a_card_or_with_a_broken_one_declares_nothing(tmp_path):
    assert ModelCard.load(tmp_path) == ModelCard() and ModelCard.load(tmp_path / "missing") == ModelCard()
    (tmp_path / "README.md").write_text("---\nmultifusion: [unclosed\n---\n# card\n")
    assert ModelCard.load(tmp_path) == ModelCard()
    assert ModelCard().unknown_words(["anything at all"]) == []  # no vocabulary: no notice


def test_the_notice_names_unknown_words_gently_and_escapes_them(tmp_path):
    card = ModelCard("flat shapes", ("en",), frozenset({"a", "red", "circle"}))
    studio = Studio(runtime=None, model_name="m", card=card, work_dir=tmp_path)
    assert handlers.vocabulary_notice(studio, {"segments": [{"type": "text", "text": "a red circle"}]}) == ""
    notice = handlers.vocabulary_notice(studio, {"segments": [{"type": "text", "text": "a <b>cat</b>"}, {"type": "image", "path": "x"}]})
    assert "“b”, “cat”" in notice and "flat shapes" in notice and "<b>" not in notice
    assert handlers.vocabulary_notice(studio, "not a composition") == ""
