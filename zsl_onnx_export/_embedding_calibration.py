"""Built-in labelled texts for an embedding export: they fit the score calibration and drive the
int8 guard.

The texts were written for this purpose (not drawn from any benchmark), 64 short English
sentences: 8 topics x 6 texts and 2 sentiments x 8 texts, each with its gold label. The
multi-label bias is fitted on them with the export's hypothesis template: the ``bias`` of
``sigmoid(scale * (cos - bias))`` (scale fixed, see ``zsl_onnx._similarity``) that minimizes the
log-loss of "this label is the gold one" over every (text, candidate label) pair. Only the bias
is fitted: these texts are clearer than real data, so a scale fitted on them came out too
steep (overconfident) on AG News and SST-2, while the bias agreed with fits on those sets
(all-MiniLM-L6-v2: 0.16 here; free fits on AG News 0.145-0.175, on SST-2 0.135).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOPICS = ("sports", "politics", "business", "science", "technology", "health", "entertainment", "travel")
SENTIMENTS = ("positive", "negative")
# Decisions the int8 guard compares: each built-in text against each of these label sets. The
# texts are clear, so against plain topic sets fp32's top label wins by a wide cosine margin
# and int8 noise rarely flips it, while on real text many decisions are close. The near-synonym
# sets make most decisions close ones (the labels' cosines differ by a few hundredths), so the
# guard's agreement is measured where int8 noise does flip decisions.
EASY_LABEL_SETS: tuple[tuple[str, ...], ...] = (
    TOPICS,
    SENTIMENTS,
    ("world news", "sports", "business", "science and technology"),
    ("food", "weather", "music", "animals", "family", "education", "crime", "religion", "art", "history"),
)
NEAR_SYNONYM_LABEL_SETS: tuple[tuple[str, ...], ...] = (
    ("business", "economy", "finance", "markets"),
    ("science", "technology", "research", "computers"),
    ("politics", "government", "elections", "law"),
    ("happy", "satisfied", "disappointed", "angry"),
    ("good", "bad"),
    ("positive", "negative", "neutral"),
    ("sports", "games", "fitness", "competition"),
    ("movies", "music", "television", "celebrities"),
    ("travel", "tourism", "transport", "holidays"),
    ("health", "medicine", "fitness", "food"),
)
GUARD_LABEL_SETS: tuple[tuple[str, ...], ...] = EASY_LABEL_SETS + NEAR_SYNONYM_LABEL_SETS

_TOPIC_TEXTS: dict[str, tuple[str, ...]] = {
    "sports": (
        "The goalkeeper saved a penalty in the last minute of the cup final.",
        "She won her third marathon this year, finishing two minutes ahead of the field.",
        "The coach was sacked after the team lost six games in a row.",
        "A late three-pointer sent the basketball game into overtime.",
        "The cyclist crashed on the descent but still finished the stage.",
        "Tickets for the tennis quarter-finals sold out within an hour.",
    ),
    "politics": (
        "Parliament voted narrowly to approve the new immigration bill.",
        "The prime minister called an early election for the spring.",
        "Opposition leaders accused the government of hiding the report.",
        "The senator announced she will run for governor next year.",
        "Protesters gathered outside the ministry to demand electoral reform.",
        "The coalition collapsed after the two parties disagreed over taxes.",
    ),
    "business": (
        "The company's quarterly profit rose twelve percent on strong sales.",
        "Shares of the retailer fell after it cut its annual forecast.",
        "The two airlines agreed to merge in a deal worth four billion dollars.",
        "The central bank kept interest rates unchanged for a third month.",
        "The startup raised fifty million dollars from venture investors.",
        "Oil prices climbed as exporters announced lower production.",
    ),
    "science": (
        "Astronomers detected water vapour in the atmosphere of a distant planet.",
        "The study found that bees can learn to count to four.",
        "Researchers sequenced the genome of an ancient wheat variety.",
        "A new fossil suggests feathers evolved earlier than thought.",
        "Physicists measured the mass of the particle with record precision.",
        "The probe collected samples from the surface of an asteroid.",
    ),
    "technology": (
        "The new phone has a faster chip and a longer-lasting battery.",
        "The software update fixes a security flaw in the web browser.",
        "Engineers released an open-source tool for training language models.",
        "The chipmaker unveiled a processor built on a smaller process.",
        "A bug in the cloud service took thousands of websites offline.",
        "The app now lets users edit messages after sending them.",
    ),
    "health": (
        "Doctors recommend thirty minutes of exercise a day to protect the heart.",
        "The hospital opened a new ward for children with cancer.",
        "A vaccine against the virus will be offered to older adults this winter.",
        "Sleeping less than six hours a night raises the risk of illness.",
        "The clinic reported a rise in cases of seasonal flu.",
        "Eating more vegetables lowered blood pressure in the trial.",
    ),
    "entertainment": (
        "The film topped the box office in its opening weekend.",
        "The band announced a world tour to promote its new album.",
        "The actress won an award for her role in the historical drama.",
        "The streaming series was renewed for a fourth season.",
        "Fans queued overnight for the premiere of the superhero movie.",
        "The comedian's new show sold out every night in the capital.",
    ),
    "travel": (
        "The airline added direct flights to three island destinations.",
        "Visitors can now hike the coastal trail from village to village.",
        "The old town is best explored on foot in the early morning.",
        "Hotel prices in the city double during the summer festival.",
        "Our train through the mountains took nine hours and was worth it.",
        "Pack light and bring a rain jacket if you visit in autumn.",
    ),
}
_SENTIMENT_TEXTS: dict[str, tuple[str, ...]] = {
    "positive": (
        "I loved every minute of it and would happily go again.",
        "The staff were friendly and the food was delicious.",
        "What a wonderful surprise, this made my day.",
        "The best purchase I have made in years, highly recommended.",
        "A warm, funny and beautifully acted story.",
        "Everything worked perfectly straight out of the box.",
        "The view from the room was breathtaking.",
        "Great value, fast delivery and excellent quality.",
    ),
    "negative": (
        "It broke after two days and support never answered.",
        "The plot was dull and the ending made no sense.",
        "I waited an hour for cold food and a rude waiter.",
        "A complete waste of money, do not buy this.",
        "The room was dirty and the air conditioning did not work.",
        "Boring, far too long and badly acted.",
        "I regret booking this trip, it was a disaster.",
        "The battery dies within an hour, very disappointing.",
    ),
}


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str
    candidates: tuple[str, ...]


def builtin_labelled() -> list[LabelledText]:
    """The 64 built-in texts with their gold label and the label set they are scored against."""
    items = [LabelledText(t, label, TOPICS) for label, texts in _TOPIC_TEXTS.items() for t in texts]
    items += [LabelledText(t, label, SENTIMENTS) for label, texts in _SENTIMENT_TEXTS.items() for t in texts]
    return items


def fit_bias(cosines: np.ndarray, positive: np.ndarray, scale: float) -> float:
    """The bias (-1 to 1) of ``sigmoid(scale * (cos - bias))`` that minimizes the log-loss of
    "this label is the gold one" (grid search in steps of 0.005)."""
    biases = np.linspace(-1.0, 1.0, 401)
    z = scale * (cosines[None, :] - biases[:, None])
    sign = np.where(positive, -1.0, 1.0)[None, :]  # log(1 + e^-z) for positives, log(1 + e^z) else
    loss = np.logaddexp(0.0, sign * z).mean(axis=1)
    return round(float(biases[int(np.argmin(loss))]), 4)
