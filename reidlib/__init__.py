"""reidlib: models, losses, data and evaluation for partial person re-identification.

The companion library of the book *Partial Person Re-Identification*.  Layout follows
torchreid: ``data`` (SynthPeds, real dataset readers, partial crops, samplers),
``models`` (one file per method), ``losses``, ``metrics`` (ranking metrics and
distances), ``eval`` (protocols), ``engine`` (training) and ``viz`` (figures).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
