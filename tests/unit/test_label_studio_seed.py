"""A new Label Studio data directory starts from the database scripts/label-studio.sh migrated."""

from __future__ import annotations

from pathlib import Path

from driftline.labels import server


def launch_in(venv: Path, data_dir: Path) -> server.Launch:
    return server.Launch(venv / "bin" / "label-studio", data_dir, 8080, "u@x", "p", "t")


def test_a_new_data_directory_gets_a_copy_of_the_migrated_database(tmp_path: Path) -> None:
    venv, data = tmp_path / "venv", tmp_path / "data"
    venv.mkdir()
    data.mkdir()
    (venv / server.MIGRATED_DATABASE).write_bytes(b"migrated")
    assert server.seed_database(launch_in(venv, data))
    assert (data / server.DATABASE).read_bytes() == b"migrated"


def test_a_data_directory_with_a_database_keeps_it(tmp_path: Path) -> None:
    venv, data = tmp_path / "venv", tmp_path / "data"
    venv.mkdir()
    data.mkdir()
    (venv / server.MIGRATED_DATABASE).write_bytes(b"migrated")
    (data / server.DATABASE).write_bytes(b"labels of last week")
    assert not server.seed_database(launch_in(venv, data))
    assert (data / server.DATABASE).read_bytes() == b"labels of last week"


def test_without_a_migrated_copy_label_studio_migrates_its_own(tmp_path: Path) -> None:
    venv, data = tmp_path / "venv", tmp_path / "data"
    venv.mkdir()
    data.mkdir()
    assert not server.seed_database(launch_in(venv, data))
    assert not (data / server.DATABASE).exists()
