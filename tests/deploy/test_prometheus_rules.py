"""The Prometheus and Alertmanager configuration under deploy/: valid for the tools that load it,
alert rules that pass their unit tests, and queries that name only series Driftline exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.metric_names import exported_metric_names
from driftline.services import GATEWAY_NAMES, SERVICE_NAMES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
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


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin")
    if path is None:
        pytest.fail(f"{name} not found: run scripts/ops-tools.sh to install it")
    return path


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
    assert set(jobs) == {*SERVICE_NAMES, *GATEWAY_NAMES, "serving", "prometheus"}
    for name in (*SERVICE_NAMES, *GATEWAY_NAMES):
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
    assert {"driftline_readings_valid_total", "bentoml_service_request_total", "up"} <= named


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
