"""A table of customer-support tickets, generated offline: the data of the book's model of several
inputs and outputs (Deep Learning with Python, 2nd edition, chapter 7), which the book draws at random.

Each ticket has a title and a body (words of a 20,000-word vocabulary), 100 binary tags, a
priority between 0 and 1 and one of 4 departments. Unlike the book's random arrays, the columns
are related, so the model has something to learn: a department's tickets use its own words more
often and carry its tags; urgent words and two tags raise the priority.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dlcli.errors import DlcliError

DEPARTMENTS = ("billing", "hardware", "network", "software")
NUM_TAGS = 100
VOCABULARY = 20_000
TOPIC_WORDS = 400  # the words each department uses more often
URGENT_WORDS = 50
TITLE_WORDS, BODY_WORDS = 10, 30
FILE_NAME = "tickets.csv"


def _vocabulary(rng: np.random.Generator) -> list[str]:
    """VOCABULARY distinct made-up words of three syllables."""
    onsets, vowels, codas = "bdfgklmnprstvz", "aeiou", ["", "n", "r", "s", "l"]
    syllables = [onset + vowel + coda for onset in onsets for vowel in vowels for coda in codas]
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(syllables, size=3)))
    return sorted(words)


def _text(rng: np.random.Generator, words: np.ndarray, length: int, topic: np.ndarray, urgent: np.ndarray,
          urgency: float) -> str:
    """`length` words: a department's topic words one time in 16, urgent ones as often as the ticket is urgent."""
    drawn = rng.integers(VOCABULARY, size=length)
    topical = rng.random(length) < 0.06
    drawn[topical] = rng.choice(topic, size=int(topical.sum()))
    pressing = rng.random(length) < 0.2 * urgency
    drawn[pressing] = rng.choice(urgent, size=int(pressing.sum()))
    return " ".join(words[drawn])


def write_tickets(target: Path, rows: int = 4000, seed: int = 0) -> Path:
    """`target/tickets.csv`: `rows` tickets (columns title, body, tag_0..tag_99, priority, department)."""
    rng = np.random.default_rng(seed)
    words = np.array(_vocabulary(rng))
    order = rng.permutation(VOCABULARY)
    topics = order[: TOPIC_WORDS * len(DEPARTMENTS)].reshape(len(DEPARTMENTS), TOPIC_WORDS)
    urgent = order[TOPIC_WORDS * len(DEPARTMENTS):][:URGENT_WORDS]
    department_tags = rng.permutation(NUM_TAGS)[: 10 * len(DEPARTMENTS)].reshape(len(DEPARTMENTS), 10)
    path = target / FILE_NAME
    if path.exists():
        raise DlcliError(f"{path} exists; remove it, or export into another folder")
    target.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["title", "body", *(f"tag_{t}" for t in range(NUM_TAGS)), "priority", "department"])
        for _ in range(rows):
            department = int(rng.integers(len(DEPARTMENTS)))
            urgency = rng.random()

            tags = (rng.random(NUM_TAGS) < 0.05).astype(int)
            tags[rng.choice(department_tags[department], size=2, replace=False)] = 1
            tags[:2] = (rng.random(2) < urgency).astype(int)
            priority = float(np.clip(0.7 * urgency + 0.15 * tags[:2].sum() + rng.normal(0, 0.05), 0, 1))
            title, body = (_text(rng, words, length, topics[department], urgent, urgency) for length in (TITLE_WORDS, BODY_WORDS))
            writer.writerow([title, body, *tags, f"{priority:.4f}", DEPARTMENTS[department]])
    return path
