"""Parsers for public medical dataset releases in their original formats.

Each module reads one release's annotation files into an index (``ReleaseIndex`` for classification,
``VQAReleaseIndex`` for VQA) without decoding any image; decoding happens lazily in the data loader.
"""
