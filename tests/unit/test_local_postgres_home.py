"""Where the local cluster lives: in the data folder, or (as root) a folder of its own per data
folder under the system home, never shared between checkouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from synapseops.errors import ConfigurationError
from synapseops.local.postgres import server_options
from synapseops.local.postgres_home import (
    OWNER_FILE,
    TOKEN_FILE,
    cluster_folder,
    create_home,
    home_name,
    home_state,
    remove_cluster_files,
    sweep_orphans,
)
from synapseops.settings import DatabaseSettings, Settings

SYSTEM = Path("/var/lib/synapseops")


def test_a_normal_user_keeps_the_cluster_in_the_data_folder(tmp_path: Path) -> None:
    assert cluster_folder(tmp_path / ".data", as_root=False) == tmp_path / ".data" / "postgres"


def test_root_keeps_it_under_the_system_home_in_a_folder_named_after_the_checkout(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "private" / "p" / ".data"
    pgdata = cluster_folder(data_dir, as_root=True, system_home=SYSTEM)
    assert pgdata.parent.parent == SYSTEM and pgdata.name == "postgres"
    assert not pgdata.is_relative_to(tmp_path)  # the private folder is never entered
    assert pgdata.parent.name.startswith("private-p-data-")


def test_two_checkouts_and_the_two_stacks_of_one_checkout_never_share_a_cluster(
    tmp_path: Path,
) -> None:
    folders = {
        cluster_folder(tmp_path / checkout / ".data" / stack, as_root=True)
        for checkout in ("a/p", "b/p")
        for stack in ("", "test")  # the demo's .data and the test session's .data/test
    }
    assert len(folders) == 4
    assert len({folder.parent for folder in folders}) == 4


def test_one_data_folder_always_finds_the_same_cluster(tmp_path: Path) -> None:
    real = tmp_path / "checkout"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert home_name(real / ".data") == home_name(tmp_path / "link" / ".data")
    assert home_name(real / ".data") == home_name(tmp_path / "checkout" / "x" / ".." / ".data")


def test_a_long_path_still_gives_a_socket_path_postgres_can_bind(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120) / ("e" * 120) / ".data"
    pgdata = cluster_folder(deep, as_root=True, system_home=SYSTEM)
    settings = Settings(database=DatabaseSettings(local_port=55432))
    assert f"unix_socket_directories={pgdata}" in server_options(settings, pgdata)


def test_a_cluster_an_earlier_version_made_in_the_data_folder_stays_there(tmp_path: Path) -> None:
    legacy = tmp_path / ".data" / "postgres"
    legacy.mkdir(parents=True)
    assert cluster_folder(tmp_path / ".data", as_root=True) != legacy  # no cluster there yet
    (legacy / "PG_VERSION").write_text("15\n")
    assert cluster_folder(tmp_path / ".data", as_root=True) == legacy


def test_a_cluster_folder_belongs_to_one_data_folder(tmp_path: Path) -> None:
    home, mine, other = tmp_path / "system" / "home", tmp_path / "a" / ".data", tmp_path / "b"
    assert home_state(home, mine) == "absent"
    create_home(home, mine)
    assert home_state(home, mine) == "ours"
    assert (home / OWNER_FILE).read_text().startswith(f"{mine.resolve()}\n")
    with pytest.raises(ConfigurationError, match="holds the PostgreSQL cluster of"):
        home_state(home, other / ".data")
    with pytest.raises(ConfigurationError, match="holds the PostgreSQL cluster of"):
        remove_cluster_files(home / "postgres", other / ".data")
    assert home.exists()


def test_a_data_folder_made_anew_does_not_inherit_the_old_cluster(tmp_path: Path) -> None:
    home, data_dir = tmp_path / "system" / "home", tmp_path / ".data"
    create_home(home, data_dir)
    (data_dir / TOKEN_FILE).unlink()  # rm -rf .data, then a new .data
    assert home_state(home, data_dir) == "stale"
    (data_dir / TOKEN_FILE).write_text("another cluster id\n")
    assert home_state(home, data_dir) == "stale"


def test_clusters_of_data_folders_that_are_gone_are_swept_unless_they_run(tmp_path: Path) -> None:
    system = tmp_path / "system"
    gone, kept, running = tmp_path / "gone", tmp_path / "kept", tmp_path / "running"
    for data_dir in (gone, kept, running):
        create_home(system / home_name(data_dir), data_dir)
    for data_dir in (gone, running):
        remove_data_folder(data_dir)
    busy = system / home_name(running) / "postgres"
    removed = sweep_orphans(system, running=lambda pgdata: pgdata == busy)
    assert removed == [system / home_name(gone)]
    assert sorted(system.iterdir()) == sorted([system / home_name(kept), busy.parent])


def remove_data_folder(data_dir: Path) -> None:
    (data_dir / TOKEN_FILE).unlink()
    data_dir.rmdir()


def test_removing_deletes_the_cluster_folder_wherever_it_lives(tmp_path: Path) -> None:
    data_dir = tmp_path / ".data"
    in_place = data_dir / "postgres"
    in_place.mkdir(parents=True)
    remove_cluster_files(in_place, data_dir)
    assert data_dir.exists() and not in_place.exists()

    own = cluster_folder(data_dir, as_root=True, system_home=tmp_path / "system")
    create_home(own.parent, data_dir)
    own.mkdir()
    remove_cluster_files(own, data_dir)
    assert not own.parent.exists() and (tmp_path / "system").exists()
    assert not (data_dir / TOKEN_FILE).exists()
    remove_cluster_files(own, data_dir)  # already gone: nothing to do
