"""A real Label Studio for tests: installed by scripts/label-studio.sh into its own virtualenv,
started on a free port with a fresh SQLite database and a legacy API token made for it."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from driftline.labels import server
from driftline.platform.broker import free_port
from driftline.platform.procs import stop_group

ROOT = Path(__file__).resolve().parents[1]
# A start takes tens of seconds (minutes on a machine shared with other work, or without the
# migrated copy scripts/label-studio.sh makes).
START_TIMEOUT = 900.0


def executable() -> Path:
    out = subprocess.run(  # nosec B603 B607  # the project's own install script
        ["bash", str(ROOT / "scripts" / "label-studio.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class LabelStudioForTests:
    url: str
    token: str
    username: str
    password: str


def running_label_studio(data_dir: Path) -> Iterator[LabelStudioForTests]:
    username, password = "tester@driftline.local", secrets.token_hex(12)
    launch = server.Launch(
        executable(),
        data_dir / "label-studio",
        free_port(),
        username=username,
        password=password,
        token=secrets.token_hex(20),
    )
    ls = server.start(launch, log_path=data_dir / "label-studio.log")
    try:
        server.wait_ready(ls, START_TIMEOUT)
        yield LabelStudioForTests(ls.url, ls.token, username, password)
    finally:
        stop_group(ls.process, timeout=20)


def login_cookies(ls: LabelStudioForTests) -> dict[str, str]:
    """A browser session of the test's user (Label Studio's login form)."""
    with httpx.Client(base_url=ls.url) as http:
        http.get("/user/login/").raise_for_status()
        answer = http.post(
            "/user/login/",
            data={
                "email": ls.username,
                "password": ls.password,
                "csrfmiddlewaretoken": http.cookies.get("csrftoken", ""),
            },
            headers={"Referer": f"{ls.url}/user/login/"},
        )
        if answer.status_code != 302 or "sessionid" not in http.cookies:
            raise AssertionError(f"login failed: HTTP {answer.status_code}")
        return {name: value for name, value in http.cookies.items()}
