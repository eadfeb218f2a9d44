"""Starting a local Label Studio (its own virtualenv, SQLite, one user with a legacy API token).

Label Studio's pins are its own, so it is never imported: ``scripts/label-studio.sh`` installs it
into ``.labelstudio-venv`` and this runs its executable. A new data directory starts from the
database that script migrated once (``migrated-database.sqlite3`` in the virtualenv, itself a copy
of the one kept per machine in the user's cache directory): migrating a fresh one takes one to
three minutes at each first start.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from driftline.core.errors import DriftlineError
from driftline.platform import procs

DEFAULT_VENV = Path(".labelstudio-venv")
DATABASE = "label_studio.sqlite3"  # in the data directory: Label Studio's default name
MIGRATED_DATABASE = "migrated-database.sqlite3"  # in the virtualenv: scripts/label-studio.sh


class LabelStudioStartError(DriftlineError):
    """Label Studio did not start or did not answer in time."""


@dataclass(frozen=True)
class LabelStudioServer:
    process: subprocess.Popen[bytes]
    url: str
    token: str
    data_dir: Path


def installed_executable(venv: Path = DEFAULT_VENV) -> Path | None:
    exe = venv / "bin" / "label-studio"
    return exe if exe.exists() else None


def stored_secret(path: Path, size: int = 20) -> str:
    """A secret kept in ``path`` (made on first use, readable by its owner only)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(size)
    path.write_text(value)
    path.chmod(0o600)
    return value


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # nosec B105  # a switch, not a secret
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            # The labeler's webhook is on this host or the cluster's network, which Label
            # Studio's SSRF guard would refuse.
            "SSRF_PROTECTION_ENABLED": "false",
            "USE_DEFAULT_BANNED_SUBNETS": "false",
        }
    )
    return env


@dataclass(frozen=True)
class Launch:
    """How one Label Studio is started: one user whose legacy API token is ``token``."""

    executable: Path
    data_dir: Path
    port: int
    username: str
    password: str
    token: str
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def command(launch: Launch) -> list[str]:
    """``label-studio start`` as ``launch`` says."""
    return [
        str(launch.executable),
        "start",
        "--no-browser",
        "--internal-host",
        launch.host,
        "--port",
        str(launch.port),
        "--data-dir",
        str(launch.data_dir),
        "--username",
        launch.username,
        "--password",
        launch.password,
        "--user-token",
        launch.token,
        "--enable-legacy-api-token",
    ]


def prepare_data_dir(launch: Launch) -> None:
    """The data directory, made if new, with the migrated database if it has none."""
    launch.data_dir.mkdir(parents=True, exist_ok=True)
    seed_database(launch)


def seed_database(launch: Launch) -> bool:
    """Copy the migrated empty database into a data directory that has none yet; False when
    there is nothing to copy (an older install: Label Studio migrates a fresh one itself)."""
    target = launch.data_dir / DATABASE
    migrated = launch.executable.parent.parent / MIGRATED_DATABASE
    if target.exists() or not migrated.exists():
        return False
    shutil.copyfile(migrated, target)
    return True


def start(launch: Launch, log_path: Path) -> LabelStudioServer:
    """Start Label Studio and return at once (``wait_ready`` waits for it)."""
    prepare_data_dir(launch)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = procs.start(
            command(launch), stdout=log, env=environment(launch.data_dir), stdin=None
        )
    return LabelStudioServer(process, launch.url, launch.token, launch.data_dir)


def wait_ready(server: LabelStudioServer, timeout: float) -> None:
    """Until the API answers the token (a first start without a migrated copy migrates)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        server.url + "/api/projects?page_size=1",
        headers={"Authorization": f"Token {server.token}"},
    )
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LabelStudioStartError(f"Label Studio exited with {server.process.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # nosec B310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    raise LabelStudioStartError(f"Label Studio at {server.url} not ready after {timeout:.0f} s")
