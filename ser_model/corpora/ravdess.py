"""RAVDESS: ``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav``.

Fields: modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel
(01 speech, 02 song), emotion (01-08), intensity, statement (01 "Kids are
talking by the door", 02 "Dogs are sitting by the door"), repetition, actor
(odd = male, even = female). Song files are skipped: the product is about speech.
Known quirks of real copies: 48 kHz, some stereo files (03-01-08-01-02-02-01,
03-01-02-01-02-02-05), extra RIFF chunks before ``data``.
"""

import re

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def parse(path, folder, stem, table):
    from . import NotThisCorpus, Skip, Utterance, lookup_label

    m = _NAME.match(stem)
    if not m:
        raise NotThisCorpus
    modality, channel, emotion, _intensity, statement, _rep, actor = m.groups()
    if channel == "02":
        raise Skip("ravdess-song", stem)
    if channel != "01" or modality == "02":
        raise Skip("ravdess-not-speech-audio", stem)
    return Utterance(
        path=path, corpus="ravdess", speaker=actor,
        gender="male" if int(actor) % 2 else "female",
        label=lookup_label(table, "ravdess", emotion), raw_label=emotion,
        sentence=statement,
    )
