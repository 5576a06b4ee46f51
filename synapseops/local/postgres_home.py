"""Where the local PostgreSQL cluster of a data folder keeps its files, and who owns them.

initdb and pg_ctl refuse to run as root, so as root they run as the ``postgres`` OS user, and
that user must traverse every parent of the cluster's folder. A checkout in a private folder
(``mktemp -d``, ``/root``, any 0700 parent) cannot be traversed by anyone but its owner, so a
root's cluster does not live in the checkout:

====================  ============================================================================
not root              ``{data_dir}/postgres``: the user runs the server and owns every file
root                  ``{SYSTEM_HOME}/<name>-<digest>/postgres``, the folder owned by ``postgres``
                      and 0700; ``<digest>`` is a hash of the resolved data folder, ``<name>``
                      its last path parts (for a person reading ``ls``)
root, older cluster   a cluster an earlier version created in ``{data_dir}/postgres`` (it has a
                      ``PG_VERSION``) stays where it is
====================  ============================================================================

One data folder, one cluster, and the cluster lives as long as its data folder:

- two checkouts (or the demo's ``.data`` and the test session's ``.data/test``) hash to
  different folders; each folder records the data folder it belongs to and a cluster id
  (:data:`OWNER_FILE`), so no checkout takes over another's cluster by accident;
- the data folder holds the same id (:data:`TOKEN_FILE`). A data folder wiped and made again
  (``rm -rf .data``) lacks it, so its old cluster is stale and is replaced by a fresh one, as
  if the cluster had been inside it;
- a cluster whose data folder is gone altogether (a test's temporary stack) is removed the next
  time any cluster is created here, unless its server still runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from synapseops.errors import ConfigurationError

log = logging.getLogger(__name__)

# Persistent state of system services lives under /var/lib (FHS); /tmp may be cleaned on boot.
SYSTEM_HOME = Path("/var/lib/synapseops")
OS_USER = "postgres"
# In the cluster's own folder: the data folder it belongs to, then the cluster id.
OWNER_FILE = "data-dir"
# In the data folder: the id of its cluster (and, for a person, where the cluster is).
TOKEN_FILE = "postgres-cluster"
_DIGEST_CHARS = 16
# Short enough that the folder's socket path stays under the 108 bytes a unix socket allows.
_NAME_CHARS = 32


def cluster_folder(data_dir: Path, *, as_root: bool, system_home: Path = SYSTEM_HOME) -> Path:
    """The cluster's data folder (``PGDATA``) for the project data folder ``data_dir``."""
    in_place = data_dir / "postgres"
    if not as_root or (in_place / "PG_VERSION").exists():
        return in_place
    return system_home / home_name(data_dir) / "postgres"


def home_name(data_dir: Path) -> str:
    """``<name>-<digest>``: unique per resolved data folder, readable by a person."""
    resolved = data_dir.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:_DIGEST_CHARS]
    name = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(resolved.parts[-3:])).strip("-")
    return f"{name[-_NAME_CHARS:].lstrip('-')}-{digest}"


def recorded_owner(home: Path) -> tuple[str, str] | None:
    """``(data folder, cluster id)`` that ``home`` was created for, if it says."""
    try:
        lines = (home / OWNER_FILE).read_text().splitlines()
    except FileNotFoundError:
        return None
    return (lines[0].strip(), lines[1].strip()) if len(lines) >= 2 else (lines[0].strip(), "")


def recorded_cluster_id(data_dir: Path) -> str | None:
    try:
        return (data_dir / TOKEN_FILE).read_text().splitlines()[0].strip()
    except (FileNotFoundError, IndexError):
        return None


HomeState = Literal["absent", "ours", "stale"]


def home_state(home: Path, data_dir: Path) -> HomeState:
    """Whether ``home`` holds this data folder's cluster; refuses another data folder's."""
    recorded = recorded_owner(home)
    if recorded is None:
        return "absent" if not home.exists() else "stale"
    owner, cluster_id = recorded
    mine = str(data_dir.resolve())
    if owner != mine:
        raise ConfigurationError(
            f"{home} holds the PostgreSQL cluster of {owner}, not of {mine}; "
            "remove it (synapseops db remove in that checkout) or set SYNAPSEOPS_DATA_DIR"
        )
    return "ours" if cluster_id and recorded_cluster_id(data_dir) == cluster_id else "stale"


def create_home(home: Path, data_dir: Path) -> None:
    """A new, empty home for ``data_dir``'s cluster: 0700, the postgres OS user's, claimed."""
    if not home.parent.exists():
        home.parent.mkdir(parents=True)
        # Whatever root's umask: the postgres OS user must be able to pass through.
        home.parent.chmod(0o755)
    home.mkdir()
    cluster_id = uuid.uuid4().hex
    (home / OWNER_FILE).write_text(f"{data_dir.resolve()}\n{cluster_id}\n")
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / TOKEN_FILE).write_text(f"{cluster_id}\nthe PostgreSQL cluster is in {home}\n")
    hand_to_os_user(home)
    home.chmod(0o700)


def sweep_orphans(system_home: Path, running: Callable[[Path], bool]) -> list[Path]:
    """Remove the homes whose data folder is gone and whose server is not ``running``."""
    removed = []
    for home in sorted(system_home.iterdir()) if system_home.is_dir() else []:
        recorded = recorded_owner(home)
        if recorded is None or Path(recorded[0]).exists() or running(home / "postgres"):
            continue
        shutil.rmtree(home, ignore_errors=True)
        log.info("removed the postgres cluster of %s, a data folder that is gone", recorded[0])
        removed.append(home)
    return removed


def hand_to_os_user(*paths: Path) -> None:
    """Make the postgres OS user own ``paths`` (recursively); nothing to do unless root."""
    if os.geteuid() != 0:
        return
    try:
        for path in paths:
            for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
                shutil.chown(item, OS_USER, OS_USER)
    except (LookupError, OSError) as exc:
        raise ConfigurationError(f"cannot hand {path} to the {OS_USER} OS user: {exc}") from exc


def remove_cluster_files(pgdata: Path, data_dir: Path) -> None:
    """Delete the cluster's files: its own folder under the system home, or ``pgdata``."""
    home = pgdata.parent
    if home.resolve() == data_dir.resolve():
        shutil.rmtree(pgdata, ignore_errors=True)
        return
    if home.exists():
        home_state(home, data_dir)  # never delete a folder recorded for another checkout
        shutil.rmtree(home)
    (data_dir / TOKEN_FILE).unlink(missing_ok=True)
