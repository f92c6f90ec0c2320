"""Pipeline shapes that every runner runs correctly and in parallel, Beam's DaskRunner included.

Beam's DaskRunner turns a pipeline into one dask.bag graph and computes only
its last step. Two things it does differently from the local runner and
Dataflow shape both pipelines:

* A side input is evaluated *inside* the task that reads it, by computing the
  side input's whole upstream again there, in that one worker. A global combine
  with a default value (``beam.combiners.ToList``, ``Count.Globally``) reads its
  own result as a side input, so everything above it ran twice, once on one
  worker. Hence :func:`combine_once`: a global combine that yields exactly one
  value without a side input, and no side inputs anywhere else.
* A bag keeps the number of partitions it started with: a ``GroupByKey`` does
  not spread one partition over more. ``MatchFiles`` starts from one element,
  so everything after it ran as one task. Hence :func:`list_inputs`: the inputs
  are listed in ``shards`` parts, one ``Create`` element each, so a Dask run
  starts with as many partitions (``--dask_npartitions``) and every later step
  keeps them. Elsewhere one listing is enough (``shards=1``).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystem import FileMetadata

from ser_model import storage
from ser_model.splits import stable_hash


class Nothing:
    """The one element added to a combine's input so that it never combines an empty collection."""


def list_shard(shard: int, globs: tuple[str, ...], shards: int):
    """``(index of the glob, FileMetadata)`` of every file the globs match whose path falls in ``shard``."""
    for i, glob in enumerate(globs):
        for path, size in storage.list_files(glob):
            if shards == 1 or stable_hash("list-shard", path) % shards == shard:
                yield i, FileMetadata(path, size)


def list_inputs(p: beam.Pipeline, globs, shards: int, label: str = "List") -> beam.PCollection:
    """``(index of the glob, FileMetadata)`` for every match of ``globs`` (a glob matching nothing
    adds nothing), listed in ``shards`` parts. Both pipelines group the files right after (the
    shuffle that spreads them over the workers of every runner)."""
    return (p | f"{label}.Shards" >> beam.Create(list(range(shards)))
              | f"{label}.Match" >> beam.FlatMap(list_shard, tuple(globs), shards))


class _SkipNothing(beam.CombineFn):
    """``fn`` with the :class:`Nothing` element ignored."""

    def __init__(self, fn: beam.CombineFn):
        self.fn = fn

    def setup(self, *args, **kwargs):
        self.fn.setup(*args, **kwargs)

    def create_accumulator(self):
        return self.fn.create_accumulator()

    def add_input(self, acc, element):
        return acc if isinstance(element, Nothing) else self.fn.add_input(acc, element)

    def merge_accumulators(self, accs):
        return self.fn.merge_accumulators(accs)

    def compact(self, acc):
        return self.fn.compact(acc)

    def extract_output(self, acc):
        return self.fn.extract_output(acc)

    def teardown(self, *args, **kwargs):
        self.fn.teardown(*args, **kwargs)


def combine_once(pcoll: beam.PCollection, fn: beam.CombineFn, label: str) -> beam.PCollection:
    """``fn`` over all of ``pcoll`` as a PCollection of exactly one value (``fn``'s value of nothing
    when ``pcoll`` is empty), computed without a side input."""
    start = pcoll.pipeline | f"{label}.Start" >> beam.Create([Nothing()])
    return ((pcoll, start) | f"{label}.With" >> beam.Flatten()
            | f"{label}.Combine" >> beam.CombineGlobally(_SkipNothing(fn)).without_defaults())


def gather(pcoll: beam.PCollection, label: str) -> beam.PCollection:
    """All of ``pcoll`` as one list (``[]`` when empty), the one element of the result."""
    return combine_once(pcoll, beam.combiners.ToListCombineFn(), label)


def count(pcoll: beam.PCollection, label: str) -> beam.PCollection:
    """How many elements ``pcoll`` has, the one element of the result."""
    return combine_once(pcoll, beam.combiners.CountCombineFn(), label)
