"""Sweeps: the search space and the Optuna study (`study`, no TensorFlow) and the worker processes
that train its trials (`trials`)."""
