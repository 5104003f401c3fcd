"""The run folders and what they hold: file names, typed documents, statuses, the SQLite index,
run resolution. No TensorFlow."""

from pathlib import Path

# Where run folders go unless --runs-dir (or DLCLI_RUNS_DIR) says otherwise; here, not in runs.py,
# so that the command line names it without loading the run documents.
DEFAULT_RUNS_DIR = Path("runs")
