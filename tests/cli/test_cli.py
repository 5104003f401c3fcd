"""The command line as a whole: help, version, import cost, and real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from conftest import TINY_CONFIG, read_json, run_folders
from dlcli import __version__
from dlcli.cli import app

COMMANDS = sorted(get_command(app).commands)


def ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def dlcli_process(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dlcli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )


def test_version():
    result = CliRunner().invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout.strip() == f"dlcli {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [command, "--help"])

    assert result.exit_code == 0
    assert get_command(app).commands[command].help


USAGE_ERRORS = [
    # (arguments, a fragment of the one line)
    (["runs", "--format", "xml"], "'xml' is not one of 'table', 'json', 'csv'. (see `dlcli runs --help`)"),
    (["show"], "Missing argument 'run'. (see `dlcli show --help`)"),
    (["nosuch"], "No such command 'nosuch'. (see `dlcli --help`)"),
    (["runs", "--last"], "Option '--last' requires an argument."),
    (["runs", "--colour"], "No such option: --colour"),
    (["sweep", "--jobs", "0"], "--jobs"),
    (["visualize", "heatmap"], "Missing argument"),
    (["runs", "--runs-dir", __file__], "test_cli.py is a file; give the folder that holds the run folders"),
    # click kept the last of an option given twice: the interrupted runs were dropped without a word
    (["runs", "--status", "interrupted", "--status", "completed"], "--status is given twice: give it once"),
    (["visualize", "filters", "latest", "--filters", "2", "--filters=3"],
     "--filters is given twice: give it once (the second would replace the first) (see `dlcli visualize filters --help`)"),
]


@pytest.mark.parametrize("arguments, fragment", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_a_usage_error_is_one_line(arguments, fragment):
    result = CliRunner().invoke(app, arguments)

    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
    assert fragment in result.stderr


def test_a_runs_dir_that_is_a_run_s_folder_names_the_folder_to_give(tmp_path):
    run = tmp_path / "runs" / "20260101-000000-a"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")

    result = CliRunner().invoke(app, ["runs", "--runs-dir", str(run)])

    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"is a run's folder; give the folder that holds the run folders ({tmp_path / 'runs'})" in result.stderr


def test_no_arguments_still_show_the_help():
    result = CliRunner().invoke(app, [])

    assert result.exit_code == 2 and "Usage: dlcli [OPTIONS] COMMAND" in result.output and "train" in result.output


def test_an_interrupt_inside_a_reading_command_is_one_line_and_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dlcli.store.index.RunIndex.selected_ids", interrupted)
    result = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path)])

    assert result.exit_code == 130 and result.stderr == "stopped: interrupted\n"


def test_a_reader_that_stops_reading_ends_the_output_quietly(tmp_path):
    """`dlcli runs --format csv | head -1`: no 'error: Broken pipe', the status of a SIGPIPE's end."""
    from conftest import fake_run

    for number in range(3):
        fake_run(tmp_path, f"20260101-10000{number}-run")
    for output in ("csv", "table"):  # written by dlcli, and by rich's console
        command = [sys.executable, "-m", "dlcli", "runs", "--format", output, "--runs-dir", str(tmp_path)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.close()  # gone before the first row is written: the process starts in far longer

        assert process.wait(timeout=120) == 128 + signal.SIGPIPE, output
        assert process.stderr.read() == b"", output


def test_an_interrupt_outside_a_command_s_body_is_130_too(monkeypatch):
    # `datasets` lists without @reports_errors, and click turns the interrupt into its Abort
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dlcli.data.catalog.keras_cache_dir", interrupted)
    result = CliRunner().invoke(app, ["datasets"])

    assert result.exit_code == 130 and result.stderr == "stopped: interrupted\n", result.output


def test_sigterm_while_the_program_starts_is_130_with_a_line():
    # the signal arrives while the command line is imported: a hook sends it at that instant
    code = (
        "import builtins, os, signal\n"
        "real_import = builtins.__import__\n"
        "def hooked(name, *args, **kwargs):\n"
        "    if name == 'dlcli.cli':\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = hooked\n"
        "from dlcli.launch import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "runs"], capture_output=True, text=True, timeout=60)

    assert done.returncode == 130 and done.stderr == "stopped: interrupted while starting\n", done.stderr


def test_importing_the_cli_leaves_tensorflow_out():
    code = "import sys, dlcli.cli; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_real_process_trains_quietly_and_exits_0(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)

    process = dlcli_process("train", str(config), "--runs-dir", str(tmp_path / "runs"))
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr
    assert "completed" in stdout and "epoch 2/2" in stdout
    assert stderr == ""  # TensorFlow's start-up log is silenced


@pytest.mark.slow
def test_real_process_leaves_out_what_the_run_does_not_use_and_ends_its_output(tmp_path):
    rng = np.random.default_rng(0)
    arrays = tmp_path / "arrays.npz"
    np.savez(arrays, x_train=rng.random((200, 8, 8, 1)), y_train=rng.integers(0, 10, 200),
             x_test=rng.random((50, 8, 8, 1)), y_test=rng.integers(0, 10, 50))
    config = tmp_path / "arrays.yaml"
    config.write_text(TINY_CONFIG.replace("name: digits", f"name: npz\n  path: {arrays}"))
    # the real entry point, with a last exit handler that reports what was imported
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('imported:', *sorted(m for m in ('sklearn', 'pandas', "
        "'matplotlib.pyplot', 'matplotlib.figure') if m in sys.modules)))\n"
        "from dlcli.cli import main\n"
        f"sys.argv = ['dlcli', 'train', {str(config)!r}, '--runs-dir', {str(tmp_path / 'runs')!r}]\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "completed" in lines[-2]
    # scikit-learn and pandas stay out; matplotlib only for curves.png, without pyplot
    assert lines[-1] == "imported: matplotlib.figure"


@pytest.mark.slow
def test_real_process_config_error_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(TINY_CONFIG.replace("units: 16", "unit: 16"))

    process = dlcli_process("train", str(config), "--runs-dir", str(tmp_path / "runs"))
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 2
    assert stderr.count("\n") == 1
    assert "unexpected argument 'unit'; did you mean 'units'?" in stderr


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGTERM, signal.SIGINT, signal.SIGTERM]],
                         ids=["SIGINT", "SIGTERM", "three signals milliseconds apart"])
@pytest.mark.slow
def test_interrupt_exits_130_and_keeps_the_run(tmp_path, signals):
    config = tmp_path / "long.yaml"
    config.write_text(TINY_CONFIG.replace("epochs: 2", "epochs: 1000").replace("batch_size: 64", "batch_size: 8"))
    runs = tmp_path / "runs"

    # started as a script's background job is: with SIGINT ignored, which dlcli overrides
    process = dlcli_process("train", str(config), "--runs-dir", str(runs), preexec_fn=ignore_sigint)
    deadline = time.monotonic() + 90
    while not list(runs.glob("*/history.csv")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    for signum in signals:
        process.send_signal(signum)
        time.sleep(0.002)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, (stdout[-2000:], stderr)
    (folder,) = run_folders(runs)
    assert stderr.startswith(f"stopped: run {folder.name} interrupted after") and len(stderr.splitlines()) == 1, stderr
    info = read_json(folder / "run.json")
    assert info["status"] == "interrupted" and info["ended"]
    assert (folder / "model.keras").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no half-written file


def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "dlcli", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "100"})

    assert out.returncode == 0 and "train" in out.stdout


def test_a_value_that_spells_an_option_s_name_is_a_value_not_the_option_again(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--filter", "--last", "--last", "3", "--runs-dir", str(tmp_path)])

    assert "given twice" not in result.stderr  # --filter's value is the text "--last", as click reads it
    assert "--filter --last" in result.stderr, result.output
