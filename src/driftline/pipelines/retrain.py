"""The retraining pipeline: preprocess -> tune -> train -> evaluate -> promote.

Parameters choose the steps (``dsl.If``). A skipped step's ``dsl.Else`` branch hands on what
already exists (a versioned dataset, saved parameters, a registered model), joined with
``dsl.OneOf``, so e.g. evaluate + promote can run on an existing model version alone.
"""

from pathlib import Path

from kfp import compiler, dsl

from driftline.pipelines import components as c

PIPELINE_NAME = "driftline-retrain"
# src/driftline/pipelines/retrain.py -> the checkout's top level holds deploy/kfp/.
COMPILED = Path(__file__).resolve().parents[3] / "deploy" / "kfp" / "retrain.yaml"
# Environment the components read their settings from; on a cluster these come from the
# Kubernetes Secret named here (kfp-kubernetes use_secret_as_env).
SECRET_NAME = "driftline-pipeline"  # nosec B105  # the Secret's name, not a secret
SECRET_ENV = {
    "database-url": "DATABASE_URL",
    "mlflow-tracking-uri": "MLFLOW_TRACKING_URI",
    "kafka-bootstrap-servers": "KAFKA_BOOTSTRAP_SERVERS",
    # The promote step publishes ModelPromoted: the cluster's Kafka asks for a SCRAM login.
    "kafka-security-protocol": "KAFKA_SECURITY_PROTOCOL",
    "kafka-sasl-mechanism": "KAFKA_SASL_MECHANISM",
    "kafka-sasl-username": "KAFKA_SASL_USERNAME",
    "kafka-sasl-password": "KAFKA_SASL_PASSWORD",
    "dvc-remote-url": "DRIFTLINE_DVC_REMOTE_URL",
    "aws-access-key-id": "AWS_ACCESS_KEY_ID",
    "aws-secret-access-key": "AWS_SECRET_ACCESS_KEY",
    "aws-endpoint-url": "AWS_ENDPOINT_URL",
}
# CPU and memory each step's pod requests and is limited to on a cluster, by component name
# (KFP's name for a step function); the steps that only hand on what exists take the default.
STEP_RESOURCES = {
    "preprocess-step": ("500m", "2", "1Gi", "4Gi"),
    "tune-step": ("2", "4", "4Gi", "8Gi"),  # Ray Tune runs trials in parallel
    "train-step": ("1", "2", "2Gi", "4Gi"),
    "evaluate-step": ("500m", "2", "2Gi", "4Gi"),
    "promote-step": ("500m", "1", "1Gi", "2Gi"),
}
DEFAULT_RESOURCES = ("100m", "500m", "256Mi", "512Mi")


def component_image(registry: str, tag: str) -> str:
    """The pipeline image, e.g. harbor.example.com/driftline/driftline-pipeline:1.4.0."""
    name = "driftline-pipeline"
    return f"{registry.rstrip('/')}/{name}:{tag}" if registry else f"{name}:{tag}"


def build_pipeline(image: str, with_secrets: bool = False):
    """The pipeline, its components running in ``image``."""

    def component(func):
        # The image (pipelines/Dockerfile) and the local runner's environment already hold the
        # locked kfp: no pip install of it at each step's start (about 0.8 s per local step;
        # bench/pipeline_step_start.py).
        return dsl.component(base_image=image, install_kfp_package=False)(func)

    preprocess = component(c.preprocess_step)
    existing_dataset = component(c.existing_dataset_step)
    tune = component(c.tune_step)
    skip_tuning = component(c.skip_tuning_step)
    train = component(c.train_step)
    existing_model = component(c.existing_model_step)
    evaluate = component(c.evaluate_step)
    skip_evaluation = component(c.skip_evaluation_step)
    promote = component(c.promote_step)

    def configure(task):
        task.set_caching_options(False)  # steps read live stores: never reuse old results
        if with_secrets:
            from kfp import kubernetes

            # Required: a step without it would fall back to a local SQLite store and succeed
            # on nothing; the pod waits for the Secret instead.
            kubernetes.use_secret_as_env(
                task, secret_name=SECRET_NAME, secret_key_to_env=SECRET_ENV, optional=False
            )
            cpu, cpu_limit, memory, memory_limit = STEP_RESOURCES.get(
                task.component_spec.name, DEFAULT_RESOURCES
            )
            task.set_cpu_request(cpu).set_cpu_limit(cpu_limit)
            task.set_memory_request(memory).set_memory_limit(memory_limit)
        return task

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__.splitlines()[0])
    def retrain(
        tag: str,
        data_start: str = "",
        data_end: str = "",
        sensors: str = "",
        eval_start: str = "",
        eval_end: str = "",
        model_version: str = "",
        tune_count: int = 8,
        run_name: str = "",
        request_id: str = "",
        run_preprocess: bool = True,
        run_tune: bool = True,
        run_train: bool = True,
        run_evaluate: bool = True,
        run_promote: bool = True,
    ) -> str:
        with dsl.If(run_preprocess == True):  # noqa: E712 - a KFP condition, not Python
            prepared = configure(
                preprocess(tag=tag, data_start=data_start, data_end=data_end, sensors=sensors)
            )
        with dsl.Else():
            reused = configure(existing_dataset(tag=tag))
        dataset = dsl.OneOf(prepared.output, reused.output)

        with dsl.If(run_tune == True):  # noqa: E712
            tuned = configure(tune(tag=dataset, count=tune_count))
        with dsl.Else():
            untuned = configure(skip_tuning(tag=dataset))
        params = dsl.OneOf(tuned.output, untuned.output)

        with dsl.If(run_train == True):  # noqa: E712
            trained = configure(train(tag=params, run_name=run_name))
        with dsl.Else():
            given = configure(existing_model(model_version=model_version))
        version = dsl.OneOf(trained.output, given.output)

        with dsl.If(run_evaluate == True):  # noqa: E712
            evaluated = configure(
                evaluate(model_version=version, eval_start=eval_start, eval_end=eval_end)
            )
        with dsl.Else():
            unevaluated = configure(skip_evaluation(model_version=version))
        checked = dsl.OneOf(evaluated.outputs["Output"], unevaluated.output)

        with dsl.If(run_promote == True):  # noqa: E712
            configure(
                promote(
                    model_version=checked,
                    eval_start=eval_start,
                    eval_end=eval_end,
                    request_id=request_id,
                )
            )
        return checked

    return retrain


def compile_pipeline(path: Path = COMPILED, image: str | None = None) -> Path:
    """Write the pipeline spec for a cluster (with Secrets), e.g. deploy/kfp/retrain.yaml."""
    from driftline import __version__

    image = image or component_image("", __version__)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image, with_secrets=True), str(path))
    return path
