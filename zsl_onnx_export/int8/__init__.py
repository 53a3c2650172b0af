"""The exporter's int8 variant: per-row int8 graphs and the one search that keeps one only if it
agrees with fp32.

``weights`` (int8 levels that stay exact on every x86 CPU), ``weight_rounding`` (SmoothQuant,
GPTQ), ``stats`` (fp32 activation statistics), ``rowquant`` (the graph rewrite), ``candidates``
(which MatMuls, which weights), ``calibration`` (NLI calibration pairs), ``search`` (the one
search), and one scorer per model kind: ``nli``, ``embedding``.
"""

__all__: list[str] = []
