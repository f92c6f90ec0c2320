"""Speech emotion recognition at archive scale: the importable library.

Pure Python/numpy/TensorFlow code shared by the Beam pipelines, the trainer and
the web app. Nothing in this package imports Apache Beam.
"""

__version__ = "0.1.0"
