"""CREMA-D: ``AudioWAV/ActorID_SEN_EMO_LVL.wav`` (e.g. ``1001_DFA_ANG_XX``).

Intensity is LO/MD/HI/XX; some real copies have a one-letter ``X``
(``1040_ITH_SAD_X``). Gender comes from ``VideoDemographics.csv`` when the
pipeline finds it beside the audio (``unknown`` otherwise).
Known bad file: ``1076_MTI_SAD_XX`` is silent in real copies (a dead letter, "silent").
"""

import re

_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


def parse(path, folder, stem, table):
    from . import NotThisCorpus, Utterance, lookup_label

    m = _NAME.match(stem)
    if not m:
        raise NotThisCorpus
    actor, sentence, emotion, _level = m.groups()
    return Utterance(
        path=path, corpus="cremad", speaker=actor, gender="unknown",
        label=lookup_label(table, "cremad", emotion), raw_label=emotion,
        sentence=sentence,
    )


def parse_demographics(text: str) -> dict[str, str]:
    """``VideoDemographics.csv`` text -> ``{actor id: male|female}``."""
    import csv
    import io

    genders = {}
    for row in csv.DictReader(io.StringIO(text)):
        sex = (row.get("Sex") or "").strip().lower()
        actor = (row.get("ActorID") or "").strip()
        if actor and sex in ("male", "female"):
            genders[actor] = sex
    return genders
