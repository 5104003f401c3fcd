"""Run references: id, unique prefix, latest, name, folder path; clear errors otherwise."""

from __future__ import annotations

import json

import pytest

from dlcli.errors import RunNotFound
from dlcli.store.runs import RUN_FILE, list_run_folders, resolve_run


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


def test_unknown_run_names_the_latest(runs):
    with pytest.raises(RunNotFound, match=r"no run 'gamma' in .*; the latest are .*20260102-090000-alpha"):
        resolve_run(runs, "gamma")


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
