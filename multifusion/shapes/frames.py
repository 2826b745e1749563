"""Sentence frames of shapes-world captions, per language, split into *training* and *held-out* frames.

A frame is a sentence with slots: `{a}` and `{b}` are the noun phrases of the (left, right) objects; modifiers
after a colon ask for a German case (`{a:acc}`, `{a:dat}`) or for "only one" (`{a:one}`: "one red circle",
"un seul cercle rouge", "un solo cerchio rosso"; German says "nur" in the frame instead).

Training frames are what every training stage reads (tokenizer, LM, alignment, re-alignment). Held-out frames
are read by `multifusion eval`'s `paraphrase` benchmark only: they are new sentence structures built from words
the training frames use elsewhere (imperatives, requests, sides named first or in the other order, filler words),
the way a person phrases a prompt the model never saw. `tests/test_shapes.py` asserts that no held-out frame ever
appears in the training corpus. The first five training frames per language are the original frames (stage 2,
the English-conditioned U-Net, reads its English ones; `caption(scene, lang, frame)` indexes them).
"""

from __future__ import annotations

import re

TRAIN_ONE: dict[str, list[str]] = {
    "en": ["{a}", "a picture of {a}", "{a} on a plain background", "there is {a}", "an image showing {a}",
           "draw {a}", "please draw {a}", "show me {a}", "I want {a}", "only {a}", "just {a}", "a drawing of {a}",
           "{a}, nothing else", "can you draw {a}?", "generate an image of {a}", "here is {a}", "{a} in the middle",
           "paint {a}", "a simple picture with {a}", "{a:one}", "a picture with just {a:one}", "make {a}, please"],
    "de": ["{a}", "ein Bild von {a:dat}", "{a} auf hellem Hintergrund", "hier ist {a}", "das Bild zeigt {a:acc}",
           "zeichne {a:acc}", "bitte zeichne {a:acc}", "zeig mir {a:acc}", "ich möchte {a:acc}", "nur {a}",
           "eine Zeichnung von {a:dat}", "{a}, sonst nichts", "kannst du {a:acc} zeichnen?",
           "erzeuge ein Bild von {a:dat}", "es gibt {a:acc}", "{a} in der Mitte", "male {a:acc}",
           "ein einfaches Bild mit {a:dat}", "ein Bild mit nur {a:dat}", "mach bitte {a:acc}"],
    "fr": ["{a}", "une image d'{a}", "{a} sur un fond clair", "il y a {a}", "une photo montrant {a}",
           "dessine {a}", "s'il te plaît, dessine {a}", "montre-moi {a}", "je veux {a}", "seulement {a}",
           "un dessin d'{a}", "{a}, rien d'autre", "peux-tu dessiner {a} ?", "génère une image d'{a}", "voici {a}",
           "{a} au centre", "peins {a}", "une image simple avec {a}", "{a:one}", "une image avec {a:one}",
           "fais {a}, s'il te plaît"],
    "it": ["{a}", "un'immagine di {a}", "{a} su sfondo chiaro", "c'è {a}", "una foto che mostra {a}",
           "disegna {a}", "per favore disegna {a}", "mostrami {a}", "voglio {a}", "soltanto {a}", "un disegno di {a}",
           "{a}, nient'altro", "puoi disegnare {a}?", "genera un'immagine di {a}", "ecco {a}", "{a} al centro",
           "dipingi {a}", "un'immagine semplice con {a}", "{a:one}", "un'immagine con {a:one}",
           "fai {a}, per favore"],
    "es": ["{a}", "una imagen de {a}", "{a} sobre un fondo claro", "hay {a}", "una foto que muestra {a}",
           "dibuja {a}", "por favor dibuja {a}", "muéstrame {a}", "quiero {a}", "solamente {a}", "un dibujo de {a}",
           "{a}, nada más", "¿puedes dibujar {a}?", "genera una imagen de {a}", "aquí tienes {a}", "{a} en el centro",
           "pinta {a}", "una imagen sencilla con {a}", "{a:one}", "una imagen con {a:one}", "haz {a}, por favor"],
}  # fmt: skip

HELD_OUT_ONE: dict[str, list[str]] = {
    "en": ["could you please paint {a}?", "I want a drawing showing {a}", "show {a} on a plain background",
           "just draw {a:one}, please", "here is a simple image of {a}"],
    "de": ["könntest du bitte {a:acc} malen?", "ich möchte eine Zeichnung mit {a:dat}",
           "zeig {a:acc} auf hellem Hintergrund", "zeichne bitte nur {a:acc}", "hier ist ein einfaches Bild von {a:dat}"],
    "fr": ["peux-tu peindre {a}, s'il te plaît ?", "je veux un dessin montrant {a}", "montre {a} sur un fond clair",
           "dessine {a:one}, s'il te plaît", "voici une image simple d'{a}"],
    "it": ["per favore, puoi dipingere {a}?", "voglio un disegno che mostra {a}", "mostra {a} su sfondo chiaro",
           "disegna {a:one}, per favore", "ecco un'immagine semplice di {a}"],
    "es": ["¿puedes pintar {a}, por favor?", "quiero un dibujo que muestre {a}", "muestra {a} sobre un fondo claro",
           "dibuja {a:one}, por favor", "aquí hay una imagen sencilla de {a}"],
}  # fmt: skip

TRAIN_TWO: dict[str, list[str]] = {
    "en": ["{a} and {b}", "{a} on the left and {b} on the right", "a picture of {a} and {b}", "there are {a} and {b}",
           "{b} on the right and {a} on the left", "on the left {a}, on the right {b}", "draw {a} and {b}",
           "{a} to the left of {b}", "please draw {a} on the left and {b} on the right", "left: {a}; right: {b}",
           "show me {a} and {b}", "an image with {a} on the left and {b} on the right", "{a:one} and {b:one}",
           "paint {a} and {b}, nothing else"],
    "de": ["{a} und {b}", "{a} links und {b} rechts", "ein Bild von {a:dat} und {b:dat}", "das Bild zeigt {a:acc} und {b:acc}",
           "{b} rechts und {a} links", "links {a}, rechts {b}", "zeichne {a:acc} und {b:acc}",
           "{a} links von {b:dat}", "bitte zeichne links {a:acc} und rechts {b:acc}", "links: {a}; rechts: {b}",
           "zeig mir {a:acc} und {b:acc}", "ein Bild mit {a:dat} links und {b:dat} rechts", "nur {a} und {b}",
           "male {a:acc} und {b:acc}, sonst nichts"],
    "fr": ["{a} et {b}", "{a} à gauche et {b} à droite", "une image d'{a} et d'{b}", "il y a {a} et {b}",
           "{b} à droite et {a} à gauche", "à gauche {a}, à droite {b}", "dessine {a} et {b}",
           "{a} à gauche d'{b}", "s'il te plaît, dessine {a} à gauche et {b} à droite", "gauche : {a} ; droite : {b}",
           "montre-moi {a} et {b}", "une image avec {a} à gauche et {b} à droite", "{a:one} et {b:one}",
           "peins {a} et {b}, rien d'autre"],
    "it": ["{a} e {b}", "{a} a sinistra e {b} a destra", "un'immagine di {a} e {b}", "ci sono {a} e {b}",
           "{b} a destra e {a} a sinistra", "a sinistra {a}, a destra {b}", "disegna {a} e {b}",
           "{a} a sinistra di {b}", "per favore disegna {a} a sinistra e {b} a destra", "sinistra: {a}; destra: {b}",
           "mostrami {a} e {b}", "un'immagine con {a} a sinistra e {b} a destra", "{a:one} e {b:one}",
           "dipingi {a} e {b}, nient'altro"],
    "es": ["{a} y {b}", "{a} a la izquierda y {b} a la derecha", "una imagen de {a} y {b}", "hay {a} y {b}",
           "{b} a la derecha y {a} a la izquierda", "a la izquierda {a}, a la derecha {b}", "dibuja {a} y {b}",
           "{a} a la izquierda de {b}", "por favor dibuja {a} a la izquierda y {b} a la derecha",
           "izquierda: {a}; derecha: {b}", "muéstrame {a} y {b}", "una imagen con {a} a la izquierda y {b} a la derecha",
           "{a:one} y {b:one}", "pinta {a} y {b}, nada más"],
}  # fmt: skip

HELD_OUT_TWO: dict[str, list[str]] = {
    "en": ["on the right {b}, on the left {a}", "{b} to the right of {a}", "draw {a} on the left and {b} on the right, please",
           "I want a picture of {a} and {b}", "show {a} and {b} on a plain background"],
    "de": ["rechts {b}, links {a}", "{b} rechts von {a:dat}", "zeichne links {a:acc} und rechts {b:acc}, bitte",
           "ich möchte ein Bild von {a:dat} und {b:dat}", "zeig {a:acc} und {b:acc} auf hellem Hintergrund"],
    "fr": ["à droite {b}, à gauche {a}", "{b} à droite d'{a}", "dessine {a} à gauche et {b} à droite, s'il te plaît",
           "je veux une image d'{a} et d'{b}", "montre {a} et {b} sur un fond clair"],
    "it": ["a destra {b}, a sinistra {a}", "{b} a destra di {a}", "disegna {a} a sinistra e {b} a destra, per favore",
           "voglio un'immagine di {a} e {b}", "mostra {a} e {b} su sfondo chiaro"],
    "es": ["a la derecha {b}, a la izquierda {a}", "{b} a la derecha de {a}",
           "dibuja {a} a la izquierda y {b} a la derecha, por favor", "quiero una imagen de {a} y {b}",
           "muestra {a} y {b} sobre un fondo claro"],
}  # fmt: skip

# Two-object training frames composed from parts: every arrangement of the two objects (sides named after or
# before them, left or right first, joined by "and" or a comma, one object placed relative to the other, or the
# second placed beside the first: "next to {a}", "with {b} to its right") inside
# every wrapper (requests, imperatives, filler). `{a:C}` takes the wrapper's German case. A composed frame with the
# structure of a held-out frame is dropped (`held_out_pattern`), so the held-out frames stay unseen.
ARRANGEMENTS_TWO: dict[str, list[str]] = {
    "en": ["{a:C} and {b:C}", "{a:C} on the left and {b:C} on the right", "{a:C} on the left, {b:C} on the right",
           "{b:C} on the right and {a:C} on the left", "{b:C} on the right, {a:C} on the left",
           "on the left {a:C} and on the right {b:C}", "on the left {a:C}, on the right {b:C}",
           "on the right {b:C} and on the left {a:C}", "on the right {b:C}, on the left {a:C}", "{a:C} to the left of {b:C}",
           "{b:C} on the right, next to {a:C}", "{a:C} on the left, next to {b:C}", "{a:C} with {b:C} to its right",
           "{b:C} with {a:C} to its left"],
    "de": ["{a:C} und {b:C}", "{a:C} links und {b:C} rechts", "{a:C} links, {b:C} rechts", "{b:C} rechts und {a:C} links",
           "{b:C} rechts, {a:C} links", "links {a:C} und rechts {b:C}", "links {a:C}, rechts {b:C}",
           "rechts {b:C} und links {a:C}", "rechts {b:C}, links {a:C}", "{a:C} links von {b:dat}",
           "{b:C} rechts, neben {a:dat}", "{a:C} links, neben {b:dat}", "{a:C} mit {b:dat} rechts daneben",
           "{b:C} mit {a:dat} links daneben"],
    "fr": ["{a:C} et {b:C}", "{a:C} à gauche et {b:C} à droite", "{a:C} à gauche, {b:C} à droite",
           "{b:C} à droite et {a:C} à gauche", "{b:C} à droite, {a:C} à gauche", "à gauche {a:C} et à droite {b:C}",
           "à gauche {a:C}, à droite {b:C}", "à droite {b:C} et à gauche {a:C}", "à droite {b:C}, à gauche {a:C}",
           "{a:C} à gauche d'{b:C}", "{b:C} à droite, à côté d'{a:C}", "{a:C} à gauche, à côté d'{b:C}",
           "{a:C} avec {b:C} à sa droite", "{b:C} avec {a:C} à sa gauche"],
    "it": ["{a:C} e {b:C}", "{a:C} a sinistra e {b:C} a destra", "{a:C} a sinistra, {b:C} a destra",
           "{b:C} a destra e {a:C} a sinistra", "{b:C} a destra, {a:C} a sinistra", "a sinistra {a:C} e a destra {b:C}",
           "a sinistra {a:C}, a destra {b:C}", "a destra {b:C} e a sinistra {a:C}", "a destra {b:C}, a sinistra {a:C}",
           "{a:C} a sinistra di {b:C}", "{b:C} a destra, accanto a {a:C}", "{a:C} a sinistra, accanto a {b:C}",
           "{a:C} con {b:C} alla sua destra", "{b:C} con {a:C} alla sua sinistra"],
    "es": ["{a:C} y {b:C}", "{a:C} a la izquierda y {b:C} a la derecha", "{a:C} a la izquierda, {b:C} a la derecha",
           "{b:C} a la derecha y {a:C} a la izquierda", "{b:C} a la derecha, {a:C} a la izquierda",
           "a la izquierda {a:C} y a la derecha {b:C}", "a la izquierda {a:C}, a la derecha {b:C}",
           "a la derecha {b:C} y a la izquierda {a:C}", "a la derecha {b:C}, a la izquierda {a:C}",
           "{a:C} a la izquierda de {b:C}", "{b:C} a la derecha, junto a {a:C}",
           "{a:C} a la izquierda, junto a {b:C}", "{a:C} con {b:C} a su derecha", "{b:C} con {a:C} a su izquierda"],
}  # fmt: skip

WRAPPERS: dict[str, list[tuple[str, str]]] = {  # (wrapper, German case of what it wraps)
    "en": [(w, "nom") for w in ("{}", "draw {}", "please draw {}", "show me {}", "a picture of {}", "an image with {}",
                                "paint {}", "I want {}", "{}, please", "{}, nothing else", "can you draw {}?", "make {}")],
    "de": [("{}", "nom"), ("zeichne {}", "acc"), ("bitte zeichne {}", "acc"), ("zeig mir {}", "acc"),
           ("ein Bild mit {}", "dat"), ("male {}", "acc"), ("ich möchte {}", "acc"), ("{}, bitte", "nom"),
           ("{}, sonst nichts", "nom"), ("kannst du {} zeichnen?", "acc"), ("mach {}", "acc")],
    "fr": [(w, "nom") for w in ("{}", "dessine {}", "s'il te plaît, dessine {}", "montre-moi {}", "une image avec {}",
                                "peins {}", "je veux {}", "{}, s'il te plaît", "{}, rien d'autre", "peux-tu dessiner {} ?",
                                "fais {}")],
    "it": [(w, "nom") for w in ("{}", "disegna {}", "per favore disegna {}", "mostrami {}", "un'immagine con {}",
                                "dipingi {}", "voglio {}", "{}, per favore", "{}, nient'altro", "puoi disegnare {}?",
                                "fai {}")],
    "es": [(w, "nom") for w in ("{}", "dibuja {}", "por favor dibuja {}", "muéstrame {}", "una imagen con {}",
                                "pinta {}", "quiero {}", "{}, por favor", "{}, nada más", "¿puedes dibujar {}?", "haz {}")],
}  # fmt: skip


def held_out_pattern(frame: str) -> re.Pattern:
    """A held-out frame's structure as a regular expression: its own words literally, each slot any text."""
    parts = re.split(r"\{[ab](?::\w+)?\}", frame.lower())
    return re.compile("^" + "(.+)".join(re.escape(p) for p in parts) + "[ .!]*$")


def has_held_out_structure(frame: str, lang: str) -> bool:
    """Whether `frame` has the structure of one of `lang`'s held-out two-object frames, so that no stage may see it."""
    return any(held_out_pattern(h).match(frame.lower()) for h in HELD_OUT_TWO[lang])


def composed_two(lang: str) -> list[str]:
    """Every arrangement in every wrapper, minus those with a held-out frame's structure."""
    composed = []
    for wrapper, case in WRAPPERS[lang]:
        slot = "" if case == "nom" else f":{case}"
        for arrangement in ARRANGEMENTS_TWO[lang]:
            frame = wrapper.format(arrangement.replace(":C}", slot + "}"))
            if not has_held_out_structure(frame, lang):
                composed.append(frame)
    return composed


# --- terse forms: how people type tags ("blue star", "red circle, blue star") -----------------------------------
# A terse form puts article-less noun phrases (`captions.terse_phrase`: `{a}` "blue star" / "blauer Stern" / "étoile
# bleue", `{a:tag}` in tag order "star, blue") into a list (`TERSE_LISTS`, two objects, the left one first) and the
# list into a wrapper (`TERSE_WRAPPERS`: bare, a fragment, or a sentence around the tags). Every (wrapper, list)
# combination is a form; `TERSE_HELD_OUT` names the combinations no training stage reads, which `multifusion eval`'s
# `terse` benchmark measures. `{b:dat}` is German's dative after "mit" ("roter Kreis mit blauem Stern").
TERSE_SINGLES: tuple[str, ...] = ("{a}", "{a:tag}")
TERSE_LISTS: dict[str, list[str]] = {
    "en": ["{a}, {b}", "{a} + {b}", "{a} & {b}", "{a} with {b}", "{a} and {b}"],
    "de": ["{a}, {b}", "{a} + {b}", "{a} & {b}", "{a} mit {b:dat}", "{a} und {b}"],
    "fr": ["{a}, {b}", "{a} + {b}", "{a} & {b}", "{a} avec {b}", "{a} et {b}"],
    "it": ["{a}, {b}", "{a} + {b}", "{a} & {b}", "{a} con {b}", "{a} e {b}"],
    "es": ["{a}, {b}", "{a} + {b}", "{a} & {b}", "{a} con {b}", "{a} y {b}"],
}  # fmt: skip
TERSE_WRAPPERS: dict[str, list[str]] = {
    "en": ["{}", "{}, simple picture", "{}, please", "picture: {}", "{}, plain background", "{}, that's all"],
    "de": ["{}", "{}, einfaches Bild", "{}, bitte", "Bild: {}", "{}, heller Hintergrund", "{}, das ist alles"],
    "fr": ["{}", "{}, image simple", "{}, s'il te plaît", "image : {}", "{}, fond clair", "{}, c'est tout"],
    "it": ["{}", "{}, immagine semplice", "{}, per favore", "immagine: {}", "{}, sfondo chiaro", "{}, è tutto"],
    "es": ["{}", "{}, imagen sencilla", "{}, por favor", "imagen: {}", "{}, fondo claro", "{}, eso es todo"],
}  # fmt: skip
TERSE_HELD_OUT: dict[int, set[tuple[int, int]]] = {  # objects -> {(wrapper index, single/list index)}
    1: {(1, 1), (4, 0), (3, 1)},  # "star, blue, simple picture"; "blue star, plain background"; "picture: star, blue"
    2: {(1, 2), (3, 1), (2, 3), (4, 0), (5, 4)},  # "&" in a fragment, "+" after "picture:", "with" + "please", ...
}


def terse_forms(n_objects: int, lang: str, split: str = "train") -> list[str]:
    """The terse forms of `split` ("train" or "held_out") for scenes of `n_objects` in `lang`."""
    inner = TERSE_SINGLES if n_objects == 1 else TERSE_LISTS[lang]
    return [
        wrapper.format(form)
        for w, wrapper in enumerate(TERSE_WRAPPERS[lang])
        for f, form in enumerate(inner)
        if ((w, f) in TERSE_HELD_OUT[n_objects]) == (split == "held_out")
    ]
