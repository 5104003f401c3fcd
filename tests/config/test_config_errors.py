"""Every config mistake is one line on stderr naming where, what and the fix; exit 2, no run folder."""

from __future__ import annotations

import os

import pytest

from conftest import TINY_CONFIG, run_folders


def edit(old: str, new: str) -> str:
    assert old in TINY_CONFIG, old
    return TINY_CONFIG.replace(old, new, 1)


CASES = [
    # (id, config text, fragments the one-line message must contain)
    ("unknown top-level key", TINY_CONFIG + "optimiser: adam\n",
     ["config.yaml:17: unknown key 'optimiser'; did you mean 'optimizer'?"]),
    ("unknown nested key", edit("  epochs: 2", "  epoch: 2"),
     ["config.yaml:15: training: unknown key 'epoch'; did you mean 'epochs'?"]),
    ("a key with an invisible character", edit("  epochs: 2", "  ep\u200bochs: 2"),
     ["training: unknown key 'ep\\u200bochs'; did you mean 'epochs'?"]),
    ("a layer with a Cyrillic letter that looks Latin", edit("- Flatten", "- Fl\u0430tten"),
     ["unknown layer 'Fl\u0430tten'; did you mean 'Flatten'? ('Fl\u0430tten' holds CYRILLIC SMALL LETTER A, U+0430, at "
      "character 3: type it again in ASCII)"]),  # the suggestion alone looks the same as what was typed
    ("unknown key without near match", edit("  epochs: 2", "  colour: 2"),
     ["training: unknown key 'colour'; valid keys: epochs, batch_size"]),
    ("wrong type", edit("epochs: 2", "epochs: ten"),
     ["config.yaml:15: training.epochs: input should be a valid integer", "'ten'"]),
    ("out of range epochs", edit("epochs: 2", "epochs: 0"),
     ["training.epochs: input should be greater than or equal to 1"]),
    ("out of range split", edit("validation_split: 0.2", "validation_split: 1.5"),
     ["config.yaml:5: dataset.validation_split: input should be less than 1"]),
    ("negative batch size", edit("batch_size: 64", "batch_size: -1"),
     ["training.batch_size: input should be greater than or equal to 1"]),
    ("unknown dataset", edit("name: digits", "name: mnist5k"),
     ["config.yaml:4: dataset.name: unknown dataset 'mnist5k'; did you mean 'mnist_5k'?"]),
    ("missing required key", TINY_CONFIG.replace("loss: sparse_categorical_crossentropy\n", ""),
     ["missing required key 'loss'"]),
    ("duplicate key", edit("  name: digits\n", "  name: digits\n  name: mnist_5k\n"),
     ["config.yaml:5: dataset: duplicate key 'name' (first set on line 4)"]),
    ("tab indentation", edit("  name: digits", "\tname: digits"),
     ["config.yaml:4:1: invalid YAML", "tab"]),
    ("an optimizer's name misspelled", edit("optimizer: {name: adam", "optimizer: {nme: adam"),
     ["optimizer: missing required key 'name'; is 'nme' a misspelling of it?"]),
    ("a metric with arguments written as a layer is",
     edit("metrics: [accuracy]", "metrics: [{SparseTopKCategoricalAccuracy: {k: 3}}]"),
     ["config.yaml:13: metrics.0: missing required key 'name': a Keras object with arguments is written "
      "{name: SparseTopKCategoricalAccuracy, k: 3} here"]),
    ("two YAML documents", TINY_CONFIG + "---\n" + TINY_CONFIG,
     ["invalid YAML: a second YAML document ('---'); a config is one document"]),
    ("malformed YAML", edit("metrics: [accuracy]", "metrics: [accuracy"),
     ["config.yaml:", "invalid YAML"]),
    ("empty file", "", ["config.yaml: the config is empty"]),
    ("list at top level", "- Dense\n- Flatten\n", ["config.yaml:1: the config must be a mapping", "not a list"]),
    ("a validation metric monitored without validation data",
     edit("validation_split: 0.2", "validation_split: 0").replace("batch_size: 64", "batch_size: 64\n  monitor: val_accuracy"),
     ["config.yaml:17: training.monitor: monitors val_accuracy, and there is no validation data"]),  # kept the last epoch
    ("number at top level", "5\n", ["config.yaml:1: the config must be a mapping", "...), not a number"]),  # "not a int"
    ("unsafe run name", edit("name: tiny", "name: ../../escape"),
     ["config.yaml:1: name: a run name uses letters, digits"]),
    ("a section that is not a mapping", edit("training:\n  epochs: 2\n  batch_size: 64\n", "training: [2, 64]\n"),
     ["config.yaml:14: training: expected a mapping of keys to values (got [2, 64])"]),
    # a union's members say what they take in one sentence, at the config's own key
    ("a choice out of a union", edit("  epochs: 2", "  epochs: 2\n  monitor_mode: maximum"),
     ["config.yaml:16: training.monitor_mode: input should be 'min' or 'max', or 'auto' (got 'maximum')"]),
    ("a section or a switch", edit("  epochs: 2", "  epochs: 2\n  overfitting: 3"),
     ["training.overfitting: expected a mapping of keys to values, or False (got 3)"]),
    ("a key inside a union's section", edit("  epochs: 2", "  epochs: 2\n  overfitting: {patience: 0}"),
     ["training.overfitting.patience: input should be greater than or equal to 1 (got 0)"]),
    ("layer item with two classes", edit("    - Flatten\n", "    - {Flatten: {}, Dense: {units: 3}}\n"),
     ["config.yaml:8: model.layers.0: an item names one class, not 2 (Flatten, Dense)"]),
    ("unknown layer", edit("- Flatten", "- Flaten"),
     ["config.yaml:8: model.layers.0: unknown layer 'Flaten'; did you mean 'Flatten'?"]),
    ("misspelled layer argument", edit("units: 16,", "unit: 16,"),
     ["config.yaml:9: model.layers.1.Dense: unexpected argument 'unit'; did you mean 'units'?"]),
    ("missing layer argument", edit("{units: 16, activation: relu}", "{activation: relu}"),
     ["model.layers.1.Dense: missing required argument 'units'"]),
    ("bad argument value", edit("- Dense: {units: 16, activation: relu}",
                                "- Conv2D: {filters: 4, kernel_size: 3, padding: full}"),
     ["model.layers.1.Conv2D.padding:", "full"]),
    ("unknown activation", edit("activation: relu", "activation: relux"),
     ["model.layers.1.Dense.activation:", "did you mean 'relu'?"]),
    ("convolution on flat input", edit("- Dense: {units: 16, activation: relu}",
                                       "- Conv2D: {filters: 4, kernel_size: 3}"),
     ["model.layers.1.Conv2D: cannot take the previous output of shape (None, 64)",
      "put Flatten after them"]),
    ("input shape in a layer", edit("{units: 16, activation: relu}", "{units: 16, input_shape: [64]}"),
     ["model.layers.1.Dense.input_shape: remove 'input_shape': the input shape comes from the dataset"]),
    ("Lambda refused", edit("- Flatten", "- Lambda: {function: print}"),
     ["model.layers.0: Lambda runs Python code from the config and is refused"]),
    ("unknown optimizer", edit("{name: adam, learning_rate: 0.01}", "rmsprob"),
     ["config.yaml:11: optimizer: unknown optimizer 'rmsprob'; did you mean 'rmsprop'?"]),
    ("misspelled optimizer argument", edit("learning_rate: 0.01", "learning_rat: 0.01"),
     ["optimizer: unexpected argument 'learning_rat'; did you mean 'learning_rate'?"]),
    ("unknown loss", edit("loss: sparse_categorical_crossentropy", "loss: sparse_categorical_crossentropi"),
     ["config.yaml:12: loss: unknown loss 'sparse_categorical_crossentropi'; "
      "did you mean 'sparse_categorical_crossentropy'?"]),
    ("unknown metric", edit("metrics: [accuracy]", "metrics: [acuracy]"),
     ["metrics.0: unknown metric 'acuracy'; did you mean 'accuracy'?"]),
    ("a metric twice", edit("metrics: [accuracy]", "metrics: [accuracy, Accuracy]"),
     ["config.yaml:13: metrics.1: Accuracy is listed already, at metrics.0", "list each metric once"]),
    ("unknown class to keep", edit("  validation_split: 0.2\n", "  validation_split: 0.2\n  classes: [5, 11]\n"),
     ["dataset.classes.1: digits has no class 11"]),
    ("dropout rate out of range", edit("- Flatten\n", "- Flatten\n    - Dropout: {rate: 2}\n"),
     ["config.yaml:9: model.layers.1.Dropout.rate:"]),
    ("python object in YAML", TINY_CONFIG + "extra: !!python/object/apply:os.system ['echo hacked']\n",
     ["config.yaml:17:", "invalid YAML: could not determine a constructor for the tag"]),
    ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
     ["config.yaml: the config expands to more than 10,000 values (YAML aliases?); refused"]),
    ("deep nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n", ["config.yaml: the config is nested too deeply"]),
    ("a model that ends in a layer without units", edit(
        "    - Dense: {units: 16, activation: relu}\n    - Dense: {units: 10, activation: softmax}\n", ""),
     ["config.yaml:8: model.layers.0.Flatten: the last layer, a Flatten, gives 64 values per example but digits has 10 "
      "classes; end the model with `- Dense: {units: 10, activation: softmax}`"]),  # not "set units" on a Flatten
    ("units do not match the classes", edit("units: 10, activation: softmax", "units: 5, activation: softmax"),
     ["config.yaml:10: model.layers.2.Dense.units: the last layer has 5 units but digits has 10 classes; "
      "set units: 10"]),
    ("sigmoid with many classes", edit("units: 10, activation: softmax", "units: 10, activation: sigmoid"),
     ["model.layers.2.Dense.activation: sigmoid scores each of the 10 classes on its own", "use activation: softmax"]),
    ("regression loss on classes", edit("loss: sparse_categorical_crossentropy", "loss: mse"),
     ["config.yaml:12: loss: mse is a regression loss; digits is a classification task"]),
    ("binary loss with ten classes", edit("loss: sparse_categorical_crossentropy", "loss: binary_crossentropy"),
     ["loss: binary_crossentropy is for 2 classes; digits has 10"]),
    ("categorical loss with integer labels", edit("loss: sparse_categorical_crossentropy", "loss: categorical_crossentropy"),
     ["loss: categorical_crossentropy takes one-hot labels: set `dataset.labels: one_hot`"]),
    ("sparse loss with one-hot labels", edit("  validation_split: 0.2\n", "  validation_split: 0.2\n  labels: one_hot\n"),
     ["dataset.labels: sparse_categorical_crossentropy takes integer labels"]),
    # what Keras would only say in the first training step, said before the run folder exists
    ("an optimizer argument that is a word", edit("learning_rate: 0.01}", "learning_rate: 0.01, beta_1: abc}"),
     ["config.yaml:11: optimizer.beta_1: must be a number, not 'abc'"]),
    ("a layer's size written yes", edit("units: 10, activation: softmax", "units: yes, activation: softmax"),
     ["model.layers.2.Dense.units: expected a value, not the boolean true (YAML reads yes, no, on and off as booleans)"]),
    ("a layer's size in quotes", edit("units: 10, activation: softmax", "units: '10', activation: softmax"),
     ["model.layers.2.Dense.units: expected a number, not the text '10': write it without quotes"]),
    ("an optimizer argument written off", edit("learning_rate: 0.01}", "learning_rate: 0.01, beta_1: off}"),
     ["optimizer.beta_1: expected a number, not the boolean false (YAML reads yes, no, on and off"]),
    ("an infinite learning rate", edit("learning_rate: 0.01", "learning_rate: .inf"),
     ["optimizer.learning_rate: must be a finite number, not inf"]),
    ("a dlcli setting that is infinite, said as Keras's arguments are",
     edit("  epochs: 2\n", "  epochs: 2\n  overfitting: {min_delta: .inf}\n"),
     ["training.overfitting.min_delta: must be a finite number, not inf"]),
    ("a split that is not a number", edit("validation_split: 0.2", "validation_split: .nan"),
     ["config.yaml:5: dataset.validation_split: must be a finite number, not nan"]),
    ("a callback argument that is a word", edit("  epochs: 2\n", "  epochs: 2\n  early_stopping: {patience: abc}\n"),
     ["training.early_stopping.patience: must be a number, not 'abc'"]),
    ("a switch that is a word", edit("  epochs: 2\n", "  epochs: 2\n  early_stopping: {restore_best_weights: 'yes'}\n"),
     ["training.early_stopping.restore_best_weights: must be true or false, not 'yes'"]),
    ("a loss argument Keras cannot use", edit("loss: sparse_categorical_crossentropy",
                                               "loss: {name: sparse_categorical_crossentropy, ignore_class: abc}"),
     ["config.yaml:12: loss: the first training step fails on this data: Cast string to float is not supported"]),
    ("a loss that does not fit integer labels", edit("loss: sparse_categorical_crossentropy", "loss: kl_divergence"),
     ["loss: the first training step fails on this data: Incompatible shapes"]),
    ("Dense layers on images without Flatten", edit("    - Flatten\n", ""),
     ["model.layers.1.Dense: the model's output is of shape (None, 8, 8, 10)", "add `- Flatten`"]),
    ("a batch size past any integer", edit("batch_size: 64", "batch_size: 1e20"),
     ["training.batch_size: unable to parse input string as an integer"]),
    ("SwapEMAWeights without the moving averages", edit("  epochs: 2\n", "  epochs: 2\n  callbacks: [SwapEMAWeights]\n"),
     ["training.callbacks.0: SwapEMAWeights evaluates with the optimizer's moving averages", "use_ema: true"]),
    ("the watch's monitor misspelled", edit("  epochs: 2\n", "  epochs: 2\n  overfitting: {monitor: valloss}\n"),
     ["training.overfitting.monitor: 'valloss' is not logged", "did you mean 'val_loss'?"]),  # not 'watch val_valloss'
    ("the watch's mode against Keras's direction", edit("  epochs: 2\n", "  epochs: 2\n  overfitting: {mode: max}\n"),
     ["training.overfitting.mode: 'max' ranks val_loss upside down: a lower val_loss is better (Keras ranks it 'min'); "
      "set it to min, or auto"]),
    ("a callback's mode against Keras's direction", edit(
        "  epochs: 2\n", "  epochs: 2\n  callbacks: [{EarlyStopping: {monitor: val_accuracy, mode: min}}]\n"),
     ["config.yaml:16: training.callbacks.0.EarlyStopping.mode: 'min' ranks val_accuracy upside down"]),
    ("two learning-rate reducers", edit("  epochs: 2\n", "  epochs: 2\n  reduce_lr_on_plateau: true\n"
                                        "  callbacks: [{ReduceLROnPlateau: {monitor: loss}}]\n"),
     ["config.yaml:17: training.callbacks.0: ReduceLROnPlateau is given already, at training.reduce_lr_on_plateau: "
      "both would set the learning rate; keep one"]),
    ("early stopping twice on one monitor", edit("  epochs: 2\n", "  epochs: 2\n  early_stopping: {patience: 2}\n"
                                                 "  callbacks: [{EarlyStopping: {patience: 4}}]\n"),
     ["training.callbacks.0: EarlyStopping on val_loss is given already, at training.early_stopping"]),
    # silently wrong answers: a logits flag that is a string or contradicts the last activation,
    # a metric that reads the other label encoding, a softmax over one unit
    ("from_logits as a string", edit("loss: sparse_categorical_crossentropy",
                                     "loss: {name: sparse_categorical_crossentropy, from_logits: 'false'}"),
     ["config.yaml:12: loss.from_logits: must be true or false, not 'false' (str)"]),
    ("from_logits as a number", edit("loss: sparse_categorical_crossentropy",
                                     "loss: {name: sparse_categorical_crossentropy, from_logits: 1}"),
     ["loss.from_logits: must be true or false, not 1 (int)"]),
    ("from_logits over a softmax", edit("loss: sparse_categorical_crossentropy",
                                        "loss: {name: sparse_categorical_crossentropy, from_logits: true}"),
     ["loss.from_logits: true, but the last layer applies a softmax", "not logits"]),
    ("from_logits over a sigmoid unit", edit("units: 10, activation: softmax", "units: 1, activation: sigmoid").replace(
        "loss: sparse_categorical_crossentropy", "loss: {name: binary_crossentropy, from_logits: true}").replace(
        "name: digits", "name: digits\n  classes: [0, 1]"),
     ["loss.from_logits: true, but the last layer applies a sigmoid"]),
    ("logits read as probabilities", edit("units: 10, activation: softmax", "units: 10"),
     ["config.yaml:10: model.layers.2.Dense.activation: the last layer has no activation, so its outputs are logits",
      "from_logits: true"]),
    ("one-hot metric on integer labels", edit("metrics: [accuracy]", "metrics: [accuracy, categorical_accuracy]"),
     ["metrics.1: categorical_accuracy reads one-hot labels; the labels are integers (dataset.labels: sparse)"]),
    ("integer metric on one-hot labels", edit("loss: sparse_categorical_crossentropy",
                                              "loss: categorical_crossentropy\nmetrics: [sparse_top_k_categorical_accuracy]")
     .replace("metrics: [accuracy]\n", "").replace("  validation_split: 0.2\n", "  validation_split: 0.2\n  labels: one_hot\n"),
     ["metrics.0: sparse_top_k_categorical_accuracy reads integer labels; the labels are one-hot"]),
    ("softmax over one unit", edit("units: 10, activation: softmax", "units: 1, activation: softmax").replace(
        "loss: sparse_categorical_crossentropy", "loss: binary_crossentropy").replace(
        "name: digits", "name: digits\n  classes: [0, 1]"),
     ["model.layers.2.Dense.activation: a softmax over one unit is always 1.0", "use activation: sigmoid"]),
    ("unknown callback", edit("  epochs: 2\n", "  epochs: 2\n  callbacks: [EarlyStop]\n"),
     ["training.callbacks.0: unknown callback 'EarlyStop'; did you mean 'EarlyStopping'?"]),
    ("option the dataset does not take", edit("  validation_split: 0.2\n", "  validation_split: 0.2\n  num_words: 100\n"),
     ["config.yaml:6: dataset.num_words: dataset digits takes no option 'num_words'; it takes normalize"]),
    ("monitor that is never logged", edit("  epochs: 2\n", "  epochs: 2\n  monitor: val_acc\n"),
     ["training.monitor: 'val_acc' is not logged; choose one of", "val_accuracy"]),
    ("callback monitor that is never logged",
     edit("  epochs: 2\n", "  epochs: 2\n  early_stopping: {monitor: val_acc}\n"),
     ["config.yaml:16: training.early_stopping: monitors 'val_acc', which is not logged", "'val_accuracy'?"]),
    ("seed past 32 bits", edit("seed: 0", "seed: 4294967296"),
     ["config.yaml:2: seed: input should be less than or equal to 4294967295"]),
    ("negative learning rate", edit("learning_rate: 0.01", "learning_rate: -0.5"),
     ["config.yaml:11: optimizer.learning_rate: learning_rate -0.5 would not descend the loss"]),
    ("zero learning rate", edit("learning_rate: 0.01", "learning_rate: 0"), ["optimizer.learning_rate: learning_rate 0"]),
    ("Lambda nested as an activation", edit(
        "{units: 16, activation: relu}", "{units: 16, activation: {module: keras.layers, class_name: Lambda, config: {}}}"),
     ["config.yaml:9: model.layers.1.Dense.activation: Lambda runs Python code", "nested in an argument too"]),
    ("Lambda nested in an initializer's config", edit(
        "{units: 16, activation: relu}", "{units: 16, kernel_initializer: {class_name: Constant, config: {value: "
        "{class_name: Lambda, config: {}}}}}"),
     ["model.layers.1.Dense.kernel_initializer.config.value: Lambda runs Python code"]),
    ("an argument TensorFlow refuses only when the weights are made", edit(
        "{units: 16, activation: relu}", "{units: 16, kernel_initializer: {class_name: Constant, config: {value: relu}}}"),
     ["config.yaml:9: model.layers.1.Dense: Dense cannot make its weights with these arguments: "
      "Cast string to float is not supported"]),
    ("the same in a graph of layers", edit(
        "- Flatten\n    - Dense: {units: 16, activation: relu}",
        "- Flatten: {name: flat}\n    - Dense: {units: 16, inputs: [flat], kernel_initializer: {class_name: Constant, "
        "config: {value: relu}}}"),
     ["config.yaml:9: model.layers.1.Dense: Dense cannot make its weights with these arguments: "
      "Cast string to float is not supported"]),
    ("object from outside Keras", edit(
        "{units: 16, activation: relu}", "{units: 16, kernel_regularizer: {module: os, class_name: system, config: {}}}"),
     ["model.layers.1.Dense.kernel_regularizer.module: module 'os': a config names Keras's own objects only"]),
    ("an input layer", edit("    - Flatten\n", "    - InputLayer: {shape: [8, 8, 1]}\n    - Flatten\n"),
     ["config.yaml:8: model.layers.0: remove the InputLayer: the input and its shape come from the dataset"]),
    ("the overfitting watch on a training metric", edit("  epochs: 2", "  epochs: 2\n  overfitting: {monitor: accuracy}"),
     ["training.overfitting.monitor: overfitting shows on the validation data, not the training data's accuracy: "
      "watch val_accuracy"]),
    ("the overfitting watch on the learning rate", edit("  epochs: 2", "  epochs: 2\n  overfitting: {monitor: learning_rate}"),
     ["training.overfitting.monitor: learning_rate is logged beside the metrics and measures no model"]),  # not val_learning_rate
    ("a layer name taken", edit("    - Flatten\n    - Dense: {units: 16, activation: relu}",
                                "    - Flatten: {name: flat}\n    - Dense: {units: 16, activation: relu, name: flat}"),
     ["model.layers.1.Dense: the name 'flat' is taken by an earlier layer: give each layer its own name, or none"]),
    ("a 1D pooling of a vector", edit("    - Dense: {units: 16, activation: relu}\n",
                                      "    - Dense: {units: 16, activation: relu}\n    - GlobalAveragePooling1D\n"),
     ["1D convolution and pooling layers need sequences (batch, steps, features)"]),
    ("a learning-rate schedule", edit("learning_rate: 0.01", "learning_rate: {ExponentialDecay: {initial_learning_rate: 0.1}}"),
     ["optimizer.learning_rate: a learning-rate schedule cannot be given in a config"]),
    ("a negative patience", edit("  epochs: 2", "  epochs: 2\n  early_stopping: {monitor: val_loss, patience: -3}"),
     ["training.early_stopping.patience: patience is a number of epochs: 0 or more, not -3"]),
    ("a factor of 0", edit("  epochs: 2", "  epochs: 2\n  reduce_lr_on_plateau: {factor: 0}"),
     ["training.reduce_lr_on_plateau.factor: factor 0 would set the learning rate to 0: give one between 0 and 1"]),
    ("a dropout of every unit", edit("    - Flatten\n", "    - Flatten\n    - Dropout: {rate: 1.0}\n"),
     ["model.layers.1.Dropout.rate: rate 1.0 drops every unit, and the layer passes nothing on"]),
    # an augmentation is tried on random examples as the model is built (models._augmentation_layers)
    ("a layer with weights as augmentation", edit("model:\n", "model:\n  augmentation:\n    - Dense: {units: 3}\n"),
     ["config.yaml:8: model.augmentation.0.Dense: Dense learns weights, and augmentation is applied only while "
      "training: move it to model.layers"]),
    ("a layer active at inference as augmentation", edit("model:\n", "model:\n  augmentation:\n    - Rescaling: {scale: 0.5}\n"),
     ["model.augmentation.0.Rescaling: Rescaling changes the data at inference too"]),
    ("an augmentation that crops while training only",  # the first step failed, blamed on model.layers
     edit("model:\n", "model:\n  augmentation:\n    - RandomCrop: {height: 4, width: 4}\n"),
     ["config.yaml:8: model.augmentation.0.RandomCrop: RandomCrop changes the examples' shape while training, from "
      "(8, 8, 1) to (4, 4, 1), and not at inference"]),
    ("an augmentation that augments nothing", edit(
        "model:\n", "model:\n  augmentation:\n    - RandomZoom: {height_factor: 0.1}\n    - RandomFlip: {mode: diagonal}\n"),
     ["config.yaml:9: model.augmentation.1.RandomFlip: RandomFlip changed none of 32 random examples in 10 tries while "
      "training: with these arguments it augments nothing; check them"]),  # Keras accepts the mode and flips nothing
    ("an argument value Keras has no implementation of", edit(
        "model:\n", "model:\n  augmentation:\n    - RandomTranslation: {height_factor: 0.1, width_factor: 0.1, "
        "fill_mode: bogus}\n"),
     ["config.yaml:8: model.augmentation.0.RandomTranslation.fill_mode: Unknown `fill_mode` bogus"]),  # a traceback
    ("a base run that is not there", edit("model:\n", "model:\n  base: {run: nosuchrun, until: dense}\n"),
     ["config.yaml:7: model.base.run: no run 'nosuchrun'"]),
    ("a loss's initials misspelled", edit("loss: sparse_categorical_crossentropy", "loss: msee"),
     ["config.yaml:12: loss: unknown loss 'msee'; did you mean 'mse'?"]),  # Keras keeps its initials out of its names
    ("an early-stopping baseline that is no number", edit("  epochs: 2", "  epochs: 2\n  early_stopping: {baseline: abc}"),
     ["config.yaml:16: training.early_stopping: EarlyStopping fails at an epoch's end with these arguments"]),  # mid-run
    ("a misspelled initializer", edit("{units: 16, activation: relu}", "{units: 16, kernel_initializer: he_normall}"),
     ["config.yaml:9: model.layers.1.Dense.kernel_initializer: unknown initializer 'he_normall'; did you mean "
      "'he_normal'?; write a name (he_normal) or its class and arguments (RandomNormal: {stddev: 0.05})"]),
    ("a regularizer's factor without its class", edit("{units: 16, activation: relu}",
                                                      "{units: 16, kernel_regularizer: {l2: 0.01}}"),
     ["model.layers.1.Dense.kernel_regularizer: {'l2': 0.01} names no regularizer class; write a name (l2) or its "
      "class and arguments (L2: {l2: 0.001})"]),
    ("a regularizer Keras refuses", edit("{units: 16, activation: relu}", "{units: 16, kernel_regularizer: {L2: {l2: -1}}}"),
     ["model.layers.1.Dense.kernel_regularizer: cannot make the regularizer: Invalid value for argument l2"]),
    ("a misspelled key of an optional section", edit("  epochs: 2", "  epochs: 2\n  overfitting: {patiense: 2}"),
     ["training.overfitting: unknown key 'patiense'; did you mean 'patience'?"]),
    ("a misspelled key of the sweep section", TINY_CONFIG + "sweep: {metod: random}\n",
     ["sweep: unknown key 'metod'; did you mean 'method'?"]),
    ("a boolean where a number is asked", edit("  epochs: 2", "  epochs: yes"),
     ["training.epochs: expected a number, not the boolean true"]),  # pydantic's lax mode took it as 1 epoch
    ("a name read as the newest run", edit("name: tiny", "name: latest"),
     ["config.yaml:1: name: 'latest' would be read as the newest run: give another name"]),
    ("a name read as a run id", edit("name: tiny", "name: '20261204-1'"),
     ["name: '20261204-1' would be read as the start of a run id"]),
    ("a number where text is asked", edit("name: tiny", "name: 123"),
     ["config.yaml:1: name: input should be a valid string (got 123); to give it as text, put it in quotes"]),
    ("a word YAML reads as a boolean where text is asked", edit("name: tiny", "name: no"),
     ["name: input should be a valid string (got False); YAML reads it as a boolean (yes, no, on, off): to give it"]),
    ("a list left open at the end of the file", edit("  batch_size: 64", "  batch_size: [64,"),
     ["config.yaml:16:15: invalid YAML: a '[' list opened here is never closed"]),  # not the line after the last
    ("a quote left open at the end of the file", edit("  batch_size: 64", "  batch_size: '64"),
     ["config.yaml:16:15: invalid YAML: a quoted string opened here is never closed"]),
    ("a whole number too long to read", edit("  epochs: 2", "  epochs: " + "9" * 5000),
     ["config.yaml:15:11: invalid YAML: a whole number of 5000 characters, too long to read: no setting is that large"]),
    ("a batch larger than TensorFlow counts", edit("  batch_size: 64", "  batch_size: 99999999999999999999"),
     ["config.yaml:16: training.batch_size: input should be less than or equal to 2147483647"]),  # not an OverflowError mid-run
    ("an empty value", edit("  epochs: 2", "  epochs:"),
     ["config.yaml:15: training.epochs: input should be a valid integer (got None); YAML reads an empty value (or ~, "
      "null) as null: give a value"]),
    ("a date where text is asked", edit("name: tiny", "name: 2020-01-01"),
     ["name: input should be a valid string (got 2020-01-01); YAML reads it as a date: to give it as text, put it "
      "in quotes"]),
    ("a metric that compares one-hot labels, given class indices", edit("metrics: [accuracy]", "metrics: [accuracy, precision]"),
     ["metrics.1: precision cannot score labels of shape (N,) against outputs of shape (N, 10)",
      "set `dataset.labels: one_hot`"]),  # not TensorFlow's "Incompatible shapes: [1,2] vs. [1,20]" alone
    ("pooling an image down to nothing", edit("    - Flatten\n", "    - MaxPooling2D\n" * 4 + "    - Flatten\n"),
     ["model.layers.3.MaxPooling2D: cannot take the previous output of shape (None, 1, 1, 1): Computed output size "
      "would be zero or negative"]),  # Keras's reason, not the line it wraps around it
    ("k-fold with more folds than examples of any class", edit("  epochs: 2\n", "  epochs: 2\n  kfold: 400\n"),
     ["training.kfold: 400 folds need 400 examples of a class; the largest class has", "use at most"]),
]


@pytest.mark.parametrize("text, fragments", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_config_error_is_one_located_line(cli, write_config, runs_dir, text, fragments):
    result = cli("train", str(write_config(text)))

    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: ")
    for fragment in fragments:
        assert fragment in message
    assert "Traceback" not in result.output
    assert run_folders(runs_dir) == []  # caught before training: nothing is left behind


def test_an_argument_misspelled_by_a_set_is_blamed_on_the_set_not_the_file(cli, write_config, runs_dir):
    result = cli("check", str(write_config(TINY_CONFIG)), "--set", "model.layers.1.Dense.unit=5")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: --set model.layers.1.Dense.unit=5: model.layers.1.Dense: unexpected argument "
                                    "'unit'; did you mean 'units'?"), result.stderr
    # a name set under an optimizer the file writes: the file's line is right, the --set is not
    named = cli("check", str(write_config(TINY_CONFIG)), "--set", "optimizer.name=adamm")
    assert named.stderr.startswith("error: --set optimizer.name=adamm: optimizer: unknown optimizer 'adamm'; did you mean "
                                   "'adam'?"), named.stderr
    loss = cli("check", str(write_config(TINY_CONFIG)), "--set", "loss.name=mse")
    assert loss.stderr.startswith("error: --set loss.name=mse: loss: mse is a regression loss"), loss.stderr


def test_error_found_after_the_folder_exists_marks_the_run_failed(cli, write_config, runs_dir):
    from conftest import read_json

    # with a mode, any logged value may be monitored: whether it is logged shows at the first epoch's end
    result = cli("train", str(write_config(edit("  epochs: 2\n", "  epochs: 2\n  monitor: val_acc\n  monitor_mode: max\n"))))

    assert result.exit_code == 2
    (folder,) = run_folders(runs_dir)
    info = read_json(folder / "run.json")
    assert info["status"] == "failed"
    assert "val_acc" in info["error"]
    # a resume would meet the same error: show and resume say to fix the config instead
    shown, resumed = cli("show", folder.name), cli("train", "--resume", folder.name)
    assert "fix the config" in shown.stdout and "--resume" not in shown.stdout
    assert resumed.exit_code == 2 and "resuming would fail the same way: fix the config" in resumed.stderr


def test_debug_shows_the_traceback(cli, write_config):
    result = cli("--debug", "train", str(write_config(edit("epochs: 2", "epochs: ten"))), runs=False)

    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_missing_config_file(cli, tmp_path):
    result = cli("train", str(tmp_path / "nope.yaml"))

    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such config file"


def test_a_huge_config_file_is_refused_unread(cli, write_config, runs_dir):
    path = write_config(TINY_CONFIG + "# padding\n" * 1_100_000)

    result = cli("train", str(path))

    assert result.exit_code == 2
    assert "a config is at most 1 MB of YAML" in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs a device without end")
def test_a_config_read_from_a_device_without_end_stops_at_the_size_limit(cli, runs_dir):
    result = cli("check", "/dev/zero")  # st_size is 0 there: it was read until memory ran out

    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: /dev/zero: the config is over 1 MB; a config is at most 1 MB of YAML")


def test_a_string_that_reads_as_a_number_is_accepted(cli, write_config, runs_dir):
    result = cli("train", str(write_config(edit("batch_size: 64", 'batch_size: "64"'))))

    assert result.exit_code == 0, result.output


def test_an_object_argument_is_written_as_a_layer_is_or_as_keras_serializes_it(write_config):
    import keras

    from dlcli.build.models import build_object
    from dlcli.config import load_config

    config = load_config(write_config(TINY_CONFIG))
    written = [{"L2": {"l2": 0.002}}, {"class_name": "L2", "config": {"l2": 0.002}}]

    layers = [build_object(config, ("model", "layers", 1, "Dense"), keras.layers.Dense,
                           {"units": 4, "kernel_regularizer": form}) for form in written]

    assert [type(layer.kernel_regularizer).__name__ for layer in layers] == ["L2", "L2"]
    assert [float(layer.kernel_regularizer.l2) for layer in layers] == pytest.approx([0.002, 0.002])


def test_a_run_s_own_config_without_validation_data_trains_again(cli, write_config, runs_dir):
    # config.yaml writes every default out, monitor: val_loss too: refusing it refused dlcli's own "train it again"
    text = TINY_CONFIG.replace("validation_split: 0.2", "validation_split: 0").replace(
        "batch_size: 64", "batch_size: 64\n  monitor: val_loss")

    result = cli("check", str(write_config(text)))

    assert result.exit_code == 0, result.output
