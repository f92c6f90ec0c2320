import pytest

from ser_model.corpora import Skip, parse_path

CASES = [
    # path, corpus, speaker, gender, label, raw, sentence
    ("/d/ravdess/Actor_01/03-01-05-01-01-01-01.wav", "ravdess", "01", "male", "angry", "05", "01"),
    ("gs://b/Actor_12/03-01-02-02-02-01-12.opus", "ravdess", "12", "female", "calm", "02", "02"),
    ("/d/cremad/AudioWAV/1001_DFA_ANG_XX.wav", "cremad", "1001", "unknown", "angry", "ANG", "DFA"),
    ("/d/cremad/AudioWAV/1040_ITH_SAD_X.flac", "cremad", "1040", "unknown", "sad", "SAD", "ITH"),
    ("/d/tess/OAF_Fear/OAF_food_fear.wav", "tess", "OAF", "female", "fearful", "fear", "food"),
    ("/d/tess/YAF_pleasant_surprised/YAF_bath_ps.ogg", "tess", "YAF", "female", "surprised", "ps", "bath"),
    ("/d/tess/OAF_neutral/OA_bite_neutral.wav", "tess", "OAF", "female", "neutral", "neutral", "bite"),
    ("/d/savee/DC/sa01.wav", "savee", "DC", "male", "sad", "sa", "sa01"),
    ("/d/savee/JE/su03.mp3", "savee", "JE", "male", "surprised", "su", "su03"),
    ("/d/savee/a07.wav".replace("/d/savee/", "/d/savee/JK/"), "savee", "JK", "male", "angry", "a", "a07"),
    ("s3://b/kaggle/DC_h12.wav", "savee", "DC", "male", "happy", "h", "h12"),
    ("/d/x/03-01-01-01-01-01-07.AIFF", "ravdess", "07", "male", "neutral", "01", "01"),
]


@pytest.mark.parametrize("path,corpus,speaker,gender,label,raw,sentence", CASES)
def test_real_layouts_parse(label_table, path, corpus, speaker, gender, label, raw, sentence):
    utt = parse_path(path, label_table)
    assert (utt.corpus, utt.speaker, utt.gender, utt.label, utt.raw_label, utt.sentence) == (
        corpus, speaker, gender, label, raw, sentence)
    assert utt.path == path


SKIPS = [
    ("/d/ravdess/Actor_01/03-02-03-01-01-01-01.wav", "ravdess-song"),
    ("/d/ravdess/Actor_01/02-01-03-01-01-01-01.mp4", "not-audio-extension"),
    ("/d/cremad/AudioWAV/1001_DFA_XYZ_XX.wav", "unknown-emotion-code"),
    ("/d/savee/DC/x01.wav", "unknown-emotion-code"),
    ("/d/cremad/AudioWAV/._1001_DFA_ANG_XX.wav", "macos-resource-fork"),
    ("/d/cremad/AudioWAV/.DS_Store", "not-audio-extension"),
    ("/d/cremad/VideoDemographics.csv", "corpus-metadata"),
    ("/d/savee/Info.txt", "not-audio-extension"),
    ("/d/misc/interview.wav", "unrecognised-name"),
    ("/d/tess/XYZ_back_angry.wav", "unrecognised-name"),
]


@pytest.mark.parametrize("path,reason", SKIPS)
def test_non_utterances_are_skipped_with_a_reason(label_table, path, reason):
    with pytest.raises(Skip) as info:
        parse_path(path, label_table)
    assert info.value.reason == reason


def test_named_corpus_forces_its_reader(label_table):
    with pytest.raises(Skip, match="does not follow tess naming"):
        parse_path("/d/Actor_01/03-01-05-01-01-01-01.wav", label_table, corpus="tess")
    assert parse_path("/d/DC/a01.wav", label_table, corpus="savee").speaker == "DC"


def test_cremad_demographics_give_gender():
    from ser_model.corpora.cremad import parse_demographics

    text = '"ActorID","Age","Sex","Race","Ethnicity"\n1001,51,"Male","C","N"\n1002,21,"Female","C","N"\n'
    assert parse_demographics(text) == {"1001": "male", "1002": "female"}
