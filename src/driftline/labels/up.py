"""Labeling in ``driftline up``: Label Studio (when installed) and the labeler, supervised.

Label Studio runs from ``.labelstudio-venv`` (``scripts/label-studio.sh``) with SQLite under the
data directory; its user's password and API token are made once and kept there (mode 600). Its
first start copies the database the install migrated (``server.prepare_data_dir``) and still takes
tens of seconds: the labeler's passes fail (counted) until it answers, and nothing else waits.
"""

from __future__ import annotations

import logging
from pathlib import Path

from driftline.core.settings import Settings
from driftline.labels import server
from driftline.platform.ports import PortPlan
from driftline.platform.supervisor import Supervisor

log = logging.getLogger("driftline.labels")
CHECKOUT = Path(__file__).resolve().parents[3]


def start_labeling(
    settings: Settings, supervisor: Supervisor, ports: PortPlan, metrics_port: int
) -> str | None:
    """Start Label Studio (unless one is configured) and the labeler; the Label Studio URL, or
    None when labeling is off (no Label Studio installed or configured, or turned off)."""
    url = settings.label_studio_url
    token = settings.label_studio_token.get_secret_value() if settings.label_studio_token else None
    if url is None:
        if not settings.label_studio_start:
            log.info("labeling off: DRIFTLINE_LABEL_STUDIO_START=false")
            return None
        executable = server.installed_executable(CHECKOUT / server.DEFAULT_VENV)
        if executable is None:
            log.info("labeling off: Label Studio not installed (bash scripts/label-studio.sh)")
            return None
        secrets_dir = settings.data_dir / "label-studio-secrets"
        password = (
            settings.label_studio_password.get_secret_value()
            if settings.label_studio_password
            else server.stored_secret(secrets_dir / "password", 12)
        )
        token = server.stored_secret(secrets_dir / "token", 20)
        host, port = "127.0.0.1", ports.claim(settings.label_studio_port, "Label Studio")
        data_dir = (settings.data_dir / "label-studio").resolve()
        launch = server.Launch(
            executable, data_dir, port, settings.label_studio_username, password, token, host
        )
        server.prepare_data_dir(launch)
        supervisor.start_child("label-studio", server.command(launch), server.environment(data_dir))
        url = f"http://{host}:{port}"
    if token is None:
        log.warning("labeling off: DRIFTLINE_LABEL_STUDIO_URL is set without a token")
        return None
    supervisor.start_service(
        "labeler",
        {
            "DRIFTLINE_METRICS_PORT": str(ports.claim(metrics_port, "labeler's /metrics")),
            "DRIFTLINE_LABEL_STUDIO_URL": url,
            "DRIFTLINE_LABEL_STUDIO_TOKEN": token,
        },
    )
    return url
