import gzip
import io

import numpy as np
import tensorflow as tf

from ser_model.features import FeatureConfig
import pytest

from ser_model.records import RecordError, decode_example, encode_example, frame, parse_examples, read_records
from pipelines.tfrecord_sink import TFRecordGzipWriter

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


def reference_example(logmel, mfcc, meta):
    """The same example built with TensorFlow's protobuf classes."""
    def f(v):
        return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(v)))

    def i(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode()]))

    feature = {"logmel": f(logmel), "logmel_shape": i(logmel.shape), "mfcc": f(mfcc),
               "mfcc_shape": i(mfcc.shape), "label_id": i([meta["label_id"]]),
               "window_index": i([meta["window_index"]]), "n_windows": i([meta["n_windows"]]),
               "start_s": f([meta["start_s"]]), "duration_s": f([meta["duration_s"]])}
    feature.update({k: b(meta[k]) for k in ("label", "emotion", "raw_label", "speaker", "corpus",
                                            "gender", "split", "sentence", "path")})
    return tf.train.Example(features=tf.train.Features(feature=feature))


def test_hand_encoding_is_the_same_message_as_tensorflows():
    logmel, mfcc = features(3)
    meta = {**META, "path": "gs://bücket/ünïcode path.wav", "label_id": 300, "window_index": 0}
    ours = encode_example(logmel, mfcc, meta)
    assert tf.train.Example.FromString(ours) == reference_example(logmel, mfcc, meta)
    # Same size as protobuf's own encoding: no field is missing or doubled.
    assert len(ours) == len(reference_example(logmel, mfcc, meta).SerializeToString())
    assert encode_example(logmel, mfcc, meta) == ours  # deterministic


def test_framing_is_read_by_tensorflow_and_bytes_are_reproducible(tmp_path):
    records = [encode_example(*features(i), META) for i in range(5)]
    paths = []
    for name in ("a", "b"):
        writer = TFRecordGzipWriter(str(tmp_path / f"{name}.tfrecord.gz"), "fast")
        for r in records:
            writer.write(r)
        writer.close()
        paths.append(tmp_path / f"{name}.tfrecord.gz")
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(paths[0]), compression_type="GZIP")]
    assert read == records
    assert paths[0].read_bytes() == paths[1].read_bytes()  # gzip header without name or mtime
    assert list(tmp_path.iterdir()) and not any(".tmp-" in p.name for p in tmp_path.iterdir())


def test_abort_leaves_no_file(tmp_path):
    writer = TFRecordGzipWriter(str(tmp_path / "x.tfrecord.gz"), "fast")
    writer.write(b"partial")
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_frame_layout():
    framed = frame(b"abc")
    assert len(framed) == 8 + 4 + 3 + 4 and framed[12:15] == b"abc"
    assert gzip.decompress(gzip.compress(framed)) == framed


def test_shards_decode_without_tensorflow_as_tensorflow_parses_them(feature_dir):
    """The TF-free reader (ser_model.records.read_records + decode_example) on the pipeline's real
    shards gives what tf.data and tf.io.parse_example give, record for record."""
    from ser_model.feature_dir import open_feature_dir

    fdir = open_feature_dir(str(feature_dir))
    shard = fdir.shards("train")[0]
    with open(shard, "rb") as f:
        ours = [decode_example(r, fdir.features) for r in read_records(f)]
    theirs = list(tf.data.TFRecordDataset(shard, compression_type="GZIP").batch(1024)
                  .map(lambda s: parse_examples(s, fdir.features)).unbatch().as_numpy_iterator())
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), k


def test_a_truncated_or_corrupt_shard_is_an_error_not_fewer_records(tmp_path):
    records = [encode_example(*features(i), META) for i in range(3)]
    whole = gzip.compress(b"".join(frame(r) for r in records))
    with open(tmp_path / "x", "wb") as f:
        f.write(whole)
    with open(tmp_path / "x", "rb") as f:
        assert list(read_records(f)) == records
    raw = bytearray(b"".join(frame(r) for r in records))
    for broken in (raw[:-10], raw[:5], raw[:100] + bytes([raw[100] ^ 1]) + raw[101:]):
        with pytest.raises(RecordError):
            list(read_records(io.BytesIO(gzip.compress(bytes(broken)))))
