"""docker-compose.yml checked as a file (no Docker engine here): what it builds exists, Driftline's
containers get only settings the code reads, every variable comes from .env.example, the ports
are the ones the containers serve and Prometheus scrapes, long-running services are health-
checked and restarted, and no image we build runs as root."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.core.settings import Settings, env_name
from tests.deploy import test_dockerfiles as dockerfiles

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

# Containers running Driftline's code: their environment is Driftline's settings.
DRIFTLINE_SERVICES = {
    "ingest",
    "validator",
    "drift",
    "retrain-trigger",
    "mqtt-gateway",
    "labeler",
    "serving",
}
# Those serving /metrics on DRIFTLINE_METRICS_PORT (serving has BentoML's on its HTTP port).
METRICS_PORT_SERVICES = {
    "ingest",
    "validator",
    "drift",
    "retrain-trigger",
    "mqtt-gateway",
    "labeler",
}
METRICS_PORT = 9400
SERVING_PORT = 3000
EXTERNAL_KAFKA_PORT = 29092
# Read by libraries in a Driftline container, not by Settings: DVC's S3 remote on MinIO (botocore
# reads the keys and, for MinIO, AWS_ENDPOINT_URL), as the DRIFTLINE_DVC_REMOTE_URL docs say.
LIBRARY_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}
# What other images read from their environment themselves: (exact names, name prefixes).
IMAGE_ENV: dict[str, tuple[set[str], tuple[str, ...]]] = {
    # apache/kafka turns each KAFKA_X_Y into x.y of server.properties; CLUSTER_ID formats the
    # KRaft storage on first start.
    "kafka": ({"CLUSTER_ID"}, ("KAFKA_",)),
    # Label Studio's first user and its legacy API token; its version check and SSRF guard.
    "label-studio": (
        {
            "LABEL_STUDIO_USERNAME",
            "LABEL_STUDIO_PASSWORD",
            "LABEL_STUDIO_USER_TOKEN",
            "LATEST_VERSION_CHECK",
            "SSRF_PROTECTION_ENABLED",
            "USE_DEFAULT_BANNED_SUBNETS",
        },
        (),
    ),
    # The mysql image's first-start initialisation: database, user and passwords.
    "mysql": ({"MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"}, ()),
    # MinIO's root credentials.
    "minio": ({"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}, ()),
    # `mlflow server` options and MLflow's S3 client (checked against MLflow below); boto3 reads
    # the AWS keys.
    "mlflow": (
        {
            "MLFLOW_BACKEND_STORE_URI",
            "MLFLOW_S3_ENDPOINT_URL",
            "MLFLOW_SERVER_ALLOWED_HOSTS",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        },
        (),
    ),
    # Grafana maps GF_<SECTION>_<KEY> onto grafana.ini.
    "grafana": (set(), ("GF_",)),
    # Mosquitto's entrypoint writes its password file from these (docker-compose.yml).
    "mosquitto": ({"MQTT_USERNAME", "MQTT_PASSWORD"}, ()),
}
# Published host port -> container port, by service.
PUBLISHED = {
    "kafka": {29092: EXTERNAL_KAFKA_PORT},
    "mysql": {},
    "minio": {9000: 9000, 9001: 9001},
    "mlflow": {5000: 5000},
    "ingest": {9401: METRICS_PORT},
    "validator": {9402: METRICS_PORT},
    "drift": {9403: METRICS_PORT},
    "retrain-trigger": {9404: METRICS_PORT},
    "mqtt-gateway": {9405: METRICS_PORT},
    "mosquitto": {1883: 1883},
    "labeler": {9406: METRICS_PORT},
    "label-studio": {8080: 8080},
    "serving": {SERVING_PORT: SERVING_PORT},
    "prometheus": {9090: 9090},
    "alertmanager": {9093: 9093},
    "grafana": {3001: 3000},
}
RESTARTING = {"always", "unless-stopped", "on-failure"}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, or $NAME; $$ is a literal $.
_VARIABLE = re.compile(r"(?<!\$)(?:\$\$)*\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_]\w*))")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY\b|_KEY_")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # safe_load resolves anchors and merge keys (<<), as Compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=value list form
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def dockerfile_of(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return ROOT / build / "Dockerfile"
    return ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation, with .env.example's values."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, "")

    return _VARIABLE.sub(one, text).replace("$$", "$")


def published(service: dict[str, Any]) -> dict[int, int]:
    """Host port -> container port of the service's short-syntax port mappings."""
    mapping: dict[int, int] = {}
    for entry in service.get("ports", []):
        parts = str(entry).rsplit(":", 2)
        assert len(parts) == 3, f"{entry}: publish on an explicit address (PUBLISH_ADDRESS)"
        address, host, container = parts
        assert "PUBLISH_ADDRESS" in address, f"{entry}: published on a fixed address"
        mapping[int(host)] = int(container.split("/")[0])
    return mapping


def is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no"


# --- What runs ------------------------------------------------------------------------------


def test_every_service_has_an_image_or_a_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        dockerfile = dockerfile_of(service)
        if dockerfile is not None:
            build = service["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            assert context == ".", f"{name}: builds from the repository root"
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        else:
            image = service.get("image", "")
            assert image, f"{name}: neither image nor build"
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: {image} is not pinned to a release"


def test_driftline_services_are_built_from_their_directories(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in DRIFTLINE_SERVICES:
        dockerfile = dockerfile_of(services[name])
        if dockerfile == ROOT / "services" / "Dockerfile":  # the plain services' one image
            assert services[name]["build"]["args"]["SERVICE"] == name, name
            continue
        expected = "serving" if name == "serving" else f"services/{name}"
        assert dockerfile == ROOT / expected / "Dockerfile", name


def test_images_we_build_do_not_run_as_root(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        dockerfile = dockerfile_of(service)
        if dockerfile is None:
            continue
        user = str(service.get("user") or dockerfiles.last_user(dockerfile) or "root")
        assert not dockerfiles.is_root(user), f"{name} runs as {user}"


# --- Environment ------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    return {env_name(field) for field in Settings.model_fields}


def test_driftline_containers_get_only_settings_the_code_reads(
    services: dict[str, dict[str, Any]],
) -> None:
    allowed = settings_env_names() | LIBRARY_ENV
    for name in DRIFTLINE_SERVICES:
        unknown = set(environment(services[name])) - allowed
        assert not unknown, f"{name}: {sorted(unknown)} are not Driftline settings"


@pytest.mark.parametrize("name", sorted(DRIFTLINE_SERVICES))
def test_driftline_settings_in_compose_are_valid(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The settings each container starts with (its image's ENV, then compose's, with
    .env.example's values) are accepted by Settings."""
    for variable in settings_env_names():
        monkeypatch.delenv(variable, raising=False)
    service = services[name]
    values = env_example()
    env = dockerfiles.env_of(dockerfile_of(service))  # type: ignore[arg-type]
    env.update({k: interpolate(v, values) for k, v in environment(service).items()})
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    settings = Settings()
    if name in METRICS_PORT_SERVICES:
        assert settings.metrics_port == METRICS_PORT, name
    if name == "retrain-trigger":
        assert settings.mlflow_tracking_uri == "http://mlflow:5000"
        assert settings.dvc_remote_url and settings.dvc_remote_url.startswith("s3://")
        assert settings.retrain_launcher == "kfp-local"


def test_other_containers_get_only_what_their_images_read(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        env = environment(service)
        if name in DRIFTLINE_SERVICES or not env:
            continue
        if is_one_shot(service):
            # An init script's variables: each one is used by its command.
            script = " ".join(
                str(part) for key in ("entrypoint", "command") for part in (service.get(key) or [])
            )
            for variable in env:
                assert re.search(rf"\$\$\{{?{variable}\b", script), f"{name}: {variable} unused"
            continue
        assert name in IMAGE_ENV, f"{name}: list what its image reads in IMAGE_ENV"
        names, prefixes = IMAGE_ENV[name]
        unknown = {v for v in env if v not in names and not v.startswith(prefixes)}
        assert not unknown, f"{name}: {sorted(unknown)}"


def test_mlflow_reads_the_variables_it_is_given() -> None:
    from mlflow import environment_variables
    from mlflow.cli import server

    read = {
        getattr(getattr(environment_variables, v), "name", None) for v in dir(environment_variables)
    }
    read |= {str(p.envvar) for p in server.params if getattr(p, "envvar", None)}
    names, _ = IMAGE_ENV["mlflow"]
    assert {n for n in names if n.startswith("MLFLOW_")} <= read


def strings(node: Any) -> list[str]:
    """Every string in a parsed YAML document, keys too (what Compose interpolates; comments
    are not)."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def test_every_variable_comes_from_env_example(compose: dict[str, Any]) -> None:
    used = {a or b for text in strings(compose) for a, b in _VARIABLE.findall(text)}
    used |= {secret["environment"] for secret in compose.get("secrets", {}).values()}
    listed = set(env_example())
    assert used <= listed, f"not in .env.example: {sorted(used - listed)}"
    assert listed <= used, f"in .env.example but unused: {sorted(listed - used)}"


# ${NAME:?message}: Compose stops with the message when NAME is unset or empty.
_REQUIRED = r"\$\{\w+:\?[^}]+\}"
# Present in .env but may be empty on purpose: serving's API key (empty: no key is asked for).
MAY_BE_EMPTY = {"DRIFTLINE_SERVING_API_KEY"}


def test_no_secret_is_written_inline(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for variable, value in environment(service).items():
            if _SECRET_NAME.search(variable):
                assert re.fullmatch(r"\$\{\w+:?\?[^}]+\}", value), f"{name}: {variable} is inline"
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert re.fullmatch(_REQUIRED, password), f"{name}: {variable} holds one"


def test_secrets_are_required(compose: dict[str, Any]) -> None:
    """A missing .env, or a password left out of it, stops `docker compose` with a message
    naming the variable, instead of starting MySQL, MinIO and the rest with blank passwords."""
    for text in strings(compose):
        # $${VAR} is the container's shell reading its own environment, not compose's.
        for match in re.finditer(r"(?<!\$)\$\{(\w+)([^}]*)\}", text):
            variable, rest = match.groups()
            if not (_SECRET_NAME.search(variable) or variable.endswith("_USER")):
                continue
            if variable in MAY_BE_EMPTY:
                assert rest.startswith("?"), f"{variable}: must be set in .env (empty allowed)"
            elif variable == "GRAFANA_ADMIN_USER":
                assert rest == ":-admin", variable
            else:
                assert rest.startswith(":?") and len(rest) > 2, f"{variable}: not required"
    values = env_example()
    blank = [
        v for v in values if _SECRET_NAME.search(v) and not values[v] and v not in MAY_BE_EMPTY
    ]
    assert not blank, f".env.example leaves {blank} empty"


def test_the_compose_check_catches_a_blank_password() -> None:
    assert not re.fullmatch(_REQUIRED, "${MYSQL_PASSWORD}")
    assert re.fullmatch(_REQUIRED, "${MYSQL_PASSWORD:?set it}")


# --- Kafka for remote sensors -------------------------------------------------------------------


def listeners(value: str) -> dict[str, str]:
    """NAME -> the rest of each NAME://host:port (or NAME:PROTOCOL) entry."""
    return dict(entry.split(":", 1) for entry in value.split(","))


def test_kafka_has_an_external_listener_remote_clients_can_use(
    services: dict[str, dict[str, Any]],
) -> None:
    """Sensors on other machines publish to Kafka directly: the published listener advertises
    an address they can reach (not localhost) and asks for a SCRAM login."""
    kafka = environment(services["kafka"])
    bound = {
        name: at.removeprefix("//") for name, at in listeners(kafka["KAFKA_LISTENERS"]).items()
    }
    advertised = {
        name: at.removeprefix("//")
        for name, at in listeners(kafka["KAFKA_ADVERTISED_LISTENERS"]).items()
    }
    protocols = listeners(kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])
    (external,) = [n for n, at in bound.items() if at.endswith(f":{EXTERNAL_KAFKA_PORT}")]
    host, _, port = advertised[external].rpartition(":")
    assert int(port) == EXTERNAL_KAFKA_PORT
    assert re.fullmatch(r"\$\{KAFKA_ADVERTISED_HOST:\?[^}]+\}", host), (
        f"the external listener advertises {host}: remote clients would be sent there"
    )
    assert protocols[external] in {"SASL_PLAINTEXT", "SASL_SSL"}, "no login on the external one"
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert "java.security.auth.login.config=/etc/kafka/" in kafka["KAFKA_OPTS"]
    mounted = {c["target"]: c["source"] for c in services["kafka"]["configs"]}
    jaas_path = kafka["KAFKA_OPTS"].split("=", 1)[1]
    assert jaas_path in mounted
    # Published where other machines reach it (PUBLISH_ADDRESS is 127.0.0.1 by default).
    (entry,) = services["kafka"]["ports"]
    assert "KAFKA_PUBLISH_ADDRESS:-0.0.0.0" in entry
    # The internal listener stays on the compose network.
    assert all(int(c) == EXTERNAL_KAFKA_PORT for c in published(services["kafka"]).values())


def test_kafka_init_makes_the_sensor_user_and_grants_the_raw_topic(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    from driftline.core.topics import Topics

    jaas = compose["configs"]["kafka-jaas"]["content"]
    assert "ScramLoginModule required" in jaas
    init = services["kafka-init"]
    script = " ".join(init["command"])
    assert "SCRAM-SHA-512=[iterations=8192,password=$$KAFKA_SENSOR_PASSWORD]" in script
    assert '--entity-name "$$KAFKA_SENSOR_USERNAME"' in script
    assert f"--topic {Topics(Settings.model_fields['topic_prefix'].default).raw_readings}" in script
    assert "--operation Write" in script
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    kafka = environment(services["kafka"])
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")


def test_a_remote_client_configured_as_documented_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings .env.example tells a remote Driftline client (e.g. `driftline simulate` on
    a gateway) to use are ones Settings accepts, with the SCRAM mechanism the broker enables."""
    values = env_example()
    for variable in settings_env_names():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(
        "KAFKA_BOOTSTRAP_SERVERS", f"{values['KAFKA_ADVERTISED_HOST']}:{EXTERNAL_KAFKA_PORT}"
    )
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", values["KAFKA_SENSOR_USERNAME"])
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", values["KAFKA_SENSOR_PASSWORD"])
    settings = Settings()
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert not re.search(r"[,\]\"']", values["KAFKA_SENSOR_PASSWORD"])


# --- Ports --------------------------------------------------------------------------------------


def test_published_ports(services: dict[str, dict[str, Any]]) -> None:
    actual = {name: published(service) for name, service in services.items()}
    for name, ports in PUBLISHED.items():
        assert actual[name] == ports, name
    unlisted = {name: ports for name, ports in actual.items() if ports and name not in PUBLISHED}
    assert not unlisted, f"publish only what is listed here: {unlisted}"
    host_ports = [port for ports in actual.values() for port in ports]
    assert len(host_ports) == len(set(host_ports)), "a host port is published twice"


def test_containers_serve_the_ports_compose_uses(services: dict[str, dict[str, Any]]) -> None:
    for name in METRICS_PORT_SERVICES:
        service = services[name]
        dockerfile = dockerfile_of(service)
        assert dockerfile is not None
        image_port = dockerfiles.env_of(dockerfile).get("DRIFTLINE_METRICS_PORT")
        port = environment(service).get("DRIFTLINE_METRICS_PORT", image_port)
        assert image_port == port == str(METRICS_PORT), name
        assert METRICS_PORT in dockerfiles.exposed_ports(dockerfile), name
        # /metrics, or /livez and /readyz served beside it
        assert f"127.0.0.1:{METRICS_PORT}/" in str(service["healthcheck"]["test"]), name
    serving = services["serving"]
    dockerfile = dockerfile_of(serving)
    assert dockerfile is not None
    assert SERVING_PORT in dockerfiles.exposed_ports(dockerfile)
    command = dict(dockerfiles.final_stage(dockerfile))["CMD"]
    assert f'"--port", "{SERVING_PORT}"' in command
    assert f":{SERVING_PORT}/readyz" in str(serving["healthcheck"]["test"])


def served_ports(services: dict[str, dict[str, Any]]) -> dict[str, set[int]]:
    """The ports each container listens on, as far as the files say."""
    ports: dict[str, set[int]] = {}
    for name, service in services.items():
        dockerfile = dockerfile_of(service)
        listening = set(published(service).values())
        if dockerfile is not None:
            listening |= dockerfiles.exposed_ports(dockerfile)
        ports[name] = listening
    return ports


def prometheus_targets() -> list[tuple[str, str, str]]:
    """(job, host, port) of every static target and Alertmanager in prometheus.yml."""
    if not PROMETHEUS_CONFIG.exists():
        pytest.skip("deploy/prometheus/prometheus.yml not there yet")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = []
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                host, _, port = target.rpartition(":")
                targets.append((job["job_name"], host, port))
    for manager in config.get("alerting", {}).get("alertmanagers", []):
        for static in manager.get("static_configs", []):
            for target in static.get("targets", []):
                host, _, port = target.rpartition(":")
                targets.append(("alertmanager", host, port))
    return targets


def test_prometheus_scrapes_services_on_the_ports_they_serve(
    services: dict[str, dict[str, Any]],
) -> None:
    targets = prometheus_targets()
    listening = served_ports(services)
    for job, host, port in targets:
        if host in ("localhost", "127.0.0.1"):
            continue  # Prometheus itself
        assert host in services, f"job {job}: {host} is no compose service"
        assert int(port) in listening[host], f"job {job}: {host} does not listen on {port}"
        if host in METRICS_PORT_SERVICES:
            assert int(port) == METRICS_PORT, f"job {job}"
    scraped = {host for _, host, _ in targets}
    assert scraped >= DRIFTLINE_SERVICES, f"not scraped: {sorted(DRIFTLINE_SERVICES - scraped)}"


# --- Health, restarts, order ------------------------------------------------------------------


def test_long_running_services_are_health_checked_and_restarted(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if is_one_shot(service):
            continue
        assert service.get("restart") in RESTARTING, f"{name}: restart policy"
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no health check"


def test_one_shot_services_gate_what_needs_them(services: dict[str, dict[str, Any]]) -> None:
    waited_for = {
        dependency
        for service in services.values()
        for dependency, spec in (service.get("depends_on") or {}).items()
        if spec.get("condition") == "service_completed_successfully"
    }
    one_shots = {name for name, service in services.items() if is_one_shot(service)}
    # kafka-init makes the remote sensors' Kafka user: nothing in compose needs it.
    assert one_shots - {"kafka-init"} == waited_for


def test_dependencies_wait_for_a_condition_the_dependency_can_meet(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name}: depends on unknown {dependency}"
            condition = spec.get("condition")
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), f"{name} -> {dependency}"
            elif condition == "service_completed_successfully":
                assert is_one_shot(services[dependency]), f"{name} -> {dependency}"
            else:
                assert condition == "service_started", f"{name} -> {dependency}: {condition}"


# --- Volumes ----------------------------------------------------------------------------------


def mounts(service: dict[str, Any]) -> list[str]:
    """The source of each volume entry (short syntax, or the long syntax's source)."""
    sources = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            sources.append(str(entry.get("source", "")))
        else:
            sources.append(str(entry).split(":", 1)[0])
    return sources


def test_bind_mounted_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source in mounts(service):
            if source.startswith((".", "/")):
                path = (ROOT / source).resolve()
                assert path.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
                assert path.exists(), f"{name}: {source} does not exist"


def test_named_volumes_are_declared_and_used(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    used = {
        source
        for service in services.values()
        for source in mounts(service)
        if source and not source.startswith((".", "/"))
    }
    declared = set(compose.get("volumes") or {})
    assert used == declared


def test_the_labeler_reaches_label_studio_with_the_token_it_makes(
    services: dict[str, dict[str, Any]],
) -> None:
    """The labeler talks to the label-studio service once it is healthy, with the API token
    Label Studio makes at first start (one .env variable for both), and gives Label Studio a
    webhook address on its own webhook port."""
    labeler, studio = environment(services["labeler"]), environment(services["label-studio"])
    host, _, port = labeler["DRIFTLINE_LABEL_STUDIO_URL"].removeprefix("http://").partition(":")
    assert host == "label-studio" and port == "8080"
    health = services["label-studio"]["healthcheck"]["test"]
    assert f"127.0.0.1:{port}/" in " ".join(health)
    assert labeler["DRIFTLINE_LABEL_STUDIO_TOKEN"] == studio["LABEL_STUDIO_USER_TOKEN"]
    assert labeler["DRIFTLINE_LABEL_STUDIO_TOKEN"].startswith("${LABEL_STUDIO_TOKEN")
    hook = labeler["DRIFTLINE_LABELS_WEBHOOK_URL"].removeprefix("http://")
    assert hook.split("/")[0] == f"labeler:{labeler['DRIFTLINE_LABELS_WEBHOOK_PORT']}"
    needs = services["labeler"]["depends_on"]["label-studio"]
    assert needs == {"condition": "service_healthy"}
    assert "label-studio-data:/label-studio/data" in services["label-studio"]["volumes"]
