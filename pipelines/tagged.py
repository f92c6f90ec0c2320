"""Several outputs from one step, on every runner.

A step that has more than one kind of result (utterances and dead letters,
windows and file facts) yields ``(tag, value)`` pairs on its one output, and
:func:`by_tag` splits them into one PCollection per tag. Beam's multi-output
ParDo (``with_outputs``/``TaggedOutput``) would be the usual way, but Beam's
DaskRunner hands every consumer of such a step all of its outputs, mixed; this
works the same on the local runner, Dataflow and Dask, and on the local runner
the split steps fuse with the producer, so it costs nothing measurable.
"""

from __future__ import annotations

from typing import Sequence

import apache_beam as beam


def by_tag(pcoll: beam.PCollection, label: str, tags: Sequence[str]) -> dict[str, beam.PCollection]:
    """``{tag: PCollection of the values yielded as (tag, value)}`` for every tag in ``tags``."""
    unknown = f"{label}: a value tagged with none of {list(tags)}"

    def check(kv):
        if kv[0] not in tags:
            raise ValueError(f"{unknown}: {kv[0]!r}")
        return kv

    checked = pcoll | f"{label}.Check" >> beam.Map(check)
    return {tag: checked | f"{label}.{tag}" >> beam.FlatMap(lambda kv, t=tag: [kv[1]] if kv[0] == t else [])
            for tag in tags}
