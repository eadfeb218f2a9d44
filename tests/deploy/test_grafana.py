"""Grafana's provisioning, dashboards and alert rules (deploy/grafana), checked as files: Grafana
is not run here. Besides the shape Grafana needs, every query is checked to name only series the
code exports (``tests.metric_names``): a misspelt or renamed metric would otherwise leave a
panel empty, or an alert silent, without any error."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.metric_names import exported_metric_names

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"
ALERTING = PROVISIONING / "alerting"
DATASOURCE_UID = "prometheus"

# PromQL's functions, aggregations and keywords, and Grafana's variable-query helpers: what an
# identifier in a query may be without being a metric name.
_PROMQL_WORDS = """
    abs absent absent_over_time acos acosh asin asinh atan atanh ceil changes clamp clamp_max
    clamp_min cos cosh day_of_month day_of_week day_of_year days_in_month deg delta deriv
    double_exponential_smoothing exp floor histogram_avg histogram_count histogram_fraction
    histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta
    increase info irate label_join label_replace last_over_time ln log10 log2 mad_over_time
    max_over_time min_over_time minute month pi predict_linear present_over_time
    quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_by_label
    sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh
    time timestamp vector year avg_over_time count_over_time
    avg bottomk count count_values group limit_ratio limitk max min quantile stddev stdvar sum
    topk
    and or unless atan2 bool by without on ignoring group_left group_right offset start end
    inf nan
    label_values label_names metrics query_result
"""
PROMQL_WORDS = frozenset(_PROMQL_WORDS.split())

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+(?::\w+)?\]\]")
_LABEL_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_NUMBER = re.compile(r"(?<![\w.])(?:0x[0-9a-fA-F]+|\d*\.?\d+(?:[eE][+-]?\d+)?)(?![\w.])")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*(?:,\s*\w+\s*)?\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana variable query) selects."""
    if match := _LABEL_VALUES.match(expr):
        inner = match.group(1)
        # label_values(label) names a label only; label_values(query, label) a query.
        if "," not in expr or not inner:
            return set()
        expr = inner
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _LABEL_MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in PROMQL_WORDS}


def unknown_metrics(expr: str) -> set[str]:
    return metric_names(expr) - exported_metric_names()


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in dashboard_files()}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows included; rows themselves are not."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries() -> Iterator[tuple[str, str]]:
    """(where, expr) for every query of every dashboard."""
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield f"{name}: {panel['title']!r} {target['refId']}", target.get("expr", "")
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                query = variable["query"]
                expr = query["query"] if isinstance(query, dict) else query
                yield f"{name}: variable {variable['name']}", expr


def all_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from all_strings(key)
            yield from all_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from all_strings(item)


# --- The extractor ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.99, sum by (service, le) (rate(driftline_batch_duration_seconds"
            '_bucket{service=~"$service"}[$__rate_interval])))',
            {"driftline_batch_duration_seconds_bucket"},
        ),
        (
            "sum(rate(a_total[5m] offset 1h)) / clamp_min(sum without (check) (b_total)"
            " + on (x) group_left (y) c, 1e-9) or vector(0)",
            {"a_total", "b_total", "c"},
        ),
        (
            'count((time() - last_seen{sensor_id=~"${sensor_id:regex}", x="sum(y)"}) >= bool 300)',
            {"last_seen"},
        ),
        ("sum(increase(runs_total{outcome='failed'}[$__range])) by (outcome)", {"runs_total"}),
        ('label_values(drift_share{sensor_id=~"$sensor_id"}, feature)', {"drift_share"}),
        ("label_values(sensor_id)", set()),
        ("max by (job, instance) (up) < 1", {"up"}),
    ],
)
def test_the_extractor_finds_the_metric_names_of_a_query(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_made_up_metric_name_is_caught() -> None:
    real = 'sum by (check) (rate(driftline_readings_invalid_total{check!=""}[$__rate_interval]))'
    assert unknown_metrics(real) == set()
    made_up = real.replace("readings_invalid_total", "readings_bogus_total")
    assert unknown_metrics(made_up) == {"driftline_readings_bogus_total"}
    # A misspelt function is caught too: it is not a PromQL word, so it counts as a name.
    assert unknown_metrics(real.replace("rate(", "rated(")) == {"rated"}


# --- Every query --------------------------------------------------------------------------


def test_every_query_names_only_exported_series() -> None:
    found = list(queries())
    assert len(found) > 50, "the dashboards and rules were not found"
    empty = [where for where, expr in found if not metric_names(expr)]
    assert empty == [], "queries that name no metric (or that the extractor cannot read)"
    unknown = {where: sorted(unknown_metrics(expr)) for where, expr in found}
    assert {where: names for where, names in unknown.items() if names} == {}


# --- Dashboards ---------------------------------------------------------------------------


def test_dashboards_are_json_with_unique_uids_and_titles() -> None:
    assert len(dashboard_files()) == 5
    loaded = dashboards()
    uids = [d["uid"] for d in loaded.values()]
    titles = [d["title"] for d in loaded.values()]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles
    for name, dashboard in loaded.items():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"]), name
        assert dashboard["schemaVersion"] >= 39, name
        # Provisioned dashboards must not carry a database id.
        assert dashboard.get("id") is None, name


def test_panels_query_the_prometheus_data_source_by_uid() -> None:
    for name, dashboard in dashboards().items():
        ids = [p["id"] for p in dashboard["panels"]] + [
            p["id"] for row in dashboard["panels"] for p in row.get("panels", [])
        ]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"
        for panel in panels(dashboard):
            where = f"{name}: {panel['title']!r}"
            assert panel["type"] in {"timeseries", "stat", "table"}, where
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
            assert panel["targets"], where
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), where
            for target in panel["targets"]:
                assert target.get("expr", "").strip(), where
                assert target["datasource"]["uid"] == DATASOURCE_UID, where


def test_panels_fit_the_grid_without_overlapping() -> None:
    for name, dashboard in dashboards().items():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']!r}"
            cells = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & taken, f"{name}: {panel['title']!r} overlaps another panel"
            taken |= cells


GRAFANA_GLOBALS = {
    "__all",
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__from",
    "__to",
}


def test_dashboard_variables_are_defined_and_query_prometheus() -> None:
    for name, dashboard in dashboards().items():
        variables = dashboard["templating"]["list"]
        defined = {v["name"] for v in variables}
        for variable in variables:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == DATASOURCE_UID, (name, variable["name"])
        used = {
            m.group(1) or m.group(2)
            for text in all_strings(dashboard["panels"] + variables)
            for m in re.finditer(r"\$\{(\w+)[^}]*\}|\$(\w+)", text)
        }
        assert used - defined - GRAFANA_GLOBALS == set(), name


# --- Provisioning -------------------------------------------------------------------------


def datasources() -> dict[str, dict[str, Any]]:
    config = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")
    assert config["apiVersion"] == 1
    return {source["type"]: source for source in config["datasources"]}


def test_the_datasource_is_the_default_prometheus_with_the_uid_dashboards_name() -> None:
    source = datasources()["prometheus"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True


def test_the_dashboard_provider_loads_the_mounted_directory() -> None:
    config = load_yaml(PROVISIONING / "dashboards" / "driftline.yml")
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Driftline"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# --- Alerting: Prometheus's rules, shown by Grafana -------------------------------------------


def test_grafana_evaluates_no_alert_rules_of_its_own() -> None:
    """One alerting path: Prometheus's rules, routed by Alertmanager. Grafana-managed rules
    beside them paged twice, with other thresholds (5xx over 5% there, 1% here)."""
    provisioned = [
        (path.name, key)
        for path in sorted(ALERTING.glob("*.y*ml"))
        for key in ("groups", "contactPoints", "policies", "templates", "muteTimes")
        if (load_yaml(path) or {}).get(key)
    ]
    assert provisioned == [], "Grafana-managed alerting is provisioned"


def test_grafana_shows_prometheus_rules_and_alertmanager_alerts() -> None:
    sources = datasources()
    # Data-source-managed rules: Grafana lists Prometheus's rules and their state.
    assert sources["prometheus"]["jsonData"].get("manageAlerts") is True
    alertmanager = sources["alertmanager"]
    assert alertmanager["url"] == "http://alertmanager:9093"
    assert alertmanager["jsonData"]["implementation"] == "prometheus"
    assert alertmanager["jsonData"].get("handleGrafanaManagedAlerts") is False
