"""The Prometheus and Alertmanager configuration under deploy/: valid for the tools that load it,
alert rules that pass their unit tests, and queries that name only series Driftline exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.platform.services import GATEWAY_NAMES, OPTIONAL_SERVICE_NAMES, SERVICE_NAMES
from tests.metric_names import exported_metric_names

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/driftline/driftline/blob/main/docs/runbooks.md"
RUNBOOK_PARTS = ("**What it means.**", "**What to check.**", "**What to do.**")
PROMETHEUS = DEPLOY / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"

# Words of PromQL that look like metric names: aggregations (which may be followed by
# `by (...)` rather than a parenthesis), operators and keywords.
PROMQL_WORDS = frozenset(
    {
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "by", "without", "on", "ignoring", "group_left",
        "group_right", "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan",
    }
)  # fmt: skip


# The releases docker-compose.yml deploys, which scripts/ops-tools.sh fetches the tools of.
TOOLS = ROOT / ".tools" / "bin"
IMAGES = {"promtool": "prom/prometheus", "amtool": "prom/alertmanager"}


def tool(name: str) -> str:
    """promtool or amtool of the release compose deploys (.tools/bin, scripts/ops-tools.sh);
    the distribution's older ones accept and reject other things."""
    path = TOOLS / name
    if not path.is_file():
        pytest.fail(f"{path} not found: run scripts/ops-tools.sh to install it")
    return str(path)


def compose_image_version(image: str) -> str:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    (tag,) = [
        s["image"].rpartition(":v")[2]
        for s in compose["services"].values()
        if s.get("image", "").startswith(f"{image}:")
    ]
    return tag


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_checks_run_the_versions_compose_deploys(name: str) -> None:
    """promtool 2.42 and amtool 0.25 checked files that Prometheus 3.5 and Alertmanager 0.28
    load: what one release accepts, another may not."""
    proc = run(tool(name), "--version")
    output = proc.stdout + proc.stderr
    found = re.search(r"version (\d+\.\d+\.\d+)", output)
    assert found, output
    deployed = compose_image_version(IMAGES[name])
    if name == "promtool":
        # Debian's latest build of the 3.5 series: the same rule language and checks.
        assert found.group(1).split(".")[:2] == deployed.split(".")[:2], (found.group(1), deployed)
    else:
        assert found.group(1) == deployed, (found.group(1), deployed)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a tool; fail with its output unless it succeeds."""
    cmd = [str(a) for a in args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{output}"
    return proc


def rules() -> list[dict[str, Any]]:
    return [
        r for path in RULES for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def metric_names(expr: str) -> set[str]:
    """The series an expression selects: identifiers left once strings, label matchers, ranges,
    label lists and function calls are set aside."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', " ", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    found = re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return {name for name in found if name.lower() not in PROMQL_WORDS}


def test_metric_names_sees_series_and_nothing_else() -> None:
    expr = (
        'sum by (service, le) (rate(a_total{topic=~"x.y", code!="5"}[5m])) / on () '
        "b:c:d offset 1h > bool 0.5 and time() - max_over_time(e[1h:1m]) > 1e3 unless f"
    )
    assert metric_names(expr) == {"a_total", "b:c:d", "e", "f"}


def test_prometheus_config_is_valid() -> None:
    # promtool resolves rule_files relative to the configuration, as Prometheus does.
    output = run(tool("promtool"), "check", "config", CONFIG).stdout
    assert f"{len(RULES)} rule files found" in output, output


def test_scrape_jobs_label_each_service_as_the_code_does() -> None:
    jobs = {j["job_name"]: j for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    extra = (*GATEWAY_NAMES, *OPTIONAL_SERVICE_NAMES)
    assert set(jobs) == {*SERVICE_NAMES, *extra, "serving", "prometheus"}
    for name in (*SERVICE_NAMES, *extra):
        (target,) = jobs[name]["static_configs"]
        assert target["targets"] == [f"{name}:9400"]
        assert target["labels"] == {"service": name}
        # The code labels its series service=<name> too: kept, not renamed exported_service.
        assert jobs[name]["honor_labels"] is True
    assert jobs["serving"]["static_configs"][0]["targets"] == ["serving:3000"]


def test_rules_are_valid() -> None:
    run(tool("promtool"), "check", "rules", *RULES)


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no rule unit tests under deploy/prometheus/tests"
    run(tool("promtool"), "test", "rules", *RULE_TESTS)


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {a["alert"] for a in alerts()} <= fired


def test_alerts_have_severity_annotations_and_docs() -> None:
    readme = (PROMETHEUS / "README.md").read_text()
    for alert in alerts():
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert {"summary", "description"} <= set(alert["annotations"]), alert["alert"]
        assert f"`{alert['alert']}`" in readme, f"{alert['alert']} not in the README"


def test_rules_name_only_exported_series() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    exported = exported_metric_names()
    named = set().union(*(metric_names(r["expr"]) for r in rules()))
    assert named - recorded - exported == set(), "not exported by Driftline, BentoML or Prometheus"
    assert {"driftline_records_produced_total", "bentoml_service_request_total", "up"} <= named


def test_alertmanager_config_is_valid() -> None:
    run(tool("amtool"), "check-config", ALERTMANAGER)


@pytest.mark.parametrize(
    ("severity", "receiver"), [("critical", "critical"), ("warning", "warnings")]
)
def test_alertmanager_routes_by_severity(severity: str, receiver: str) -> None:
    proc = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receiver}",
        "alertname=DriftlineTargetDown",
        f"severity={severity}",
    )
    assert proc.stdout.split() == [receiver], proc.stdout


# --- Runbooks -----------------------------------------------------------------------------------


def runbook_sections() -> dict[str, str]:
    """GitHub's anchor of each '## ' heading of docs/runbooks.md -> the section's text."""
    sections: dict[str, str] = {}
    for chunk in RUNBOOKS.read_text().split("\n## ")[1:]:
        title, _, body = chunk.partition("\n")
        anchor = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        sections[anchor] = body
    return sections


def test_every_alert_links_its_runbook_section() -> None:
    sections = runbook_sections()
    for alert in alerts():
        url = alert["annotations"].get("runbook_url", "")
        base, _, anchor = url.partition("#")
        assert base == RUNBOOK_BASE, f"{alert['alert']}: runbook_url {url!r}"
        assert anchor in sections, f"{alert['alert']}: no section #{anchor} in docs/runbooks.md"
        for part in RUNBOOK_PARTS:
            assert part in sections[anchor], f"docs/runbooks.md#{anchor} lacks {part}"


# --- Rules that hold wherever Prometheus runs ---------------------------------------------

_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")


def code_labels() -> dict[str, set[str]]:
    """Metric name -> the labels Driftline's code puts on it (driftline.metrics)."""
    from prometheus_client import REGISTRY

    import driftline.core.metrics  # noqa: F401  # registers the collectors

    labels: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001
        names = getattr(collector, "_labelnames", None)
        if names is None:
            continue
        for name in REGISTRY._collector_to_names[collector]:  # noqa: SLF001
            labels[name] = set(names)
    return labels


def test_rules_filter_only_on_labels_the_code_sets() -> None:
    """A `service` matcher on a series the code does not label works only where the scrape
    configuration adds service (compose), not on Kubernetes: InvalidReadingsHigh once could
    never fire there."""
    labels = code_labels()
    for rule in rules():
        for metric, matchers in _SELECTOR.findall(rule["expr"]):
            if not metric.startswith("driftline_") or "service" not in re.findall(
                r"(\w+)\s*[=!]~?", matchers
            ):
                continue
            assert "service" in labels.get(metric, set()), (
                f"{rule.get('alert') or rule.get('record')}: {metric} is filtered on service, "
                "a label only compose's scrape configuration gives it"
            )


def test_target_down_watches_every_driftline_job() -> None:
    """Scoped to Driftline's jobs (a cluster's other targets are not ours to page for), and
    still covering each one compose scrapes (on Kubernetes the Services of the same names)."""
    (down,) = [a for a in alerts() if a["alert"] == "DriftlineTargetDown"]
    (pattern,) = re.findall(r'job=~"([^"]+)"', down["expr"])
    jobs = {j["job_name"] for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    assert set(pattern.split("|")) == jobs - {"prometheus"}
