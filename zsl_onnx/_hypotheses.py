"""Stage 1: check the caller's texts, labels and template, and turn labels into hypotheses."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from string import Formatter

from ._exceptions import InvalidInputError

DEFAULT_TEMPLATE = "This example is {}."


def parse_sequences(sequences: str | Iterable[str]) -> tuple[list[str], bool]:
    """Return the texts as a new list, and whether the caller passed a single string.

    Any iterable of strings works (list, tuple, generator, numpy array, pandas Series); it is
    read once and never modified.
    """
    if isinstance(sequences, str):
        texts, single = [str(sequences)], True
    else:
        texts, single = _as_list(sequences, "sequences", "a string or an iterable of strings"), False
    if not texts:
        raise InvalidInputError("sequences is empty: pass at least one text to classify.")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"sequences[{i}] is {type(text).__name__}, not str: every text must be a string."
            )
        if is_blank(text):
            raise InvalidInputError(
                f"sequences[{i}] is empty or only whitespace or invisible characters: there is nothing "
                "to classify; drop it or replace it with real text."
            )
        _check_encodable(text, f"sequences[{i}]")
    return [str(text) for text in texts], single


# Unicode categories that print nothing: format (zero-width space and joiners, BOM, bidi
# marks, soft hyphen), control, and unassigned code points.
_INVISIBLE = frozenset({"Cf", "Cc", "Cn"})


def is_blank(text: str) -> bool:
    """True when ``text`` holds nothing but whitespace and characters that print nothing."""
    return not any(not char.isspace() and unicodedata.category(char) not in _INVISIBLE for char in text)


def parse_label_sets(candidate_labels: object, n_texts: int) -> tuple[list[list[str]], bool]:
    """Each text's labels, and whether all texts share one set.

    ``candidate_labels`` is one set for all texts (a comma-separated string or an iterable of
    strings, see :func:`parse_labels`) or one iterable of labels per text, in text order.
    """
    if isinstance(candidate_labels, str):
        return [parse_labels(candidate_labels)] * n_texts, True
    items = _as_list(candidate_labels, "candidate_labels", "an iterable of strings or a comma-separated string")
    nested = [not isinstance(item, str) for item in items]
    if not any(nested):
        return [parse_labels(items)] * n_texts, True
    if not all(nested):
        raise InvalidInputError(
            "candidate_labels mixes labels and label lists: pass one list of labels for all texts, "
            "or one list of labels per text."
        )
    if len(items) != n_texts:
        raise InvalidInputError(
            f"candidate_labels holds {len(items)} label lists for {n_texts} texts: pass one list per text, in order."
        )
    return [parse_labels(item, name=f"candidate_labels[{i}]") for i, item in enumerate(items)], False


def parse_labels(candidate_labels: str | Iterable[str], name: str = "candidate_labels") -> list[str]:
    """Split a comma-separated string the way the pipeline does, and check the labels.

    Any other iterable of strings is taken as is, one label per item.
    """
    if isinstance(candidate_labels, str):
        labels = [label.strip() for label in candidate_labels.split(",") if label.strip()]
    else:
        labels = _as_list(candidate_labels, name, "an iterable of strings or a comma-separated string")
    if not labels:
        raise InvalidInputError(f"{name} is empty: pass at least one label.")
    seen: set[str] = set()
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise InvalidInputError(
                f"{name}[{i}] is {type(label).__name__}, not str: labels must be strings."
            )
        if is_blank(label):
            raise InvalidInputError(
                f"{name}[{i}] is empty or only invisible characters: every label needs a name."
            )
        _check_encodable(label, f"{name}[{i}]")
        if label in seen:
            raise InvalidInputError(
                f"candidate label {label!r} appears twice in {name}: labels must be unique, "
                "since each one gets its own score."
            )
        seen.add(label)
    return [str(label) for label in labels]


def _as_list(values: object, name: str, expected: str) -> list:
    """A new list of the items of ``values``, refusing inputs whose items would be silently wrong."""
    if values is None:
        raise InvalidInputError(f"{name} is None: pass {expected}.")
    kind = type(values).__name__
    if isinstance(values, (bytes, bytearray, memoryview)):
        raise InvalidInputError(
            f"{name} is {kind}, not str: decode it first, e.g. data.decode('utf-8')."
        )
    if isinstance(values, Mapping) or hasattr(values, "columns"):
        raise InvalidInputError(
            f"{name} is a {kind}, whose iteration gives its keys or column names: "
            f"pass the values themselves, e.g. one column such as df['text'] or list(d.values())."
        )
    if isinstance(values, (set, frozenset)):
        raise InvalidInputError(
            f"{name} is a {kind}, which has no order, so results could not be matched to "
            "inputs: pass a list, e.g. sorted(values)."
        )
    try:
        return list(values)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidInputError(f"{name} must be {expected}, not {kind}.") from None


def build_hypotheses(labels: Sequence[str], template: str) -> list[str]:
    """Fill the template with each label, refusing templates that would hide or bloat the label."""
    check_template(template)
    return [template.format(label) for label in labels]


def check_template(template: str) -> None:
    """Exactly one bare '{}' (or '{0}'): no format spec, so every hypothesis holds its label.

    '{{}}' is a literal brace pair, '{:.0}' cuts the label to nothing and '{:>300000000}' pads
    it to 300 MB: each would give a wrong or ruinous hypothesis, so each is refused here.
    """
    if not isinstance(template, str):
        raise InvalidInputError(
            f"hypothesis_template must be a string, not {type(template).__name__}."
        )
    advice = "use exactly one '{}' where the label goes, e.g. 'This example is {}.'"
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise InvalidInputError(f"hypothesis_template {template!r} is malformed ({exc}): {advice}") from None
    if not fields:
        raise InvalidInputError(
            f"hypothesis_template {template!r} has no '{{}}' placeholder, so every label would "
            f"get the same hypothesis: {advice}"
        )
    if len(fields) > 1 or fields[0][0] not in ("", "0") or fields[0][1] or fields[0][2]:
        raise InvalidInputError(
            f"hypothesis_template {template!r} cannot be formatted with a label as it stands "
            f"(one plain placeholder, no name, format spec or conversion): {advice}"
        )
    _check_encodable(template, "hypothesis_template")


def _check_encodable(text: str, where: str) -> None:
    """Lone surrogates (from bad decoding upstream) cannot be tokenized or written as UTF-8."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"{where} holds an unpaired surrogate {text[exc.start]!r} at character {exc.start}, which is "
                "not valid Unicode text; decode the source with errors='replace' or fix it."
            ) from None
