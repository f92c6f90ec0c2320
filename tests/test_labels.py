import pytest

from ser_model.config import ConfigError, parse_override
from ser_model.labels import CANONICAL, parse_label_table


def test_every_corpus_code_maps_to_a_canonical_emotion(label_table):
    assert set(label_table.code_maps) == {"ravdess", "cremad", "tess", "savee"}
    for codes in label_table.code_maps.values():
        assert set(codes.values()) <= set(CANONICAL)
    assert label_table.canonical("tess", "ps") == "surprised"
    assert label_table.canonical("savee", "sa") == "sad"
    assert label_table.canonical("ravdess", "02") == "calm"
    assert label_table.canonical("cremad", "XYZ") is None


def test_default_label_set_folds_calm_into_neutral(label_table):
    default = label_table.label_set()
    assert default.name == "default7"
    assert len(default.classes) == 7 and "calm" not in default.classes
    assert default.class_of("calm") == "neutral"
    assert default.index_of("calm") == default.index_of("neutral") == 0
    assert default.index_of("surprised") == 6


def test_label_set_drop_and_json_round_trip(label_table):
    six = label_table.label_set("cremad6")
    assert six.class_of("surprised") is None
    assert type(six).from_json(six.to_json()) == six


def test_unknown_label_set_is_a_clear_error(label_table):
    with pytest.raises(ConfigError, match="unknown label set 'nope'"):
        label_table.label_set("nope")


def test_non_canonical_target_is_rejected():
    data = {"corpora": {"tess": {"ps": "pleasant"}}, "label_sets": {"x": {"classes": ["happy"]}}}
    with pytest.raises(ConfigError, match="non-canonical 'pleasant'"):
        parse_label_table(data)


def test_parse_override_reads_yaml_values():
    assert parse_override("n_mels=64") == ("n_mels", 64)
    assert parse_override("trim_silence=false") == ("trim_silence", False)
    with pytest.raises(ConfigError):
        parse_override("n_mels")
