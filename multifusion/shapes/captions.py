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

Frames: five for one object and five for two objects per language; with two objects, frames either name the
sides or list the left object first.
"""

from __future__ import annotations

import random

from .world import Scene, ShapeObject

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "it", "es")

# --- English ---------------------------------------------------------------------------------------------------


def _en(obj: ShapeObject, size: bool, case: str = "") -> str:
    words = ([obj.size] if size else []) + [obj.colour, obj.shape]
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


# --- German ----------------------------------------------------------------------------------------------------
_DE_NOUN = {"circle": ("Kreis", "m"), "square": ("Quadrat", "n"), "triangle": ("Dreieck", "n"), "star": ("Stern", "m"), "heart": ("Herz", "n")}
_DE_ADJ = {"red": "rot", "green": "grün", "blue": "blau", "yellow": "gelb", "purple": "lila", "orange": "orange",
           "black": "schwarz", "small": "klein", "large": "groß"}  # fmt: skip
_DE_INDECLINABLE = {"lila", "orange"}
_DE_ARTICLE = {("nom", "m"): "ein", ("nom", "n"): "ein", ("acc", "m"): "einen", ("acc", "n"): "ein", ("dat", "m"): "einem", ("dat", "n"): "einem"}
_DE_ENDING = {("nom", "m"): "er", ("nom", "n"): "es", ("acc", "m"): "en", ("acc", "n"): "es", ("dat", "m"): "en", ("dat", "n"): "en"}


def _de(obj: ShapeObject, size: bool, case: str = "nom") -> str:
    noun, gender = _DE_NOUN[obj.shape]
    adjectives = ([obj.size] if size else []) + [obj.colour]
    ending = _DE_ENDING[case, gender]
    inflected = [a if a in _DE_INDECLINABLE else a + ending for a in (_DE_ADJ[x] for x in adjectives)]
    return " ".join([_DE_ARTICLE[case, gender], *inflected, noun])


# --- French ----------------------------------------------------------------------------------------------------
_FR_NOUN = {"circle": ("cercle", "m"), "square": ("carré", "m"), "triangle": ("triangle", "m"), "star": ("étoile", "f"), "heart": ("cœur", "m")}
_FR_ADJ = {"red": ("rouge", "rouge"), "green": ("vert", "verte"), "blue": ("bleu", "bleue"), "yellow": ("jaune", "jaune"),
           "purple": ("violet", "violette"), "orange": ("orange", "orange"), "black": ("noir", "noire"),
           "small": ("petit", "petite"), "large": ("grand", "grande")}  # fmt: skip



# --- Italian ---------------------------------------------------------------------------------------------------
_IT_NOUN = {"circle": ("cerchio", "m"), "square": ("quadrato", "m"), "triangle": ("triangolo", "m"), "star": ("stella", "f"), "heart": ("cuore", "m")}
_IT_ADJ = {"red": ("rosso", "rossa"), "green": ("verde", "verde"), "blue": ("blu", "blu"), "yellow": ("giallo", "gialla"),
           "purple": ("viola", "viola"), "orange": ("arancione", "arancione"), "black": ("nero", "nera"),
           "small": ("piccolo", "piccola"), "large": ("grande", "grande")}  # fmt: skip



# --- Spanish ---------------------------------------------------------------------------------------------------
_ES_NOUN = {"circle": ("círculo", "m"), "square": ("cuadrado", "m"), "triangle": ("triángulo", "m"), "star": ("estrella", "f"), "heart": ("corazón", "m")}
_ES_ADJ = {"red": ("rojo", "roja"), "green": ("verde", "verde"), "blue": ("azul", "azul"), "yellow": ("amarillo", "amarilla"),
           "purple": ("morado", "morada"), "orange": ("naranja", "naranja"), "black": ("negro", "negra"),
           "small": ("pequeño", "pequeña"), "large": ("gran", "gran")}  # fmt: skip



def _romance(nouns: dict, adjectives: dict, articles: tuple[str, str]):
    """French, Italian and Spanish: article by gender, size before the noun, colour after it, all agreeing.

    (Italian needs no "uno"/"un'": none of these nouns or size words starts with s+consonant, z or a vowel.)
    """

    def phrase(obj: ShapeObject, size: bool, case: str = "") -> str:
        noun, gender = nouns[obj.shape]
        form = 0 if gender == "m" else 1
        words = [articles[form], *([adjectives[obj.size][form]] if size else []), noun, adjectives[obj.colour][form]]
        return " ".join(words)

    return phrase


# --- frames ----------------------------------------------------------------------------------------------------
# {a}, {b}: noun phrases of the (left, right) objects; a case suffix (:acc, :dat) asks German for that case.
_ONE = {
    "en": ["{a}", "a picture of {a}", "{a} on a plain background", "there is {a}", "an image showing {a}"],
    "de": ["{a}", "ein Bild von {a:dat}", "{a} auf hellem Hintergrund", "hier ist {a}", "das Bild zeigt {a:acc}"],
    "fr": ["{a}", "une image d'{a}", "{a} sur un fond clair", "il y a {a}", "une photo montrant {a}"],
    "it": ["{a}", "un'immagine di {a}", "{a} su sfondo chiaro", "c'è {a}", "una foto che mostra {a}"],
    "es": ["{a}", "una imagen de {a}", "{a} sobre un fondo claro", "hay {a}", "una foto que muestra {a}"],
}
_TWO = {
    "en": ["{a} and {b}", "{a} on the left and {b} on the right", "a picture of {a} and {b}", "there are {a} and {b}",
           "{b} on the right and {a} on the left"],
    "de": ["{a} und {b}", "{a} links und {b} rechts", "ein Bild von {a:dat} und {b:dat}", "das Bild zeigt {a:acc} und {b:acc}",
           "{b} rechts und {a} links"],
    "fr": ["{a} et {b}", "{a} à gauche et {b} à droite", "une image d'{a} et d'{b}", "il y a {a} et {b}",
           "{b} à droite et {a} à gauche"],
    "it": ["{a} e {b}", "{a} a sinistra e {b} a destra", "un'immagine di {a} e {b}", "ci sono {a} e {b}",
           "{b} a destra e {a} a sinistra"],
    "es": ["{a} y {b}", "{a} a la izquierda y {b} a la derecha", "una imagen de {a} y {b}", "hay {a} y {b}",
           "{b} a la derecha y {a} a la izquierda"],
}  # fmt: skip
_PHRASE = {
    "en": _en,
    "de": _de,
    "fr": _romance(_FR_NOUN, _FR_ADJ, ("un", "une")),
    "it": _romance(_IT_NOUN, _IT_ADJ, ("un", "una")),
    "es": _romance(_ES_NOUN, _ES_ADJ, ("un", "una")),
}
N_FRAMES = 5


def noun_phrase(obj: ShapeObject, lang: str, mention_size: bool = False, case: str = "nom") -> str:
    """"a red circle" / "ein roter Kreis" / ...; `case` (nom, acc, dat) matters only in German."""
    return _PHRASE[lang](obj, mention_size, case)


def caption(scene: Scene, lang: str, frame: int = 0, mention_size: bool = False) -> str:
    """The scene's caption in `lang` with sentence frame `frame` (0..N_FRAMES-1); frame 0 is the bare phrase."""
    if lang not in _PHRASE:
        raise ValueError(f"unknown language {lang!r}; expected one of {', '.join(LANGUAGES)}")
    frames = _ONE if len(scene.objects) == 1 else _TWO
    template = frames[lang][frame]
    for key, obj in zip("ab", scene.objects):
        for case in ("acc", "dat"):
            template = template.replace(f"{{{key}:{case}}}", noun_phrase(obj, lang, mention_size, case))
        template = template.replace(f"{{{key}}}", noun_phrase(obj, lang, mention_size))
    return template


def random_caption(scene: Scene, lang: str, rng: random.Random) -> str:
    return caption(scene, lang, rng.randrange(N_FRAMES), rng.random() < 0.5)
