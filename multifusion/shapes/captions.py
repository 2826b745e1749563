"""Captions of shapes-world scenes in English, German, French, Italian and Spanish.

Each language builds its noun phrase with its own grammar:
- en: "a"/"an" by the next sound; size before colour ("a large orange star").
- de: gender (Kreis, Stern m; Quadrat, Dreieck, Herz n) and case (nominative, accusative, dative) drive the
  article and the mixed adjective declension ("ein großer roter Kreis", "einem kleinen roten Herz"); "lila" and
  "orange" are indeclinable, as the Duden has them ("ein lila Stern").
- fr: gender (étoile f, the rest m) drives article and agreement; size precedes the noun, colour follows it
  ("un petit cercle rouge", "une grande étoile violette"); "orange" is invariable; "de un" elides to "d'un".
- it: gender (stella f); size precedes the noun ("un piccolo cerchio rosso", "una grande stella blu"); "blu" and
  "viola" are invariable, "verde", "arancione" and "grande" have one form for both genders.
- es: gender (estrella f); "grande" shortens to "gran" before a singular noun ("una gran estrella roja");
  "naranja" is invariable.

The colour comes in three forms (`COLOUR_FORMS`): as an adjective ("a red circle"), as a noun after "in" ("a
circle in red", "ein Kreis in Rot", "un cercle en rouge"), or named as a colour ("a circle coloured red", "ein
Kreis in der Farbe Rot", "un cercle de couleur rouge", "un cerchio di colore rosso", "un círculo de color rojo");
the noun forms use the colour noun (German capitalises it; Romance uses the masculine, agreeing with
couleur/colore/color or standing alone).

Terse phrases (`terse_phrase`) are how people type tags: no article, in the language's order ("large blue star",
"großer blauer Stern" with German's strong declension, "grande étoile bleue", "stella blu", "gran estrella azul"),
or in tag order ("star, blue, large", "Stern, blau, groß", "étoile, bleue, grande", "estrella, azul, grande").
`terse_caption` fills the terse forms of `frames.py` and types them in one of `CASINGS`.

Sentence frames, split into training and held-out frames, are in `frames.py`; `random_caption` also varies casing
and end punctuation, for two objects may name the second object in another language (a mixed-language prompt), and
is terse for a share `terse_share` of captions. `loosely_joined` joins two objects by filler words, a training
augmentation for phrasings no frame has.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from .frames import HELD_OUT_ONE, HELD_OUT_TWO, TRAIN_ONE, TRAIN_TWO, composed_two, terse_forms
from .world import Scene, ShapeObject

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "it", "es")

# --- colour nouns ----------------------------------------------------------------------------------------------
_COLOUR_NOUN = {
    "en": {c: c for c in ("red", "green", "blue", "yellow", "purple", "orange", "black")},
    "de": {"red": "Rot", "green": "Grün", "blue": "Blau", "yellow": "Gelb", "purple": "Lila", "orange": "Orange", "black": "Schwarz"},
    "fr": {"red": "rouge", "green": "vert", "blue": "bleu", "yellow": "jaune", "purple": "violet", "orange": "orange", "black": "noir"},
    "it": {"red": "rosso", "green": "verde", "blue": "blu", "yellow": "giallo", "purple": "viola", "orange": "arancione", "black": "nero"},
    "es": {"red": "rojo", "green": "verde", "blue": "azul", "yellow": "amarillo", "purple": "morado", "orange": "naranja", "black": "negro"},
}  # fmt: skip
_COLOUR_AFTER = {  # colour form -> the words that put the colour noun after the noun
    "in": {"en": "in", "de": "in", "fr": "en", "it": "in", "es": "en"},
    "named": {"en": "coloured", "de": "in der Farbe", "fr": "de couleur", "it": "di colore", "es": "de color"},
}
COLOUR_FORMS: tuple[str, ...] = ("adjective", "in", "named")


# --- English ---------------------------------------------------------------------------------------------------


def _en(obj: ShapeObject, size: bool, case: str, adjective_colour: bool, one: bool) -> str:
    words = ([obj.size] if size else []) + ([obj.colour] if adjective_colour else []) + [obj.shape]
    if one:
        return "one " + " ".join(words)
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


# --- German ----------------------------------------------------------------------------------------------------
_DE_NOUN = {"circle": ("Kreis", "m"), "square": ("Quadrat", "n"), "triangle": ("Dreieck", "n"), "star": ("Stern", "m"), "heart": ("Herz", "n")}
_DE_ADJ = {"red": "rot", "green": "grün", "blue": "blau", "yellow": "gelb", "purple": "lila", "orange": "orange",
           "black": "schwarz", "small": "klein", "large": "groß"}  # fmt: skip
_DE_INDECLINABLE = {"lila", "orange"}
_DE_ARTICLE = {("nom", "m"): "ein", ("nom", "n"): "ein", ("acc", "m"): "einen", ("acc", "n"): "ein", ("dat", "m"): "einem", ("dat", "n"): "einem"}
_DE_ENDING = {("nom", "m"): "er", ("nom", "n"): "es", ("acc", "m"): "en", ("acc", "n"): "es", ("dat", "m"): "en", ("dat", "n"): "en"}


def _de(obj: ShapeObject, size: bool, case: str, adjective_colour: bool, one: bool) -> str:
    """German has no "one" form of its own ("ein" is both): frames say "nur" instead."""
    noun, gender = _DE_NOUN[obj.shape]
    adjectives = ([obj.size] if size else []) + ([obj.colour] if adjective_colour else [])
    ending = _DE_ENDING[case or "nom", gender]
    inflected = [a if a in _DE_INDECLINABLE else a + ending for a in (_DE_ADJ[x] for x in adjectives)]
    return " ".join([_DE_ARTICLE[case or "nom", gender], *inflected, noun])


# --- French, Italian, Spanish ----------------------------------------------------------------------------------
_FR_NOUN = {"circle": ("cercle", "m"), "square": ("carré", "m"), "triangle": ("triangle", "m"), "star": ("étoile", "f"), "heart": ("cœur", "m")}
_FR_ADJ = {"red": ("rouge", "rouge"), "green": ("vert", "verte"), "blue": ("bleu", "bleue"), "yellow": ("jaune", "jaune"),
           "purple": ("violet", "violette"), "orange": ("orange", "orange"), "black": ("noir", "noire"),
           "small": ("petit", "petite"), "large": ("grand", "grande"), "one": ("seul", "seule")}  # fmt: skip
_IT_NOUN = {"circle": ("cerchio", "m"), "square": ("quadrato", "m"), "triangle": ("triangolo", "m"), "star": ("stella", "f"), "heart": ("cuore", "m")}
_IT_ADJ = {"red": ("rosso", "rossa"), "green": ("verde", "verde"), "blue": ("blu", "blu"), "yellow": ("giallo", "gialla"),
           "purple": ("viola", "viola"), "orange": ("arancione", "arancione"), "black": ("nero", "nera"),
           "small": ("piccolo", "piccola"), "large": ("grande", "grande"), "one": ("solo", "sola")}  # fmt: skip
_ES_NOUN = {"circle": ("círculo", "m"), "square": ("cuadrado", "m"), "triangle": ("triángulo", "m"), "star": ("estrella", "f"), "heart": ("corazón", "m")}
_ES_ADJ = {"red": ("rojo", "roja"), "green": ("verde", "verde"), "blue": ("azul", "azul"), "yellow": ("amarillo", "amarilla"),
           "purple": ("morado", "morada"), "orange": ("naranja", "naranja"), "black": ("negro", "negra"),
           "small": ("pequeño", "pequeña"), "large": ("gran", "gran"), "one": ("solo", "sola")}  # fmt: skip


def _romance(nouns: dict, adjectives: dict, articles: tuple[str, str]):
    """French, Italian and Spanish: article by gender, "only one" and size before the noun, colour after it, all
    agreeing ("un seul petit cercle rouge", "una sola piccola stella rossa").

    (Italian needs no "uno"/"un'": none of these nouns or size words starts with s+consonant, z or a vowel.)
    """

    def phrase(obj: ShapeObject, size: bool, case: str, adjective_colour: bool, one: bool) -> str:
        noun, gender = nouns[obj.shape]
        form = 0 if gender == "m" else 1
        before = [adjectives[w][form] for w in (["one"] if one else []) + ([obj.size] if size else [])]
        return " ".join([articles[form], *before, noun, *([adjectives[obj.colour][form]] if adjective_colour else [])])

    return phrase


_PHRASE = {
    "en": _en,
    "de": _de,
    "fr": _romance(_FR_NOUN, _FR_ADJ, ("un", "une")),
    "it": _romance(_IT_NOUN, _IT_ADJ, ("un", "una")),
    "es": _romance(_ES_NOUN, _ES_ADJ, ("un", "una")),
}


# --- terse phrases -------------------------------------------------------------------------------------------
_DE_STRONG = {("nom", "m"): "er", ("nom", "n"): "es", ("dat", "m"): "em", ("dat", "n"): "em"}
_SIZE_AFTER = {"es": {"large": ("grande", "grande")}}  # predicative size where it differs from the prenominal one


def terse_phrase(obj: ShapeObject, lang: str, mention_size: bool = False, tag_order: bool = False, case: str = "nom") -> str:
    """"blue star" / "blauer Stern" / "étoile bleue" ...: the object without an article; with `tag_order`, noun
    first and the attributes after it as tags ("star, blue, large"). `case` (nom, dat) matters only in German."""
    if lang == "en":
        attributes = ([obj.size] if mention_size else []) + [obj.colour]
        return ", ".join([obj.shape, *attributes[::-1]]) if tag_order else " ".join([*attributes, obj.shape])
    if lang == "de":
        noun, gender = _DE_NOUN[obj.shape]
        adjectives = [_DE_ADJ[a] for a in ([obj.size] if mention_size else []) + [obj.colour]]
        if tag_order:
            return ", ".join([noun, *adjectives[::-1]])
        ending = _DE_STRONG[case, gender]
        return " ".join([*(a if a in _DE_INDECLINABLE else a + ending for a in adjectives), noun])
    nouns, adjectives = {"fr": (_FR_NOUN, _FR_ADJ), "it": (_IT_NOUN, _IT_ADJ), "es": (_ES_NOUN, _ES_ADJ)}[lang]
    noun, gender = nouns[obj.shape]
    form = 0 if gender == "m" else 1
    colour = adjectives[obj.colour][form]
    if tag_order:
        size = _SIZE_AFTER.get(lang, {}).get(obj.size, adjectives[obj.size])[form]
        return ", ".join([noun, colour, *([size] if mention_size else [])])
    return " ".join([*([adjectives[obj.size][form]] if mention_size else []), noun, colour])


CASINGS: tuple[str, ...] = ("lower", "capitalised", "title", "upper")


def typed(text: str, casing: str) -> str:
    """`text` in a casing people type tags in: "blue star", "Blue star", "Blue Star", "BLUE STAR"."""
    if casing == "capitalised":
        return text[:1].upper() + text[1:]
    if casing == "title":
        return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))
    if casing == "upper":
        return text.upper()
    return text


def fill_terse(template: str, scene: Scene, langs: tuple[str, ...], mention_size: bool = False) -> str:
    """Put the scene's terse phrases into a terse form; object i is phrased in `langs[i]` (the last one repeats)."""
    for index, (key, obj) in enumerate(zip("ab", scene.objects)):
        lang = langs[min(index, len(langs) - 1)]
        for modifier, kwargs in (("tag", {"tag_order": True}), ("dat", {"case": "dat"}), ("", {})):
            slot = f"{{{key}:{modifier}}}" if modifier else f"{{{key}}}"
            if slot in template:
                template = template.replace(slot, terse_phrase(obj, lang, mention_size, **kwargs))
    return template


def terse_caption(scene: Scene, lang: str, rng: random.Random, split: str = "train", mixed_prob: float = 0.1) -> str:
    """A terse form of `split` filled with the scene's objects, typed in a random casing, sometimes with an end
    mark; with two objects the second is named in another language with probability `mixed_prob`."""
    langs = (lang,)
    if len(scene.objects) == 2 and rng.random() < mixed_prob:
        langs = (lang, rng.choice([other for other in LANGUAGES if other != lang]))
    text = fill_terse(rng.choice(terse_forms(len(scene.objects), lang, split)), scene, langs, rng.random() < 0.3)
    text = typed(text, rng.choices(CASINGS, weights=(5, 3, 1, 1))[0])
    return text + rng.choice(("", "", "", ".", "!", ","))


N_FRAMES = 5  # the original frames: the first five training frames of each language


def noun_phrase(obj: ShapeObject, lang: str, mention_size: bool = False, case: str = "nom", colour_form: str = "adjective",
                one: bool = False) -> str:  # fmt: skip
    """"a red circle" / "ein roter Kreis" / ...; `case` (nom, acc, dat) matters only in German; `colour_form` is
    one of `COLOUR_FORMS`; `one` asks for "only one" where the language has a form for it (en, fr, it, es)."""
    if colour_form not in COLOUR_FORMS:
        raise ValueError(f"unknown colour form {colour_form!r}; expected one of {', '.join(COLOUR_FORMS)}")
    phrase = _PHRASE[lang](obj, mention_size, case, colour_form == "adjective", one)
    if colour_form == "adjective":
        return phrase
    return f"{phrase} {_COLOUR_AFTER[colour_form][lang]} {_COLOUR_NOUN[lang][obj.colour]}"


# the listed two-object training frames first (the original five lead), then the composed ones they lack
_TRAIN_TWO = {lang: listed + [f for f in composed_two(lang) if f not in listed] for lang, listed in TRAIN_TWO.items()}


def frames(n_objects: int, lang: str, split: str = "train") -> list[str]:
    """The sentence frames for scenes of `n_objects` in `lang`; `split` is "train" or "held_out"."""
    if lang not in _PHRASE:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    table = {("train", 1): TRAIN_ONE, ("train", 2): _TRAIN_TWO, ("held_out", 1): HELD_OUT_ONE, ("held_out", 2): HELD_OUT_TWO}
    return table[split, n_objects][lang]



def fill(template: str, scene: Scene, langs: tuple[str, ...], mention_size: bool = False, colour_form: str = "adjective") -> str:
    """Put the scene's noun phrases into a frame; object i is phrased in `langs[i]` (the last one repeats)."""
    for index, (key, obj) in enumerate(zip("ab", scene.objects)):
        lang = langs[min(index, len(langs) - 1)]
        for modifier, kwargs in (("acc", {"case": "acc"}), ("dat", {"case": "dat"}), ("one", {"one": True}), ("", {})):
            slot = f"{{{key}:{modifier}}}" if modifier else f"{{{key}}}"
            if slot in template:
                template = template.replace(slot, noun_phrase(obj, lang, mention_size, colour_form=colour_form, **kwargs))
    return template


def caption(scene: Scene, lang: str, frame: int = 0, mention_size: bool = False, split: str = "train",
            colour_form: str = "adjective") -> str:  # fmt: skip
    """The scene's caption in `lang` with sentence frame `frame` of `split`; training frame 0 is the bare phrase
    and frames 0..N_FRAMES-1 are the original five."""
    return fill(frames(len(scene.objects), lang, split)[frame], scene, (lang,), mention_size, colour_form)


def decorate(text: str, rng: random.Random) -> str:
    """Casing and end punctuation as people type them: "Draw a red circle." / "a red circle!" / "¿Puedes ...?"."""
    if rng.random() < 0.3:
        start = 1 if text.startswith("¿") else 0
        text = text[:start] + text[start : start + 1].upper() + text[start + 1 :]
    if not text.endswith("?") and rng.random() < 0.3:
        text += rng.choice((".", "!", " ."))
    return text


def fill_at_random(template: str, scene: Scene, langs: tuple[str, ...], rng: random.Random) -> str:
    """`fill` with a random size mention and colour form, then `decorate`d: a frame as people phrase it (what the
    training stages, `multifusion eval`'s paraphrase benchmark and `recipe.sides` read)."""
    return decorate(fill(template, scene, langs, rng.random() < 0.5, rng.choice(COLOUR_FORMS)), rng)


def random_caption(scene: Scene, lang: str, rng: random.Random, split: str = "train", mixed_prob: float = 0.1,
                   terse_share: float = 0.0) -> str:
    """A caption from a random frame of `split`, colour form and size mention, decorated; with two objects the
    second is named in another language with probability `mixed_prob`. A share `terse_share` is terse instead
    (`terse_caption`); at 0 no random number is drawn for it, so the stream is that of the grammar before terse forms."""
    if terse_share and rng.random() < terse_share:
        return terse_caption(scene, lang, rng, split, mixed_prob)
    templates = frames(len(scene.objects), lang, split)
    langs = (lang,)
    if len(scene.objects) == 2 and rng.random() < mixed_prob:
        langs = (lang, rng.choice([other for other in LANGUAGES if other != lang]))
    return fill_at_random(rng.choice(templates), scene, langs, rng)


_SIDE_WORDS = {"en": ("left", "right"), "de": ("links", "rechts"), "fr": ("gauche", "droite"), "it": ("sinistra", "destra"),
               "es": ("izquierda", "derecha")}  # fmt: skip


@lru_cache(maxsize=None)
def _filler_words(lang: str) -> tuple[str, ...]:
    """The words of `lang`'s two-object training frames, without their slots and without the side words."""
    words = set()
    for frame in frames(2, lang):
        for word in re.sub(r"\{[ab](?::\w+)?\}", " ", frame).split():
            word = word.strip(",;:.!?¿")
            if word and word.lower() not in _SIDE_WORDS[lang]:
                words.add(word)
    return tuple(sorted(words))


def loosely_joined(scene: Scene, lang: str, rng: random.Random) -> str:
    """A two-object scene's objects, left one first, joined (and maybe preceded) by one to three filler words of
    `lang` in no grammatical order: read as "left object, right object", it teaches an encoder to keep both
    objects whatever words a person puts around them (an augmentation, not a frame: no split holds it)."""
    if len(scene.objects) != 2:
        raise ValueError("loosely_joined takes a two-object scene")
    filler = lambda: " ".join(rng.choices(_filler_words(lang), k=rng.randint(1, 3)))  # noqa: E731
    form, size = rng.choice(COLOUR_FORMS), rng.random() < 0.5
    a, b = (noun_phrase(obj, lang, size, colour_form=form) for obj in scene.objects)
    return decorate(f"{filler() + ' ' if rng.random() < 0.3 else ''}{a} {filler()} {b}", rng)
