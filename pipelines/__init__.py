"""Apache Beam pipelines: corpus features to TFRecord, and bulk scoring.

Beam lives here only; the heavy lifting is in :mod:`ser_model`.
"""
