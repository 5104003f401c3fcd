"""Using a trained run: evaluate, predict, export, visualize."""
