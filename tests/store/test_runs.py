"""Run references: id, unique prefix, latest, name, folder path; clear errors otherwise."""

from __future__ import annotations

import json

import pytest

from conftest import fake_run, summary_with
from dlcli.errors import RunNotFound
from dlcli.store.documents import finish_run
from dlcli.store.runs import RUN_FILE, RunFolder, list_run_folders, resolve_run
from dlcli.store.status import RunStatus


@pytest.fixture
def runs(tmp_path):
    for run_id, name in [
        ("20260101-100000-alpha", "alpha"),
        ("20260101-110000-beta", "beta"),
        ("20260102-090000-alpha", "alpha"),
    ]:
        folder = tmp_path / run_id
        folder.mkdir()
        (folder / RUN_FILE).write_text(json.dumps({"id": run_id, "name": name}))
    (tmp_path / "not-a-run").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("20260101-110000-beta", "20260101-110000-beta"),
        ("20260101-11", "20260101-110000-beta"),
        ("latest", "20260102-090000-alpha"),
        ("alpha", "20260102-090000-alpha"),  # a name: its latest run
        ("beta", "20260101-110000-beta"),
    ],
)
def test_resolve(runs, reference, expected):
    assert resolve_run(runs, reference).id == expected


def test_resolve_a_folder_path(runs):
    assert resolve_run(runs / "missing-dir", str(runs / "20260101-100000-alpha")).id == "20260101-100000-alpha"


def test_ambiguous_prefix_lists_the_candidates(runs):
    ambiguous = r"run '20260101' is ambiguous: 2 runs match \(20260101-100000-alpha, 20260101-110000-beta\)"
    with pytest.raises(RunNotFound, match=ambiguous):
        resolve_run(runs, "20260101")


def test_an_ambiguous_prefix_of_many_runs_lists_ten_and_counts_the_rest(tmp_path):
    for number in range(12):
        (tmp_path / f"20260101-1000{number:02d}-run").mkdir()

    with pytest.raises(RunNotFound, match=r"12 runs match \(20260101-100000-run, .*, 20260101-100009-run and 2 more\)"):
        resolve_run(tmp_path, "2026")


def test_unknown_run_names_the_latest(runs):
    with pytest.raises(RunNotFound, match=r"no run 'gamma' in .*; the latest are 20260102-090000-alpha, 20260101-110000-beta, "
                       r"20260101-100000-alpha \(or use 'latest'\)"):  # newest first
        resolve_run(runs, "gamma")


def test_a_path_that_is_there_and_no_run_is_said_so_not_looked_for_among_the_names(runs, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("name: tiny\n")

    with pytest.raises(RunNotFound, match=r"not-a-run: a folder, and no run folder \(it has no run.json\); give a run's"):
        resolve_run(runs, str(runs / "not-a-run"))
    with pytest.raises(RunNotFound, match=r"config.yaml: a file, not a run folder; give a run's folder, id, name or"):
        resolve_run(runs, str(config))
    with pytest.raises(RunNotFound, match=r"not-a-run: a folder, and no run folder"):  # no runs at all
        resolve_run(tmp_path / "runs", str(runs / "not-a-run"))


def test_a_config_edited_after_training_is_told_apart_from_how_it_runs_and_for_evaluate_from_moved_data():
    from dlcli.keys import read_yaml
    from dlcli.store.runs import checkpointed_as, config_edited, prepared_as

    written = "name: run\ndataset: {name: csv, path: data.csv, normalize: true}\ntraining: {epochs: 2, tensorboard: true}\n"
    config = {"name": "run", "dataset": {"name": "csv", "path": "data.csv", "normalize": True},
              "training": {"epochs": 2, "tensorboard": True}}
    resumed, evaluated = checkpointed_as(config), prepared_as(config)

    def edited(text: str, record: str | None, digest=checkpointed_as) -> bool:
        return config_edited(read_yaml(text), record, digest)

    assert not edited(written, resumed) and not edited(written, evaluated, prepared_as) and not edited(written, None)
    assert not edited(written.replace("tensorboard: true", "tensorboard: false"), resumed)  # how it runs
    moved = written.replace("data.csv", "moved/data.csv")
    assert edited(moved, resumed)  # a resume goes on with the data the path names: no fingerprint is compared
    assert not edited(moved, evaluated, prepared_as)  # evaluation's fingerprint says when the data differs
    assert edited(written.replace("normalize: true", "normalize: false"), evaluated, prepared_as)
    assert edited("", resumed) and edited("[1, 2]", evaluated, prepared_as)  # emptied, no mapping: not what it trained


def test_empty_runs_folder(tmp_path):
    with pytest.raises(RunNotFound, match="holds no runs yet"):
        resolve_run(tmp_path / "runs", "latest")


def test_folders_without_run_json_are_not_runs(runs):
    assert [run.id for run in list_run_folders(runs)] == [
        "20260101-100000-alpha", "20260101-110000-beta", "20260102-090000-alpha"
    ]


def test_every_status_has_one_spelling_a_style_and_a_place():
    from dlcli.report.render import STATUS_STYLES
    from dlcli.store.status import FINISHED, RESUMABLE, RunStatus

    assert set(STATUS_STYLES) == set(RunStatus)  # `runs` colours every status it can show
    assert not set(FINISHED) & set(RESUMABLE)  # a run is either over for good or resumable
    assert set(RunStatus) - set(FINISHED) - set(RESUMABLE) == {RunStatus.running, RunStatus.damaged}
    assert f"{RunStatus.crashed}" == str(RunStatus.crashed) == "crashed" == RunStatus.crashed
    assert json.dumps({"status": RunStatus.pruned}) == '{"status": "pruned"}'


DAMAGED_DOCUMENTS = [
    # (id, summary.json's keys replaced, run.json's keys replaced, a fragment of the reason)
    ("a final metric that is null", {"final": {"loss": None, "val_loss": 0.3}}, {}, "summary.json: final.loss:"),
    ("overfitting as a string", {"overfitting": "yes"}, {}, "summary.json: overfitting:"),
    ("kfold as a number", {"kfold": 3}, {}, "summary.json: kfold:"),
    ("a start that is no time", {}, {"created": "yesterday"}, "run.json: created:"),
]


@pytest.mark.parametrize("summary, info, reason", [case[1:] for case in DAMAGED_DOCUMENTS],
                         ids=[case[0] for case in DAMAGED_DOCUMENTS])
def test_a_document_that_breaks_its_model_damages_its_run_only(cli, runs_dir, summary, info, reason):
    fake_run(runs_dir, "20260101-100000-good", summary=summary_with(0.3, 0.9))
    fake_run(runs_dir, "20260101-110000-bad", summary={**summary_with(0.3, 0.9), **summary}, **info)

    listed = cli("runs", "--format", "json")
    compared = cli("compare", "--all")
    shown = cli("show", "20260101-110000-bad")

    assert listed.exit_code == 0, listed.output
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows["20260101-100000-good"]["status"] == "completed"
    assert rows["20260101-110000-bad"]["status"] == "damaged" and reason in rows["20260101-110000-bad"]["damage"]
    assert compared.exit_code == 0 and "20260101-100000-good" in compared.stdout, compared.output
    assert shown.exit_code == 0 and "damaged" in shown.stdout and reason in " ".join(shown.stdout.split()), shown.output


def test_a_start_written_without_its_offset_is_read_as_utc_and_the_run_can_end(runs_dir):
    folder = RunFolder(fake_run(runs_dir, "20260101-100000-naive", status="running"))  # created: no offset

    info = finish_run(folder, RunStatus.completed)

    assert info.created == "2026-01-01T10:00:00.000+00:00" and info.duration_s > 0


def test_a_history_saved_by_a_spreadsheet_reads_as_written(tmp_path):
    from dlcli.store.runs import read_history

    path = tmp_path / "history.csv"
    path.write_bytes("\ufeffepoch,loss,val_loss\r\n1,0.5,0.6\r\n2,0.4,0.55\r\n".encode())  # a BOM, CRLF lines

    assert read_history(path) == [{"epoch": 1, "loss": 0.5, "val_loss": 0.6}, {"epoch": 2, "loss": 0.4, "val_loss": 0.55}]


@pytest.mark.parametrize("text, says", [
    ("epoch,loss,val_loss\n1,0.5,0.6\n2,0.4,0.5\n3,0.3\n", "line 4 has fewer fields than the header"),  # cut short
    ("epoch,loss,val_loss\n1,0.5,0.6\n2,0.4,Non\n", "line 3: val_loss is 'Non', not a number"),
    ("epoch,loss\n1,0.5,0.6\n", "line 2 has more fields than the header"),
])
def test_a_damaged_history_names_its_line(tmp_path, text, says):
    from dlcli.errors import DlcliError
    from dlcli.store.runs import read_history

    path = tmp_path / "20260101-100000-r" / "history.csv"
    path.parent.mkdir()
    path.write_text(text)

    with pytest.raises(DlcliError, match=f"run 20260101-100000-r: history.csv is damaged \\({says}\\); train its"):
        read_history(path)


def test_an_output_in_a_run_s_training_data_is_refused(tmp_path):
    from conftest import TINY_CONFIG
    from dlcli.errors import DlcliError
    from dlcli.store.runs import refuse_training_data_output

    photos = tmp_path / "photos"
    (photos / "cats").mkdir(parents=True)
    folder = RunFolder(fake_run(tmp_path / "runs", "20260101-100000-photos", TINY_CONFIG.replace(
        "name: digits", f"name: image_directory\n  path: {photos}")))

    with pytest.raises(DlcliError, match=r"is in run 20260101-100000-photos's training data \(dataset.path "):
        refuse_training_data_output(photos / "cats" / "heatmap.png", folder, "--output")  # a picture among its cats
    refuse_training_data_output(tmp_path / "heatmap.png", folder, "--output")  # beside it: fine


def test_a_reference_longer_than_any_path_is_looked_for_and_echoed_cut(runs):
    (runs / "sweeps").mkdir()  # a sweep of that name was looked for: ENAMETOOLONG, said as the file's error
    long = "x" * 3000

    with pytest.raises(RunNotFound) as found:
        resolve_run(runs, long)

    assert str(found.value).startswith(f"no run '{'x' * 77}...' in {runs}; the latest are")


def test_an_output_that_is_the_training_folder_itself_or_relative_to_where_it_trained_is_refused(tmp_path):
    from conftest import TINY_CONFIG
    from dlcli.errors import DlcliError
    from dlcli.store.runs import refuse_training_data_output

    (tmp_path / "project" / "photos").mkdir(parents=True)
    folder = RunFolder(fake_run(tmp_path / "runs", "20260101-100000-photos", TINY_CONFIG.replace(
        "name: digits", "name: image_directory\n  path: photos"), cwd=str(tmp_path / "project")))

    for output in (tmp_path / "project" / "photos", tmp_path / "project" / "photos" / "grid.png"):
        with pytest.raises(DlcliError, match="training data"):  # visualize's --output is a folder: this one too
            refuse_training_data_output(output, folder, "--output")
