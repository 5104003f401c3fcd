"""A training run: its stages, session, callbacks, checkpoints and devices."""
