"""Learning curves: the overfitting verdict, history files of any origin (`dlcli verdict`), their
plots. No TensorFlow."""
