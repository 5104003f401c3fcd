"""The run folders and what they hold: file names, typed documents, statuses, the SQLite index,
run resolution. No TensorFlow."""
