import gzip

import numpy as np
import tensorflow as tf

from ser_model.features import FeatureConfig
from ser_model.records import encode_example, parse_examples
from pipelines.tfrecord_sink import TFRecordGzipWriter, frame

CFG = FeatureConfig(n_mels=16, n_mfcc=8, window_seconds=0.5)
META = {"label": "angry", "label_id": 3, "emotion": "angry", "raw_label": "ANG", "speaker": "1001",
        "corpus": "cremad", "gender": "male", "split": "train", "sentence": "DFA",
        "path": "/x/1001_DFA_ANG_XX.wav", "window_index": 1, "n_windows": 2, "start_s": 1.5,
        "duration_s": 3.25}


def features(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(CFG.logmel_shape).astype(np.float32),
            rng.standard_normal(CFG.mfcc_shape).astype(np.float32))


def test_example_round_trips_through_tensorflow():
    logmel, mfcc = features()
    parsed = parse_examples(tf.constant([encode_example(logmel, mfcc, META)]), CFG)
    assert np.array_equal(parsed["logmel"].numpy()[0], logmel)
    assert np.array_equal(parsed["mfcc"].numpy()[0], mfcc)
    assert parsed["label_id"].numpy()[0] == 3
    assert parsed["speaker"].numpy()[0] == b"1001"
    assert np.isclose(parsed["duration_s"].numpy()[0], 3.25)


def test_framing_is_read_by_tensorflow_and_bytes_are_reproducible(tmp_path):
    records = [encode_example(*features(i), META) for i in range(5)]
    paths = []
    for name in ("a", "b"):
        writer = TFRecordGzipWriter(str(tmp_path / f"{name}.tfrecord.gz"))
        for r in records:
            writer.write(r)
        writer.close()
        paths.append(tmp_path / f"{name}.tfrecord.gz")
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(paths[0]), compression_type="GZIP")]
    assert read == records
    assert paths[0].read_bytes() == paths[1].read_bytes()  # gzip header without name or mtime
    assert list(tmp_path.iterdir()) and not any(".tmp-" in p.name for p in tmp_path.iterdir())


def test_abort_leaves_no_file(tmp_path):
    writer = TFRecordGzipWriter(str(tmp_path / "x.tfrecord.gz"))
    writer.write(b"partial")
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_frame_layout():
    framed = frame(b"abc")
    assert len(framed) == 8 + 4 + 3 + 4 and framed[12:15] == b"abc"
    assert gzip.decompress(gzip.compress(framed)) == framed
