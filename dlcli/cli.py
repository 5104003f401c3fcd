"""The `dlcli` command line: parse, call the library, print, map errors to exit codes.

TensorFlow is imported only inside the commands that train or evaluate.
"""

from __future__ import annotations

import functools
import shlex
import signal
import traceback
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from dlcli import __version__
from dlcli.errors import DlcliError

app = typer.Typer(
    name="dlcli",
    help="Run, watch and compare Keras experiments described in YAML files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)
debug_mode = {"enabled": False}

EXIT_INTERRUPTED = 130

RunsDir = Annotated[
    Path,
    typer.Option("--runs-dir", envvar="DLCLI_RUNS_DIR", help="Folder that holds the run folders."),
]


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn DlcliError into one line on stderr and its exit code (a traceback only with --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DlcliError as error:
            if debug_mode["enabled"]:
                error_console.print(traceback.format_exc(), markup=False)
            error_console.print(f"{error.label}: {error}", markup=False)
            raise typer.Exit(error.exit_code) from None

    return wrapper


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


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
    kfold = summary.get("kfold")
    if kfold:
        table = Table(title=f"{kfold['k']}-fold cross-validation: mean ± std over the folds")
        table.add_column("metric")
        table.add_column("at each fold's best epoch", justify="right")
        table.add_column("at each fold's last epoch", justify="right")
        for key, final in kfold["final"].items():
            best = kfold["best"].get(key, {"mean": float("nan"), "std": float("nan")})
            table.add_row(key, f"{best['mean']:.4g} ± {best['std']:.2g}", f"{final['mean']:.4g} ± {final['std']:.2g}")
        return table
    best_epoch, last_epoch = summary["best_epoch"], summary["epochs_run"]
    table = Table(title=f"{last_epoch} epochs, best by {summary['monitor']}: epoch {best_epoch}")
    table.add_column("metric")
    table.add_column(f"best (epoch {best_epoch})", justify="right")
    table.add_column(f"final (epoch {last_epoch})", justify="right")
    for key, final in summary["final"].items():
        best = summary["best"].get(key)
        table.add_row(key, "" if best is None else f"{best:.4g}", f"{final:.4g}")
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
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Validate CONFIG, train it and write a run folder under --runs-dir (or --resume RUN)."""
    from dlcli.config import load_config

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
    command += ["--runs-dir", str(runs_dir)]

    from dlcli.backend import import_tensorflow

    import_tensorflow(verbose=debug_mode["enabled"])
    from dlcli import train as training

    # SIGINT too: a process started in the background of a script inherits SIGINT ignored,
    # and `kill -INT` must still stop it cleanly.
    previous_handlers = {
        signum: signal.signal(signum, _raise_keyboard_interrupt) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        if resume is not None:
            result = training.resume(resume, runs_dir, console=console, command=shlex.join(command))
        else:
            result = training.train(experiment, runs_dir, console=console, command=shlex.join(command))
    except KeyboardInterrupt:
        error_console.print("interrupted before training started; no run folder was kept", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    console.print(_summary_table(result.summary))
    _print_verdicts(result.summary)
    console.print(f"run [bold]{result.run.id}[/] completed: {result.run.path}")


def _print_verdicts(summary: dict[str, Any]) -> None:
    overfitting = summary.get("overfitting") or {}
    if overfitting.get("message"):
        console.print(f"[bold yellow]⚠ {overfitting['message']}[/]")
        for advice in overfitting.get("advice", []):
            console.print(f"  → {advice}")
    for note in summary.get("notes", []):
        console.print(f"[cyan]note:[/] {note}")


datasets_app = typer.Typer(
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
    name: Annotated[str, typer.Argument(help="An image dataset, e.g. digits or mnist_5k.")],
    directory: Annotated[Path, typer.Argument(help="A new or empty folder to write into.")],
) -> None:
    """Write an image dataset as PNG files: DIRECTORY/{train,test}/<class>/<n>.png."""
    from dlcli.data.export import export_images

    counts = export_images(name, directory)
    console.print(
        f"wrote {counts['train']} training and {counts['test']} test images of {name} to {directory}; "
        f"train on them with `dataset: {{name: image_directory, path: {directory}}}`"
    )


def main() -> None:
    app()
