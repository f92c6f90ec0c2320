"""SAVEE: ``<SPK>/<code><NN>.wav`` (``DC/sa01.wav``) or Kaggle's flat ``DC_sa01.wav``.

Speakers DC, JE, JK, KL, all male; 44.1 kHz originals. The emotion code is one
or two letters (``a``, ``sa``, ``su``) followed by the sentence number; the
speaker comes from the folder in the original layout.
"""

import re

SPEAKERS = {"DC", "JE", "JK", "KL"}
_CODE = re.compile(r"^([a-z]{1,2})(\d\d)$")
_FLAT = re.compile(r"^([A-Z]{2})_([a-z]{1,2}\d\d)$")


def parse(path, folder, stem, table):
    from . import NotThisCorpus, Utterance, lookup_label

    flat = _FLAT.match(stem)
    if flat and flat.group(1) in SPEAKERS:
        speaker, code_number = flat.groups()
    elif folder.upper() in SPEAKERS and _CODE.match(stem):
        speaker, code_number = folder.upper(), stem
    else:
        raise NotThisCorpus
    code, number = _CODE.match(code_number).groups()
    return Utterance(
        path=path, corpus="savee", speaker=speaker, gender="male",
        label=lookup_label(table, "savee", code), raw_label=code,
        sentence=code + number,
    )
