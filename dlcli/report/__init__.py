"""Comparing and showing runs: comparisons and tables. No TensorFlow."""
