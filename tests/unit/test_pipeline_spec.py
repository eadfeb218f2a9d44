"""The committed pipeline spec is what the code compiles to."""

from __future__ import annotations

from pathlib import Path

import yaml

from driftline.core.settings import Settings, env_name
from driftline.pipelines.retrain import COMPILED, SECRET_ENV, SECRET_NAME, compile_pipeline
from driftline.training.local_run import STEPS, PipelineParams


def test_compiled_pipeline_is_up_to_date(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "retrain.yaml")
    assert COMPILED.read_text() == fresh.read_text(), (
        "deploy/kfp/retrain.yaml is out of date: run 'driftline pipeline compile'"
    )


def test_every_step_is_chosen_by_a_parameter_and_reads_secrets() -> None:
    spec = yaml.safe_load(COMPILED.read_text().split("\n---\n")[0])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {f"run_{s}" for s in STEPS} <= set(params)
    conditions = [
        task.get("triggerPolicy", {}).get("condition", "")
        for component in spec["components"].values()
        for task in component.get("dag", {}).get("tasks", {}).values()
    ] + [
        t.get("triggerPolicy", {}).get("condition", "")
        for t in spec["root"]["dag"]["tasks"].values()
    ]
    for step in STEPS:
        assert any(f"run_{step}" in c for c in conditions), step
    platform = COMPILED.read_text().split("\n---\n")[1]
    assert "secretAsEnv" in platform and "driftline-pipeline" in platform


def test_skipping_an_unknown_step_is_refused() -> None:
    try:
        PipelineParams(tag="t", skip=frozenset({"deploy"})).arguments()
    except ValueError as exc:
        assert "deploy" in str(exc)
    else:
        raise AssertionError("an unknown step was accepted")


def _documents() -> tuple[dict, dict]:  # type: ignore[type-arg]
    pipeline, platform = COMPILED.read_text().split("\n---\n")
    return yaml.safe_load(pipeline), yaml.safe_load(platform)


def test_every_step_has_cpu_and_memory_requests_and_limits() -> None:
    spec, _ = _documents()
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) >= 9
    for name, executor in executors.items():
        resources = executor["container"].get("resources", {})
        for key in ("resourceCpuRequest", "resourceCpuLimit"):
            assert resources.get(key), f"{name}: no {key}"
        for key in ("resourceMemoryRequest", "resourceMemoryLimit"):
            assert resources.get(key), f"{name}: no {key}"
    tune = executors["exec-tune-step"]["container"]["resources"]
    assert float(tune["cpuRequest"]) >= 1, "Ray Tune runs trials in parallel"


def test_every_step_requires_the_pipeline_secret_with_kafka_sasl() -> None:
    """Optional, a missing Secret let steps fall back to SQLite and succeed on nothing; without
    the SASL settings the promote step cannot publish to the cluster's SCRAM-only Kafka."""
    spec, platform = _documents()
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(spec["deploymentSpec"]["executors"])
    sasl = {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME"}
    sasl |= {"KAFKA_SASL_PASSWORD", "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"}
    for name, executor in executors.items():
        (secret,) = executor["secretAsEnv"]
        assert secret["secretName"] == SECRET_NAME
        assert secret.get("optional") is False, f"{name}: the pipeline Secret is optional"
        env = {item["envVar"] for item in secret["keyToEnv"]}
        assert sasl <= env, f"{name}: lacks {sorted(sasl - env)}"
    settings_env = {env_name(field) for field in Settings.model_fields}
    assert set(SECRET_ENV.values()) - settings_env <= {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
    }


def test_no_step_installs_kfp_at_its_start() -> None:
    """The image and the local runner's environment hold the locked kfp; a pip install of it at
    each step's start cost about 0.8 s per local step (bench/pipeline_step_start.py)."""
    spec, _ = _documents()
    for name, executor in spec["deploymentSpec"]["executors"].items():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command, f"{name} installs packages at its start"
        assert "kfp.dsl.executor_main" in command, f"{name} does not run KFP's executor"
