"""A small, deterministic table of movie reviews: the offline stand-in for IMDB.

`python tests/reviews.py data/reviews.csv` regenerates the copy the configs use.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

POSITIVE = (
    "great wonderful excellent moving superb brilliant delightful charming gripping "
    "beautiful funny touching memorable masterpiece stunning clever"
).split()
NEGATIVE = (
    "awful terrible boring dull tedious predictable clumsy lifeless dreadful "
    "forgettable pointless annoying mediocre disappointing bland messy"
).split()
NEUTRAL = (
    "the film movie story plot actor actress director scene ending music camera script "
    "character dialogue cast it was is and a an of this that with but its to in on"
).split()


def make_reviews(rows: int = 1000, seed: int = 0) -> list[tuple[str, str]]:
    """(text, 'positive'|'negative') pairs: mostly neutral words, a few that carry the sentiment."""
    rng = random.Random(seed)
    reviews = []
    for index in range(rows):
        positive = index % 2 == 0
        words = rng.choices(NEUTRAL, k=rng.randint(12, 30))
        cues = rng.choices(POSITIVE if positive else NEGATIVE, k=rng.randint(2, 4))
        # a contrary word now and then, as real reviews have
        if rng.random() < 0.15:
            cues.append(rng.choice(NEGATIVE if positive else POSITIVE))
        for cue in cues:
            words.insert(rng.randrange(len(words) + 1), cue)
        reviews.append((" ".join(words), "positive" if positive else "negative"))
    return reviews


def write_reviews(path: Path, rows: int = 1000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(make_reviews(rows, seed))
    return path


if __name__ == "__main__":
    write_reviews(Path(sys.argv[1]))
