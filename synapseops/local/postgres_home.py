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

One data folder, one cluster: two checkouts (or the demo's ``.data`` and the test session's
``.data/test``) hash to different folders, and each folder records the data folder it belongs
to (:data:`OWNER_FILE`), so a cluster is never taken over by another checkout by accident.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from synapseops.errors import ConfigurationError

# Persistent state of system services lives under /var/lib (FHS); /tmp may be cleaned on boot.
SYSTEM_HOME = Path("/var/lib/synapseops")
OS_USER = "postgres"
OWNER_FILE = "data-dir"
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


def recorded_owner(home: Path) -> str | None:
    """The data folder ``home`` was created for, if it says."""
    try:
        return (home / OWNER_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def claim(home: Path, data_dir: Path) -> None:
    """Record that ``home`` holds the cluster of ``data_dir``; refuse another data folder's."""
    mine, recorded = str(data_dir.resolve()), recorded_owner(home)
    if recorded is None:
        (home / OWNER_FILE).write_text(mine + "\n")
    elif recorded != mine:
        raise ConfigurationError(
            f"{home} holds the PostgreSQL cluster of {recorded}, not of {mine}; "
            "remove it (synapseops db remove in that checkout) or set SYNAPSEOPS_DATA_DIR"
        )


def prepare_system_home(home: Path, data_dir: Path) -> None:
    """Create ``home`` (0700, owned by the postgres OS user) under a traversable parent."""
    if not home.parent.exists():
        home.parent.mkdir(parents=True)
        # Whatever root's umask: the postgres OS user must be able to pass through.
        home.parent.chmod(0o755)
    home.mkdir(exist_ok=True)
    claim(home, data_dir)
    hand_to_os_user(home)
    home.chmod(0o700)


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
    if not home.exists():
        return
    recorded = recorded_owner(home)
    if recorded not in (None, str(data_dir.resolve())):
        raise ConfigurationError(f"{home} holds the cluster of {recorded}; it is left as it is")
    shutil.rmtree(home)
