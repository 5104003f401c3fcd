"""dlcli.build.backend: TensorFlow's import, and what Keras is started without."""

from __future__ import annotations

import sys

import pytest

from dlcli.build.backend import _unavailable


@pytest.fixture
def package(tmp_path, monkeypatch):
    (tmp_path / "dlcli_probe").mkdir()
    (tmp_path / "dlcli_probe" / "__init__.py").write_text("")
    (tmp_path / "dlcli_probe" / "part.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "dlcli_probe"
    for name in ("dlcli_probe", "dlcli_probe.part"):
        sys.modules.pop(name, None)


def test_a_package_left_out_fails_to_import_inside_the_block_only(package):
    with _unavailable((package,)):
        with pytest.raises(ModuleNotFoundError, match="dlcli leaves dlcli_probe out of Keras"):
            import dlcli_probe.part

    import dlcli_probe.part  # noqa: F401

    assert "dlcli_probe.part" in sys.modules


def test_a_package_already_imported_is_not_taken_away(package):
    import dlcli_probe

    with _unavailable((package,)):
        import dlcli_probe.part  # noqa: F401

    assert "dlcli_probe.part" in sys.modules
