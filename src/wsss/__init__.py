"""Weakly-supervised semantic segmentation: the library behind the Snakemake workflow.

Every module is plain Python (no Snakemake imports) so it can be unit-tested and reused.
"""

__version__ = "0.1.0"
