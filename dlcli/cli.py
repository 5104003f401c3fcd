"""The `dlcli` command line: parse, call the library, print, map errors to exit codes.

TensorFlow is imported only inside the commands that train or evaluate.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import json
import math
import os
import re
import shlex
import sys
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from dlcli import __version__, stopping
from dlcli.choices import WHERE_EXAMPLE, Direction, ExportFormat, Pruner, Split, SweepMethod, where_operators_said
from dlcli.errors import DlcliError, counted
from dlcli.outputs import is_stream, refuse_inputs, replaced, unusable_output
from dlcli.report import COMPARED_RUNS, LISTED_RUNS
from dlcli.report.emit import Format, NestedFormat, emit_csv, emit_json, emit_json_rows
from dlcli.stopping import EXIT_INTERRUPTED
from dlcli.store import DEFAULT_RUNS_DIR
from dlcli.store.status import RunStatus


class OneLineErrors(TyperGroup):
    """A usage error is one line, as every other error: what is wrong and where help is, exit 2
    (click prints the usage, a hint and the error on three)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Abort:
            error_console.print("stopped: aborted")
            sys.exit(1)
        except Exception as error:  # Typer's click errors, by their public base and attributes
            if not isinstance(error, getattr(typer, "TyperException", ())):
                raise
            if type(error).__name__ == "NoArgsIsHelpError":  # `dlcli` alone: the help, as click shows it
                error.show()
                sys.exit(error.exit_code)
            context = getattr(error, "ctx", None)
            where = f" (see `{context.command_path} --help`)" if context is not None else ""
            error_console.print(f"error: {error.format_message()}{where}")
            sys.exit(error.exit_code)
        sys.exit(result if isinstance(result, int) else 0)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not hasattr(command, "commands"):  # a command, not a group of them
            _refuse_repeated_options(typer.Context(command, info_name=name, parent=ctx), rest)
        return name, command, rest

    def invoke(self, ctx):
        """An interrupt anywhere in a command, its group's callback included (`datasets`), is one
        line and 130; Typer would end with 130 and say nothing. A command with work to record
        (train, sweep) has said more already."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            error_console.print("stopped: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None


class GivenTwice(typer.BadParameter):
    """An option that takes one value given twice: a usage error, said as what it is (not 'Invalid value')."""

    def format_message(self) -> str:
        return self.message


def _refuse_repeated_options(context: typer.Context, args: list[str]) -> None:
    """An option that takes one value, given twice, is refused: click keeps the last without a word
    (`runs --status interrupted --status completed` listed the completed alone). The options that
    take several (--set, --where, --grid) and the switches are left alone. Read by click's own
    parser, as the command will read them: a value that spells an option's name is a value."""
    try:
        _, _, order = context.command.make_parser(context).parse_args(list(args))
    except typer.TyperException:  # the command's own reading says what is wrong, as it always has
        return
    given: Counter[str] = Counter()
    for param in order:
        if getattr(param, "param_type_name", "") != "option" or param.multiple or getattr(param, "is_flag", False) \
                or getattr(param, "count", False):
            continue
        given[param.name] += 1
        if given[param.name] == 2:
            raise GivenTwice(f"{param.opts[-1]} is given twice: give it once (the second would replace the first)",
                             ctx=context)


app = typer.Typer(
    cls=OneLineErrors,
    name="dlcli",
    help="Run, watch and compare Keras experiments described in YAML files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Piped output (files, CI logs) gets wide tables instead of 80 cramped columns. No markup or emoji
# codes: run names, paths, class names and messages are shown as written ("lr[1e-3]", "a:b:"), and
# styles are given as Text styles.
EXIT_BROKEN_PIPE = 141  # a shell's status for a process ended by SIGPIPE (128 + 13)


def _reader_gone() -> None:
    """The reader stopped reading (`dlcli runs | head -1`): nothing is wrong, and what is left in
    the buffer must not fail again at exit; the status of a SIGPIPE's end."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(EXIT_BROKEN_PIPE)


class _Console(Console):
    def on_broken_pipe(self) -> None:  # rich's own exits with 1
        self.quiet = True
        _reader_gone()


console = _Console(highlight=False, markup=False, emoji=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
error_console = _Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)
debug_mode = {"enabled": False}

# errno values that say a path given to a command cannot be used as it is (exit 2, as any input
# error); a full disk or an I/O error is the machine's (exit 1)
UNUSABLE_PATH = {
    errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST,
    errno.ENAMETOOLONG, errno.ELOOP,
}

def _runs_folder(path: Path) -> Path:
    """--runs-dir: a folder, or none yet (train makes it); a file there would read as a folder of no runs."""
    from dlcli.store.runs import RUN_FILE

    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file; give the folder that holds the run folders")
    if (path / RUN_FILE).is_file():
        raise typer.BadParameter(f"{path} is a run's folder; give the folder that holds the run folders "
                                 f"({path.parent}), and the run as an argument")
    return path


RunsDir = Annotated[
    Path,
    typer.Option("--runs-dir", envvar="DLCLI_RUNS_DIR", help="Folder that holds the run folders.", callback=_runs_folder),
]


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn DlcliError into one line on stderr and its exit code (a traceback only with --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DlcliError as error:
            if debug_mode["enabled"]:
                error_console.print(traceback.format_exc())
            error_console.print(f"{error.label}: {error}")
            raise typer.Exit(error.exit_code) from None
        except BrokenPipeError:  # what is written without the console: csv and json rows
            _reader_gone()
        except OSError as error:
            if debug_mode["enabled"]:
                error_console.print(traceback.format_exc())
            where = f"{error.filename}: " if error.filename else ""
            error_console.print(f"error: {where}{error.strerror or error}")
            # a path the user gave that cannot be used is a usage error; the machine's failures are not
            raise typer.Exit(2 if error.errno in UNUSABLE_PATH else 1) from None

    return wrapper


def _import_tensorflow() -> None:
    from dlcli.build.backend import import_tensorflow

    import_tensorflow(verbose=debug_mode["enabled"], without_keras_extras=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"dlcli {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and TensorFlow's own log.")
    ] = False,
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Run, watch and compare Keras experiments described in YAML files."""
    debug_mode["enabled"] = debug


def _summary_table(summary: dict[str, Any]) -> Table:
    from dlcli.store.index import shown

    kfold = summary.get("kfold")
    if kfold:
        table = Table(title=f"{kfold['k']}-fold cross-validation: mean ± std over the folds")
        table.add_column("metric")
        table.add_column("at each fold's best epoch", justify="right")
        table.add_column("at each fold's last epoch", justify="right")
        for key, final in kfold["final"].items():
            best = kfold["best"].get(key, {"mean": float("nan"), "std": float("nan")})
            table.add_row(key, f"{shown(best['mean'])} ± {best['std']:.2g}", f"{shown(final['mean'])} ± {final['std']:.2g}")
        return table
    best_epoch, last_epoch = summary["best_epoch"], summary["epochs_run"]
    ranked = f"best by {summary['monitor']}: epoch {best_epoch}" if summary.get("monitor") else "the last kept"
    table = Table(title=f"{counted(last_epoch, 'epoch')}, {ranked}")
    table.add_column("metric")
    table.add_column(f"best (epoch {best_epoch})", justify="right")
    table.add_column(f"final (epoch {last_epoch})", justify="right")
    for key, final in summary["final"].items():
        best = summary["best"].get(key)
        table.add_row(key, "" if best is None else shown(best), shown(final))
    return table


@app.command()
@reports_errors
def train(
    config: Annotated[Optional[Path], typer.Argument(help="The experiment's YAML config file.")] = None,
    overrides: Annotated[
        list[str],
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a config value by its dotted path, e.g. training.epochs=3 "
            "or model.layers.1.Dense.units=256 (repeatable).",
        ),
    ] = [],  # noqa: B006 - Typer reads the default, never mutates it
    name: Annotated[
        Optional[str], typer.Option("--name", help="Run name (default: the config's `name`).")
    ] = None,
    resume: Annotated[
        Optional[str],
        typer.Option("--resume", metavar="RUN", help="Continue an interrupted or crashed run in its own folder."),
    ] = None,
    repeat: Annotated[Optional[int], typer.Option(
        "--repeat", min=2, metavar="N", help="Train N times, seeds `seed` to `seed`+N-1: one group of runs to compare.",
    )] = None,
    seeds: Annotated[Optional[str], typer.Option(
        "--seeds", metavar="S1,S2,...", help="Train once per seed listed: one group of runs to compare.",
    )] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", min=1, help="With --repeat/--seeds: workers training at once, each its share of the cores.",
    )] = 1,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Validate CONFIG, train it and write a run folder under --runs-dir (or --resume RUN); with
    --repeat or --seeds, once per seed, through the sweep's workers."""
    from dlcli.config import load_config

    if repeat is not None or seeds is not None:
        return _train_repeats(config, overrides, name, resume, repeat, seeds, jobs, runs_dir)
    if jobs != 1:
        raise DlcliError("--jobs trains several seeds at once: give --repeat N or --seeds S1,S2,...")
    if resume is not None:
        if config is not None or overrides or name is not None:
            raise DlcliError("--resume RUN continues a run with its own config.yaml; give no CONFIG, --set or --name")
        command = ["dlcli", "train", "--resume", resume]
    else:
        if config is None:
            raise DlcliError("give a CONFIG file to train, or --resume RUN")
        experiment = load_config(config, overrides, name=name)
        command = ["dlcli", "train", str(config), *(arg for o in overrides for arg in ("--set", o))]
        command += ["--name", name] if name is not None else []
        from dlcli.data import start_checks

        start_checks(experiment)  # the data checks read the photos while TensorFlow is imported
    command += ["--runs-dir", str(runs_dir)]

    _import_tensorflow()
    from dlcli.training import train as training

    # SIGINT too: a process started in the background of a script inherits SIGINT ignored,
    # and `kill -INT` must still stop it cleanly.
    previous_handlers = stopping.install(stopping.stop_training)
    try:
        if resume is not None:
            result = training.resume(resume, runs_dir, console=console, command=shlex.join(command))
        else:
            result = training.train(experiment, runs_dir, console=console, command=shlex.join(command))
    except KeyboardInterrupt:
        error_console.print("stopped: interrupted before training started")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        stopping.restore_unless_stopping(previous_handlers)
    console.print(_summary_table(result.summary))
    _print_verdicts(result.summary, warned_live=result.warned_live)
    console.print(Text.assemble("run ", (result.run.id, "bold"), f" completed: {result.run.path}"))


def _train_repeats(
    config: Path | None, overrides: list[str], name: str | None, resume: str | None, repeat: int | None,
    seeds: str | None, jobs: int, runs_dir: Path,
) -> None:
    """`train --repeat N | --seeds ...`: a sweep over `seed` alone; its runs form one group."""
    from dlcli.report.compare import compare, headline_column
    from dlcli.report.groups import groups_of
    from dlcli.report.render import groups_table
    from dlcli.sweep.driver import sweep

    if resume is not None:
        raise DlcliError("--resume RUN continues one run; an interrupted --repeat continues with `dlcli sweep --resume ID`")
    if config is None:
        raise DlcliError("give a CONFIG file to train with --repeat or --seeds")
    if repeat is not None and seeds is not None:
        raise DlcliError("give --repeat N or --seeds S1,S2,..., not both")
    chosen = None
    if seeds is not None:
        try:
            chosen = [int(seed) for seed in seeds.split(",")]
        except ValueError:
            raise DlcliError(f"--seeds {seeds}: expected whole numbers separated by commas, e.g. --seeds 0,3,7") from None

    def show_results(records) -> None:
        comparison = compare(records)
        console.print(groups_table(groups_of(records, comparison), comparison.metrics,
                                   headline_column(comparison, None, records)))

    plan = sweep(
        config, grid=[], method=None, trials=None, prune=None, storage=None, seed=None, overrides=overrides, name=name,
        resume=None, retry_failed=False, jobs=jobs, runs_dir=runs_dir,
        say=error_console.print, show_results=show_results, seeds=chosen, repeat=repeat,
    )
    from dlcli.store.runs import runs_dir_option

    console.print(f"{len(plan.trials)} seeds trained (sweep {plan.id}); compare groups with: dlcli compare --sweep "
                  f"{plan.id}{runs_dir_option(runs_dir)}")


def _print_verdicts(summary: dict[str, Any], warned_live: bool = False) -> None:
    """The overfitting verdict with its advice, then the notes. After a training that gave the ⚠
    line as it happened, the verdict is repeated without it: the warning is said once."""
    overfitting = summary.get("overfitting") or {}
    if overfitting.get("message"):
        mark = "verdict:" if warned_live else "⚠"
        console.print(f"{mark} {overfitting['message']}", style="bold yellow")
        for advice in overfitting.get("advice", []):
            console.print(f"  → {advice}")
    for note in summary.get("notes", []):
        console.print(Text.assemble(("note:", "cyan"), f" {note}"))


FormatOption = Annotated[Format, typer.Option("--format", help="table, json or csv (data only on stdout).")]
WhereOption = Annotated[
    list[str],
    typer.Option("--where", metavar="KEY=VALUE", help="Only runs whose config key or metric (best.M, final.M, test.M) "
                 f"is {where_operators_said()} VALUE, e.g. {WHERE_EXAMPLE} (repeatable, all must hold)."),
]


RunArgument = Annotated[str, typer.Argument(help="Run id, unique prefix, 'latest', run name, or folder.")]


@app.command()
@reports_errors
def evaluate(
    run: RunArgument,
    split: Annotated[Split, typer.Option("--split", help="The split to score the model on.")] = Split.test,
    output_format: FormatOption = Format.table,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Re-evaluate a run's model on its test split, rebuilt from the run's own config."""
    from dlcli.store.runs import EVALUATION_FILES, resolve_run

    folder = resolve_run(runs_dir, run)
    _note_if_unfinished(runs_dir, folder)
    _import_tensorflow()
    from dlcli.report.render import evaluation_view
    from dlcli.use.evaluate import evaluate_run, save_evaluation

    evaluation = evaluate_run(folder, split)
    if output_format == Format.json:
        emit_json(evaluation.shown())
    elif output_format == Format.csv:
        emit_csv([{"run": folder.id, "split": split, "samples": evaluation.samples, **evaluation.metrics}])
    else:
        console.print(evaluation_view(evaluation))
    try:
        save_evaluation(folder, evaluation)
    except OSError as error:  # shown above all the same: the computation is not lost
        raise DlcliError(
            f"cannot write {folder.file(EVALUATION_FILES[split])} ({error.strerror or error}); the metrics above were not "
            "saved in the run folder"
        ) from None
    error_console.print(f"wrote {folder.file(EVALUATION_FILES[split])}")


def _note_if_unfinished(runs_dir: Path, folder) -> None:
    """Its model.keras is whole whenever it is read, but, for a run still training or stopped, only
    the best epoch so far."""
    from dlcli.store.index import read_run
    from dlcli.store.runs import OWNER_FILE

    record = read_run(runs_dir, folder)
    if record.status == RunStatus.running:
        try:
            owner = folder.file(OWNER_FILE).read_text(encoding="utf-8").strip()
        except OSError:  # a run of an older dlcli has no owner.lock
            owner = ""
        owner = owner or f"pid {record.info['pid']} on {record.info['host']}"
        error_console.print(f"note: run {folder.id} is still being trained by {owner}: this uses its best model so far")
    elif record.status in (RunStatus.crashed, RunStatus.interrupted):  # its model is only as good as it got
        error_console.print(
            f"note: run {folder.id} {record.status} after {counted(record.epochs_done(), 'epoch')}: this uses the best "
            f"model of those; `{folder.resume_command}` continues it"
        )


# The names an earlier `predict --output` wrote: one of them (or a name without a suffix) is written over,
# any other file is refused; a stream (/dev/stdout) is written to.
PREDICTION_SUFFIXES = (".csv", ".json", ".txt")


def _format_for(output: Path | None, asked: Format | None) -> Format:
    """The rows' format: --format, else the one --output's suffix names (.csv, .json), else a table;
    a --format other than the suffix's is refused, not written under the wrong name."""
    named = next((choice for choice in (Format.csv, Format.json) if output and output.suffix.lower() == f".{choice.value}"),
                 None)
    if asked is not None and named is not None and asked != named:
        raise DlcliError(f"--format {asked.value} with --output {output}: a .{named.value} file would not hold "
                         f"{asked.value}; give --format {named.value}, or a name for what it holds")
    return asked or named or Format.table


@app.command()
@reports_errors
def predict(
    run: RunArgument,
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders, .csv tables, .npy/.npz arrays.")],
    output_format: Annotated[Optional[Format], typer.Option(
        "--format", help="table, json or csv (default: as --output's name says, else table).")] = None,
    top: Annotated[Optional[int], typer.Option("--top", min=1, help="Also the K most likely classes.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Inputs per batch.")] = 256,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write the rows to this file.")] = None,
    fold: Annotated[
        Optional[int], typer.Option("--fold", min=1, help="k-fold runs: this fold's model (default: their mean).")
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """The run's model on new inputs, prepared as its training data was: one row per input."""
    from dlcli.store.runs import refuse_among_runs, refuse_training_data_output, resolve_run

    if output is not None:
        if why := unusable_output(output):
            raise DlcliError(f"--output {output}: {why}")
        refuse_inputs([output], inputs)
        refuse_among_runs(output, runs_dir, "--output")
    output_format = _format_for(output, output_format)
    folder = resolve_run(runs_dir, run)
    if output is not None:
        refuse_training_data_output(output, folder, "--output")
    _import_tensorflow()
    from dlcli.errors import SomeInputsFailed
    from dlcli.report.render import write_predictions
    from dlcli.use.predict import Prediction

    prediction = Prediction(folder, inputs, top, batch_size, fold)
    if output is not None:  # an image of an input folder too
        refuse_inputs([output], prediction.files())  # said before the next: an input is the likelier mistake
        if output.is_file() and not is_stream(output) and output.suffix and output.suffix.lower() not in PREDICTION_SUFFIXES:
            raise DlcliError(f"--output {output} exists and is no file of predictions ({', '.join(PREDICTION_SUFFIXES)}, "
                             "or a name without a suffix): writing them would destroy it; give a new file")
    with replaced(output, newline="") if output else contextlib.nullcontext(sys.stdout) as stream:
        if error_console.is_terminal and (output or output_format != Format.table):
            from rich.progress import Progress

            with Progress(console=error_console, transient=True) as progress:
                task = progress.add_task("predicting", total=prediction.count())
                write_predictions(prediction.rows(lambda n: progress.advance(task, n)), output_format, stream)
        else:
            write_predictions(prediction.rows(), output_format, stream)
    if output:
        error_console.print(f"wrote {output}")
    if prediction.failed:
        more = len(prediction.failed) - 5
        shown = ", ".join(prediction.failed[:5]) + (f" and {more} more" if more > 0 else "")
        message = (f"{len(prediction.failed)} input(s) could not be read as images (damaged, or not a BMP, GIF, JPEG or "
                   f"PNG inside): {shown}")
        # none answered: the inputs are the user's error (2); some answered: a partial result (1)
        raise (DlcliError if len(prediction.failed) == prediction.count() else SomeInputsFailed)(message)


@app.command()
@reports_errors
def export(
    run: RunArgument,
    export_format: Annotated[ExportFormat, typer.Option("--format", help="What to write.")] = ExportFormat.saved_model,
    output: Annotated[Optional[Path], typer.Option("--output", help="Where (default: RUN/export/).")] = None,
    fold: Annotated[
        Optional[int], typer.Option("--fold", min=1, help="k-fold runs: this fold's model (default: their mean).")
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Export the run's model with its preprocessing, then check the export against it."""
    from dlcli.store.runs import refuse_runs_folder_output, resolve_run

    if output is not None:
        refuse_runs_folder_output(output, runs_dir, "--output", folder=True)  # a SavedModel is one
    folder = resolve_run(runs_dir, run)
    _note_if_unfinished(runs_dir, folder)
    _import_tensorflow()
    from dlcli.use.exporting import export_run

    report = export_run(folder, export_format, output, fold)
    agreement = "" if report.same_prediction is None else f", the same prediction for {report.same_prediction:.1%}"
    console.print(
        f"wrote {report.path} (and {report.path}.json): on {report.sample} inputs from {report.sample_source}, "
        f"the largest difference from the Keras model is {report.largest_difference:.2g}{agreement}"
    )


def _one_of_last_and_all(last: int | None, every: bool) -> None:
    if last is not None and every:
        raise DlcliError(f"--last {last} and --all: give one of them (--all lists every run that matches)")


@app.command("runs")
@reports_errors
def list_runs(
    status: Annotated[
        Optional[RunStatus], typer.Option("--status", help="Only runs with this status (crashed and damaged included).")
    ] = None,
    where: WhereOption = [],  # noqa: B006 - Typer reads the default, never mutates it
    sort: Annotated[Optional[str], typer.Option(
        "--sort", help="Best first by a metric, e.g. val_accuracy or test.accuracy.")] = None,
    last: Annotated[Optional[int], typer.Option(
        "--last", min=1,
        help=f"The N most recent runs (default: {LISTED_RUNS}; with --sort and no --last, the {LISTED_RUNS} best).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Every run that matches.")] = False,
    output_format: FormatOption = Format.table,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """List runs: id, name, status, dataset, epochs, best and test metric, start, duration."""
    from dlcli.store.index import RunIndex

    _one_of_last_and_all(last, show_all)
    _a_sort_names_something(sort)
    with RunIndex(runs_dir) as index:
        ids, matched = index.selected_ids(where, status, sort, None if show_all else (last or LISTED_RUNS), recent=last)
        _print_runs(index, ids, matched, output_format, runs_dir, selected=bool(status or where))


def _print_runs(index, ids: list[str], matched: int, output_format: Format, runs_dir: Path, selected: bool) -> None:
    """The runs `ids` read from `index` as they are printed: a stream in every format."""
    if output_format == Format.csv:  # the header's metric columns asked of the index first
        from dlcli.store.runs import RunRecord

        columns = [*RunRecord.ROW_COLUMNS, *index.metric_keys(ids)]
        return emit_csv((record.as_row() for record in index.load(ids)), columns)
    if output_format == Format.json:
        return emit_json_rows(record.as_row() for record in index.load(ids))
    if not ids:
        advice = ("`dlcli runs` lists them all" if selected
                  else "start one with `dlcli train configs/mnist_dense.yaml`")
        error_console.print(f"no runs{' that match' if selected else ''} in {runs_dir}; {advice}")
        return
    from dlcli.report.render import runs_table

    for start in range(0, len(ids), 500):  # a table every 500 runs: shown as they are read
        console.print(runs_table(list(index.load(ids[start:start + 500]))))
    if matched > len(ids):
        error_console.print(f"{matched - len(ids)} more; --all lists every one, --last N the N latest")


@app.command()
@reports_errors
def show(run: RunArgument, output_format: FormatOption = Format.table, runs_dir: RunsDir = DEFAULT_RUNS_DIR) -> None:
    """One run: its status, resolved config, summary and verdicts, and where its files are."""
    from rich.syntax import Syntax

    from dlcli.report.render import STATUS_STYLES
    from dlcli.store.index import read_run
    from dlcli.store.runs import (
        CHECKPOINT_DIR,
        CONFIG_FILE,
        CURVES_FILE,
        HISTORY_FILE,
        MODEL_FILE,
        TENSORBOARD_DIR,
        VISUALIZATIONS_DIR,
        resolve_run,
    )
    from dlcli.store.status import RESUMABLE

    record = read_run(runs_dir, resolve_run(runs_dir, run))
    visualizations = record.folder.file(VISUALIZATIONS_DIR)  # dlcli visualize's pictures
    pictures = sorted(path for path in visualizations.rglob("*") if path.is_file())
    if output_format == Format.csv:
        return emit_csv([record.as_row()])
    if output_format == Format.json:
        return emit_json({"run": record.as_row(), "info": record.info, "summary": record.summary,
                           "evaluation": record.evaluation,
                           "visualizations": [str(path.relative_to(record.folder.path)) for path in pictures]})
    info = record.info
    style = STATUS_STYLES.get(record.status, "")
    damage = f"  ({record.damage})" if record.damage else ""
    console.print(Text.assemble((record.id, "bold"), "  ", (record.status, style), damage))
    for key in ("group", "created", "ended", "duration_s", "command", "host", "pid", "error"):
        if info.get(key) not in (None, ""):
            console.print(f"  {key}: {info[key]}")
    config_path = record.folder.file(CONFIG_FILE)
    if config_path.is_file():
        # shown as it is, a damaged byte as �: `show` describes a run, it does not judge its config
        text = config_path.read_text(encoding="utf-8", errors="replace")
        console.print(Syntax(text, "yaml", theme="ansi_dark"))
        if record.config_may_be_edited():
            from dlcli.store.runs import run_config

            edited = record.edited_note(config) if (config := run_config(record.folder)[0]) is not None else None
            if edited:
                console.print(edited, style="magenta", markup=False)
    if record.summary:
        console.print(_summary_table(record.summary))
        _print_verdicts(record.summary)
    if record.evaluation:
        from dlcli.store.index import shown

        metrics = ", ".join(f"{k} {shown(v)}" for k, v in record.evaluation.get("metrics", {}).items())
        changed = " (on a rebuilt split that differs from the one training saw: the data changed)" \
            if record.test_data_changed else ""
        console.print(f"{record.evaluation.get('split', 'test')}: {metrics}{changed}")
    if record.unscored_note:
        console.print(record.unscored_note, style="magenta", markup=False)
    for name, what in ((CURVES_FILE, "curves"), (MODEL_FILE, "model"), (TENSORBOARD_DIR, "TensorBoard logs"),
                       (HISTORY_FILE, "history"), (CHECKPOINT_DIR, "resume checkpoint")):
        path = record.folder.file(name)
        if path.exists():
            console.print(f"  {what}: {path}")
    kinds = Counter(path.relative_to(visualizations).parts[0] for path in pictures)
    for kind, count in sorted(kinds.items()):
        console.print(f"  {kind}: {visualizations / kind} ({counted(count, 'file')})")
    if record.status in RESUMABLE and record.info["resumable"]:
        console.print(f"  resume with: {record.folder.resume_command}")
    elif record.status == RunStatus.failed:
        console.print("  fix the config as its error says and train it again (a resume would fail the same way)")


@app.command()
@reports_errors
def verdict(
    histories: Annotated[list[str], typer.Argument(
        help="Runs (id, prefix, name, 'latest', folder) or history files: a dlcli history.csv (epochs from 1), "
             "a Keras CSVLogger file (epochs from 0), or Keras's History.history saved with json.dump or "
             "pandas's to_csv.", show_default=False)],
    monitor: Annotated[Optional[str], typer.Option(
        help="The validation metric to watch (default: the run's training.overfitting.monitor, or val_loss).")] = None,
    mode: Annotated[Optional[Direction], typer.Option(
        help="Whether lower (min) or higher (max) is better (default: as the run recorded it, or by its name).")] = None,
    output_format: Annotated[NestedFormat, typer.Option(
        "--format", help="table or json (one object per history; data only on stdout).")] = NestedFormat.table,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """The overfitting verdict of any history, read one epoch at a time as training reads it:
    when the warning would have come, the onset it names, its evidence, the final verdict."""
    from dlcli.curves.histories import RunsFolderEntry, history_verdicts
    from dlcli.errors import SomeInputsFailed

    found, failed, short_folds, passed_by = [], [], [], []
    for reference in histories:
        try:
            verdicts, too_short = history_verdicts(reference, runs_dir, monitor, mode.value if mode else None)
        except RunsFolderEntry as error:  # `runs/*` names the runs folder's index and sweeps beside its runs
            passed_by.append(error)
            continue
        except DlcliError as error:
            if len(histories) == 1:
                raise
            failed.append(error)  # a glob over runs meets short ones: the others are still judged
            continue
        found.extend(verdicts)
        short_folds.extend(too_short)  # a k-fold run stopped in a fold: the folds before it are still judged
    unjudged = failed + short_folds
    if passed_by and not found and not unjudged:
        raise passed_by[0]
    for error in unjudged[:-1]:
        error_console.print(f"{error.label}: {error}")
    if output_format == NestedFormat.json:
        emit_json([judged.as_dict() for judged in found])
    else:
        for judged in found:
            _print_verdict(judged)
    if unjudged:
        # none judged: the inputs are the user's error (2); some judged: a partial result (1)
        given = len(histories) - len(passed_by)
        counts = [f"{len(failed)} of {given} histories" if failed else "",
                  counted(len(short_folds), "fold") if short_folds else ""]
        verb = "has" if len(unjudged) == 1 else "have"
        said = " and ".join(filter(None, counts))
        raise (SomeInputsFailed if found else DlcliError)(f"{unjudged[-1]} ({said} {verb} no verdict)")


def _print_verdict(judged) -> None:
    name = judged.source + (f" fold {judged.fold}" if judged.fold is not None else "")
    result = judged.verdict
    warned = result["warned_at_epoch"]
    when = f"the warning at epoch {warned}" if warned else "no warning"
    console.print(Text.assemble((name, "bold"), f": {judged.epochs} epochs of {judged.monitor} ({judged.direction}); {when}"))
    if result["message"]:
        console.print(f"  ⚠ {result['message']}", style="bold yellow")
    elif result["recovered"]:
        console.print(f"  {result['recovered']}")
    elif result["best"] is not None:
        console.print(f"  no overfitting: best {judged.monitor} {result['best']:.4g} at epoch {result['best_epoch']}")
    if judged.left_out_note:
        console.print(f"  {judged.left_out_note}")


@app.command("compare")
@reports_errors
def compare_runs(
    runs: Annotated[Optional[list[str]], typer.Argument(help=f"Runs to compare (default: the last {COMPARED_RUNS}).")] = None,
    last: Annotated[Optional[int], typer.Option("--last", min=1, help="The N most recent runs.")] = None,
    pattern: Annotated[Optional[str], typer.Option("--filter", help="Only runs whose id or name matches this glob.")] = None,
    sort: Annotated[Optional[str], typer.Option("--sort", help="Sort by a metric, best first, e.g. val_accuracy.")] = None,
    where: WhereOption = [],  # noqa: B006 - Typer reads the default, never mutates it
    status: Annotated[Optional[RunStatus], typer.Option("--status", help="Only runs with this status.")] = None,
    every: Annotated[bool, typer.Option("--all", help=f"Every run that matches, not the last {COMPARED_RUNS}.")] = False,
    output_format: FormatOption = Format.table,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write the validation curves to this PNG.")] = None,
    smooth: Annotated[
        float, typer.Option("--smooth", min=0.0, max=0.99, help="With --plot: smooth the curves (e.g. 0.9).")
    ] = 0.0,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="The trials of this sweep (id, prefix or latest).")] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Runs side by side: only the config keys that differ, then best/final/test metrics; runs that
    differ only in their seed as groups (mean ± std), each against the best beyond seed noise or not."""
    from dlcli.report.compare import compare, comparison_curves, headline_column, recorded_monitor, records_to_compare
    from dlcli.report.groups import REPEAT_HINT, comparison_notes, groups_of, readable_groups

    _one_of_last_and_all(last, every)
    _a_sort_names_something(sort)
    if not math.isfinite(smooth) or (smooth and plot is None):  # Typer's range lets nan through
        raise DlcliError(f"--smooth {smooth:g}: it smooths the curves of --plot: add --plot" if math.isfinite(smooth)
                         else f"--smooth {smooth:g}: give a number from 0 to 0.99")
    if plot is not None:
        from dlcli.curves.plots import check_plot_file

        check_plot_file(plot, runs_dir)
    records = records_to_compare(runs_dir, runs, last, pattern, sweep, where, status, every)
    elsewhere = []
    if sweep:
        from dlcli.report.compare import trials_elsewhere

        sort = sort or recorded_monitor(records)
        try:
            elsewhere = trials_elsewhere(runs_dir, sweep, records)
        except DlcliError as error:  # the runs here are compared all the same
            error_console.print(f"note: the trials taken elsewhere are not listed: {error}")
    comparison = compare(records, sort)
    found = groups_of(records, comparison)
    repeated = len(found) > 1 and any(group.n > 1 for group in found)  # one group: its runs side by side
    for note in comparison_notes(found, comparison):
        error_console.print(note, markup=False)
    if output_format == Format.json:
        shown = {"differing_keys": comparison.keys, "runs": comparison.rows,
                 "groups": [group.as_dict(comparison.metrics) for group in found]}
        emit_json({**shown, "trials_elsewhere": elsewhere} if sweep else shown)
    elif output_format == Format.csv:
        emit_csv(comparison.rows, comparison.columns())
    elif repeated:
        from dlcli.report.render import groups_table

        console.print(groups_table(found, comparison.metrics, headline_column(comparison, sort, records)))
    else:
        from dlcli.report.render import comparison_table

        console.print(comparison_table(comparison))
        if len(readable_groups(found, comparison)) > 1:
            error_console.print(f"one run per config: a difference cannot be told from seed noise; {REPEAT_HINT}")
    if output_format == Format.table and elsewhere:
        from dlcli.report.render import rows_table

        console.print(rows_table(elsewhere, "the study's trials without a run here (other processes or machines)"))
    if plot is not None:
        left_out: list[str] = []
        if repeated:
            from dlcli.curves.plots import plot_group_comparison
            from dlcli.report.groups import group_histories

            histories = group_histories(found, records, left_out)
            _something_to_plot(any(runs for _, runs in histories), left_out)
            plot_group_comparison(histories, plot, f"{len(found)} groups", smooth)
        else:
            from dlcli.curves.plots import plot_comparison

            curves = comparison_curves(comparison, records, left_out)
            _something_to_plot(any(rows for _, rows in curves), left_out)
            plot_comparison(curves, plot, f"{len(curves)} runs", smooth)
        for note in left_out:
            error_console.print(f"left out of the plot: {note}", markup=False)
        error_console.print(f"wrote {plot}")


def _a_sort_names_something(sort: str | None) -> None:
    if sort is not None and not sort.strip():  # an empty --sort would be taken for none given
        raise DlcliError("--sort: give the metric to sort by, e.g. --sort val_accuracy or --sort test.accuracy")


def _something_to_plot(drawn: bool, left_out: list[str]) -> None:
    if not drawn and left_out:  # a blank picture would pass for a plot
        raise DlcliError(f"--plot: no history could be read, nothing to draw ({left_out[0]})")


@app.command()
@reports_errors
def check(
    config: Annotated[Path, typer.Argument(help="The experiment's YAML config file.")],
    overrides: Annotated[
        list[str], typer.Option("--set", metavar="KEY=VALUE", help="Override a config value (repeatable).")
    ] = [],  # noqa: B006 - Typer reads the default, never mutates it
    output_format: Annotated[NestedFormat, typer.Option(
        "--format", help="table or json (data only on stdout).")] = NestedFormat.table,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Validate CONFIG, load its data, check its splits (duplicates, leaks, labels, classes) and
    build its model, without training."""
    from dlcli.config import check_new_run, load_config

    experiment = load_config(config, overrides)
    check_new_run(experiment)
    plan, section = None, experiment.sweep
    if section is not None and (section.grid or section.params or section.random):  # every value a trial can take,
        # as `dlcli sweep` checks it before its first (a section of settings alone sweeps nothing until --grid gives keys)
        from dlcli.sweep.driver import plan_sweep

        plan = plan_sweep(config, [], None, None, None, None, None, overrides, None, None, runs_dir)[0]
    from dlcli.data import start_checks

    start_checks(experiment)  # the data checks read the photos while TensorFlow is imported
    _import_tensorflow()
    from dlcli.report.render import data_table, finding_lines, layers_table, named_table
    from dlcli.training.train import prepare_experiment

    folds, parts = prepare_experiment(experiment, runs_dir)
    if plan is not None:  # each grid point's and range end's model built, as the sweep builds them before its first trial
        from dlcli.sweep.trials import check as check_trials

        check_trials(plan, runs_dir)
    swept = plan.settings if plan is not None else None
    splits = folds[0]
    total = parts.model.count_params()
    if output_format == NestedFormat.json:
        data = splits.describe()
        emit_json({
            "config": str(config), "data": {key: value for key, value in data.items() if key != "checks"},
            "class_counts": splits.class_counts(), "data_checks": data["checks"], "parameters": total,
            "layers": [dict(zip(("name", "class", "inputs", "output_shape", "parameters", "trainable"), row))
                       for row in parts.layer_rows()],
            **({"sweep": {"method": swept.method, "trials": swept.total}} if swept else {}),
        })
        return
    described = splits.describe()
    console.print(data_table(described, splits.class_counts()))
    if splits.inputs:
        console.print(named_table(described))
    for line in finding_lines(splits.checks, splits.dropped):
        console.print(line)
    console.print(layers_table(parts.layer_rows(), f"{experiment.name}: {total:,} parameters"))
    if swept:
        console.print(f"sweep: {counted(swept.total, 'trial')} ({swept.method}); every value a trial can take is valid")
    console.print(f"{config}: the config is valid, the data loads and the model builds")


@app.command("sweep")
@reports_errors
def sweep_runs(
    config: Annotated[Optional[Path], typer.Argument(help="The base config; its `sweep:` section is used too.")] = None,
    grid: Annotated[
        list[str], typer.Option("--grid", metavar="KEY=V1,V2", help="Values to try for a key (repeatable).")
    ] = [],  # noqa: B006 - Typer reads the default, never mutates it
    method: Annotated[
        Optional[SweepMethod], typer.Option("--method", help="grid, random or tpe (Optuna's samplers).")
    ] = None,
    trials: Annotated[
        Optional[int], typer.Option("--trials", min=1, help="Sampled trials (per grid point, with a grid).")
    ] = None,
    random_trials: Annotated[
        Optional[int], typer.Option("--random", min=1, help="N random samples of the config's sampled keys.")
    ] = None,
    prune: Annotated[
        Optional[Pruner], typer.Option("--prune", help="Stop hopeless trials early: none, median or hyperband.")
    ] = None,
    storage: Annotated[
        Optional[str],
        typer.Option("--storage", metavar="URL|PATH", help="The study's Optuna storage, to share it between "
                     "processes and machines: a journal file, or postgresql://... "
                     "(default: a journal file in the sweep's folder)."),
    ] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the sampler (default: the section's, or 0).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Workers training trials at once, each its share of the cores.")] = 1,
    repeats: Annotated[Optional[int], typer.Option(
        "--repeats", min=1, help="Train every trial with N seeds (the config's seed and the next); the study "
        "optimizes their mean, and compare shows each trial's seed spread.",
    )] = None,
    overrides: Annotated[
        list[str], typer.Option("--set", metavar="KEY=VALUE", help="Override the base config (repeatable).")
    ] = [],  # noqa: B006 - Typer reads the default, never mutates it
    name: Annotated[
        Optional[str], typer.Option("--name", help="Sweep name (default: the config's name); with --storage, the study's name.")
    ] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", metavar="ID", help="Continue a sweep.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="With --resume: run failed trials again.")] = False,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Search a config's keys: trials chosen by Optuna, trained by workers, then compared."""
    from dlcli.report.compare import compare, headline_column, recorded_monitor
    from dlcli.report.groups import groups_of
    from dlcli.report.render import comparison_table, groups_table
    from dlcli.sweep.driver import sweep

    def show_results(records) -> None:
        comparison = compare(records, sort=recorded_monitor(records))
        groups = groups_of(records, comparison)
        if any(group.n > 1 for group in groups):  # repeated trials: each point's seeds and their spread
            console.print(groups_table(groups, comparison.metrics, headline_column(comparison, None, records)))
        else:
            console.print(comparison_table(comparison))

    plan = sweep(
        config, grid=grid, method=method, trials=trials or random_trials, prune=prune, storage=storage, seed=seed,
        overrides=overrides, name=name, resume=resume, retry_failed=retry_failed, jobs=jobs, runs_dir=runs_dir,
        say=error_console.print, show_results=show_results, repeats=repeats,
    )
    pruned = sum(t.status == RunStatus.pruned for t in plan.trials)
    seeds = plan.settings.repeat_seeds if plan.settings else []
    console.print(f"sweep {plan.id}: all {len(plan.trials)} trials completed"
                  + (f" ({len(seeds)} seeds each)" if seeds else "") + (f", {pruned} of them pruned" if pruned else ""))


visualize_app = typer.Typer(
    cls=OneLineErrors,
    help="What a trained convnet learned: activations, filter patterns, Grad-CAM heatmaps (PNG).",
    no_args_is_help=True,
)
app.add_typer(visualize_app, name="visualize")

ImageArgument = Annotated[Path, typer.Argument(help="An image file, read as `dlcli predict` reads it.")]
LayersOption = Annotated[
    list[str], typer.Option("--layer", metavar="NAME", help="A layer to show (repeatable; default: every "
                            "convolution layer; a base's layers by their own names).")
]
OutputDirOption = Annotated[
    Optional[Path], typer.Option("--output", help="The folder for the PNGs (default: the run's visualizations/).")
]
VisualizedFoldOption = Annotated[
    Optional[int], typer.Option("--fold", min=1, help="k-fold runs: this fold's model (default: fold 1).")
]


def _visualizer(runs_dir: Path, run: str, output: Path | None):
    """(dlcli.use.visualize, the run's folder): the run found, and `output` checked against its
    training data, before TensorFlow is imported, as the CLI imports it (its native log silenced)."""
    from dlcli.store.runs import refuse_training_data_output, resolve_run

    folder = resolve_run(runs_dir, run)
    if output is not None:
        refuse_training_data_output(output, folder, "--output")
    _import_tensorflow()
    from dlcli.use import visualize

    return visualize, folder


def _opened(visualize, folder, fold: int | None, image: Path | None = None):
    """The run opened for `dlcli visualize`, its image checked first; a k-fold run's fold said."""
    if image is not None:
        visualize.check_image(image)
    inspected = visualize.open_run(folder, fold)
    if inspected.fold is not None:
        error_console.print(f"fold {inspected.fold} of {inspected.inputs.folds}'s model (--fold K for another)")
    return inspected


def _refuse_run_folder(output: Path | None, runs_dir: Path) -> None:
    """An output folder of `dlcli visualize` that is a run's own folder, one named like a run in the
    runs folder, or a file, is refused."""
    if output is not None:
        from dlcli.store.runs import refuse_among_runs

        refuse_among_runs(output, runs_dir, "--output", folder=True)
        if why := unusable_output(output, folder=True):
            raise DlcliError(f"--output {output}: {why}; the pictures go into a folder")


def _wrote(paths: list[Path]) -> None:
    folder = paths[0].parent
    console.print(f"wrote {len(paths)} image(s) to {folder}: {', '.join(path.name for path in paths)}")


@visualize_app.command("activations")
@reports_errors
def visualize_activations(
    run: RunArgument,
    image: ImageArgument,
    layers: LayersOption = [],  # noqa: B006 - Typer reads the default, never mutates it
    output: OutputDirOption = None,
    fold: VisualizedFoldOption = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Every channel of each layer's output for one image: a grid PNG per layer (default: every
    convolution and pooling layer)."""
    _refuse_run_folder(output, runs_dir)
    visualize, folder = _visualizer(runs_dir, run, output)
    inspected = _opened(visualize, folder, fold, image)
    output = output or inspected.output("activations", visualize.image_label(image))
    _wrote(visualize.activations(inspected, image, layers, output))


@visualize_app.command("filters")
@reports_errors
def visualize_filters(
    run: RunArgument,
    layers: LayersOption = [],  # noqa: B006 - Typer reads the default, never mutates it
    filters: Annotated[int, typer.Option("--filters", min=1, help="How many filters of each layer (its first N).")] = 64,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Gradient ascent steps.")] = 30,
    learning_rate: Annotated[
        float, typer.Option("--learning-rate", help="Step size (above 0), in units of the pixel range.")
    ] = 10.0,
    normalize: Annotated[
        str, typer.Option("--normalize", help="The gradient's normalization: l2 (the book's 2nd edition) or rms (1st).")
    ] = "l2",
    output: OutputDirOption = None,
    fold: VisualizedFoldOption = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """The input pattern each filter responds to most, grown from noise by gradient ascent: a grid
    PNG per layer."""
    _refuse_run_folder(output, runs_dir)
    visualize, folder = _visualizer(runs_dir, run, output)
    ascent = visualize.Ascent(steps, learning_rate, normalize)
    inspected = _opened(visualize, folder, fold)
    _wrote(visualize.filters(inspected, layers, filters, ascent, output or inspected.output("filters")))


@visualize_app.command("heatmap")
@reports_errors
def visualize_heatmap(
    run: RunArgument,
    image: ImageArgument,
    class_name: Annotated[
        Optional[str], typer.Option("--class", help="The class to explain (default: the predicted one).")
    ] = None,
    layer: Annotated[
        Optional[str], typer.Option("--layer", metavar="NAME", help="Default: the last convolution layer.")
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", help="The PNG to write; the raw heatmap goes beside it as .npy.")
    ] = None,
    fold: VisualizedFoldOption = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Grad-CAM: which part of the image made the model choose a class, over the image (PNG) and
    as values 0-1 at the image's size (.npy)."""
    if output is not None and output.suffix.lower() != ".png":
        raise DlcliError(f"--output {output}: the heatmap is written as a .png (its values beside it as .npy)")
    if output is not None:
        from dlcli.curves.plots import check_plot_file

        values = output.with_suffix(".npy")
        refuse_inputs([output, values], [image])
        check_plot_file(output, runs_dir, "--output")
        if values.exists() and not output.exists():  # no earlier heatmap there: the .npy is someone's own
            raise DlcliError(f"--output {output}: {values} exists, and the heatmap's values would be written over it; "
                             "give another --output")
    visualize, folder = _visualizer(runs_dir, run, output)
    inspected = _opened(visualize, folder, fold, image)
    result = visualize.heatmap(inspected, image, class_name, layer)
    chosen = f"-{class_name}" if class_name is not None else ""
    output = output or inspected.output("heatmaps", f"{visualize.image_label(image)}{chosen}.png")
    picture, raw = visualize.save_heatmap(result, output)
    width = max(len(name) for name, _ in result.ranked[:5])
    for name, probability in result.ranked[:5]:  # the most probable classes
        console.print(f"{name:<{width}}  {probability:.4f}")
    console.print(f"wrote {picture} and {raw} (Grad-CAM of {result.layer} for {result.class_name!r})")
    if not result.heat.any():
        error_console.print(f"note: nothing in {result.layer}'s feature maps raises the score of {result.class_name!r}: "
                            "the heatmap is blank; try an earlier layer (--layer)")


datasets_app = typer.Typer(
    cls=OneLineErrors,
    help="List the datasets, or export an image dataset as PNG folders.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback()
def datasets(context: typer.Context) -> None:
    """Every dataset: what it is, the options it takes, whether it works offline here now."""
    if context.invoked_subcommand is not None:
        return
    from dlcli.data.catalog import DATASETS, REQUIRED, keras_cache_dir

    table = Table(title=f"datasets (Keras cache: {keras_cache_dir()})")
    table.add_column("name", style="bold")
    table.add_column("what")
    table.add_column("options (default)")
    table.add_column("offline here")
    for info in DATASETS.values():
        options = ", ".join(
            key if default in (None, REQUIRED) else f"{key} ({default})" for key, default in info.options.items()
        )
        table.add_row(info.name, info.summary, options or "-", info.availability())
    console.print(table)


@datasets_app.command("export")
@reports_errors
def datasets_export(
    name: Annotated[str, typer.Argument(help="An image dataset, e.g. digits or mnist_5k; or tickets (a generated table).")],
    directory: Annotated[Path, typer.Argument(help="A new or empty folder to write into.")],
) -> None:
    """Write an image dataset as PNG files: DIRECTORY/{train,test}/<class>/<n>.png; or `tickets`, the
    generated support tickets of configs/tickets.yaml, as DIRECTORY/tickets.csv."""
    from dlcli.data.export import export_images

    if why := unusable_output(directory, folder=True):
        raise DlcliError(f"{directory}: {why}")
    if name == "tickets":
        from dlcli.data.tickets import write_tickets

        path = write_tickets(directory)
        console.print(f"wrote {path}; train on it with `dlcli train configs/tickets.yaml`")
        return
    counts = export_images(name, directory)
    console.print(
        f"wrote {counts['train']} training and {counts['test']} test images of {name} to {directory}; "
        f"train on them with `dataset: {{name: image_directory, path: {_yaml_scalar(str(directory))}}}`"
    )


def _yaml_scalar(text: str) -> str:
    """`text` as a config line can hold it: as it is when YAML reads it back so, else quoted
    (a folder named with a colon, a brace or a line break would break the line shown)."""
    return text if re.fullmatch(r"[A-Za-z0-9_./~+-]+", text) else json.dumps(text, ensure_ascii=False)


@datasets_app.command("cache")
@reports_errors
def datasets_cache(
    clean: Annotated[bool, typer.Option("--clean", help="Remove unused and unfinished entries.")] = False,
    older_than: Annotated[
        Optional[float],
        typer.Option("--older-than", min=0, metavar="DAYS", help="With --clean: unused for this many days (default 30)."),
    ] = None,
) -> None:
    """The disk cache of decoded images (`training.cache: disk`): its entries, or --clean the unused
    ones (and the data checks' findings and file hashes that no run will read again)."""
    import datetime

    from dlcli.data.cache import (
        LAST_USED_FILE,
        MANIFEST_FILE,
        PARTIAL_MARK,
        UNUSED_DAYS,
        images_cache_dir,
        last_used,
        remove_entries,
        stale_entries,
    )

    if older_than is not None and not (clean and math.isfinite(older_than)):
        fix = "give a number of days" if clean else "it says what --clean removes: add --clean"
        raise DlcliError(f"--older-than {older_than:g}: {fix}")
    root = images_cache_dir()
    if clean:
        from dlcli.data.checks import checks_cache_dir, clean_checks

        days = UNUSED_DAYS if older_than is None else older_than
        stale = stale_entries(root, days)
        freed = remove_entries(stale)
        console.print(f"removed {len(stale)} entries of {root} ({freed / 1e6:,.1f} MB)")
        checks = clean_checks(days)
        console.print(
            f"removed {checks['findings']} data checks' findings unused for {days:g} days and the hashes of "
            f"{checks['file_rows']} files since changed or removed from {checks_cache_dir()} ({checks['bytes'] / 1e6:,.1f} MB)"
        )
        return
    entries = sorted(p for p in root.iterdir() if p.is_dir() and PARTIAL_MARK not in p.name) if root.is_dir() else []
    table = Table(title=f"decoded images cached in {root}")
    for column in ("entry", "images", "MB", "last used"):
        table.add_column(column, justify="right" if column in ("images", "MB") else "left")
    for entry in entries:
        files = [f for f in entry.iterdir() if f.name not in (LAST_USED_FILE, MANIFEST_FILE)]
        used = datetime.datetime.fromtimestamp(last_used(entry))
        size = sum(f.stat().st_size for f in files)
        table.add_row(entry.name, str(len(files)), f"{size / 1e6:,.1f}", used.isoformat(" ", "minutes"))
    console.print(table)


def main() -> None:
    """The `dlcli` program; a process that imported TensorFlow skips tearing it down."""
    try:
        app()
    except SystemExit as done:
        if "tensorflow" in sys.modules:
            _exit_without_teardown(done.code)
        raise


def _exit_without_teardown(code: int | str | None) -> None:
    # Python's shutdown of a process that imported TensorFlow takes a second or more
    # (finalizing thousands of modules and TensorFlow's native state) after every file has
    # been written and closed. Exit handlers still run and output is flushed; only the
    # interpreter's teardown is skipped.
    if isinstance(code, str):
        error_console.print(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader went away, or the stream is closed
            pass
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
