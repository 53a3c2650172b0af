"""``zsl-evaluate``: how good are a file's zero-shot labels against hand labels, and from which
top score on can they be accepted without review.

Built over the package's public surface only (its exceptions); every step streams the
predictions, so a corpus of any size is evaluated in memory bounded by the number of labels
and the size of the hand-labelled sample.
"""

__all__: list[str] = []
