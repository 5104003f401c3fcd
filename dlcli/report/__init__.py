"""Comparing and showing runs: comparisons and tables. No TensorFlow."""

# How many of the latest runs a reading command shows when not told (--last N; --all for every one).
LISTED_RUNS = 50  # `dlcli runs`
COMPARED_RUNS = 10  # `dlcli compare`: a table still readable side by side
