"""TESS: ``<SPK>_<emotion>/<SPK>_<word>_<emotion>.wav`` (OAF, YAF; both female).

Quirks of real copies: folder case varies (``OAF_Fear``, ``YAF_pleasant_surprised``),
pleasant surprise is ``ps`` in file names, ``OA_bite_neutral.wav`` misspells the
speaker, ``YAF_germ_angry.wav`` is really AIFF, ``OAF_food_fear.wav`` is 96 kHz.
The emotion is taken from the file name, never the folder.
"""

import re

_NAME = re.compile(r"^([A-Za-z]{2,3})_([A-Za-z]+)_([A-Za-z]+)$")
SPEAKER_ALIASES = {"OA": "OAF", "YA": "YAF"}
KNOWN_SPEAKERS = {"OAF", "YAF"}


def parse(path, folder, stem, table):
    from . import NotThisCorpus, Utterance, lookup_label

    m = _NAME.match(stem)
    if not m:
        raise NotThisCorpus
    speaker, word, emotion = m.groups()
    speaker = SPEAKER_ALIASES.get(speaker.upper(), speaker.upper())
    if speaker not in KNOWN_SPEAKERS:
        raise NotThisCorpus
    emotion = emotion.lower()
    return Utterance(
        path=path, corpus="tess", speaker=speaker, gender="female",
        label=lookup_label(table, "tess", emotion), raw_label=emotion,
        sentence=word.lower(),
    )
