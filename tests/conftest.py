"""Fixtures: the real broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is set), real MariaDB
and SQLite, and settings that give each test its own topics and consumer groups."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from driftline.core.settings import Settings
from driftline.platform.broker import EmbeddedBroker
from driftline.platform.mlflow_store import copy_empty_store

pytest_plugins = ["tests.cpu_report"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SKAB = SHARED / "data" / "skab" / "data"
MARIADB_URL = os.environ.get("DRIFTLINE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")


def _restored_environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


# Steps run in-process set MLFLOW_TRACKING_URI and BENTOML_HOME (MLflow and BentoML read them
# from the environment), in tests and in module-scoped fixtures: no test may see another's.
_restore_after_test = pytest.fixture(autouse=True)(_restored_environment)
_restore_after_module = pytest.fixture(autouse=True, scope="module")(_restored_environment)


@pytest.fixture(scope="session")
def skab_dir() -> Path:
    if not SKAB.is_dir():
        pytest.fail(f"SKAB data not found at {SKAB} (expected ../shared beside the project)")
    return SKAB


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def label_studio_installed() -> Path:
    """Label Studio's executable, its install done. `driftline up` starts Label Studio when it
    is installed, so its tests take this: every `up` then starts the same processes, though
    make test installs Label Studio beside the first tests (scripts/test.sh)."""
    from tests.label_studio import executable  # waits for an install under way

    return executable()


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    engine = sa.create_engine(f"{MARIADB_URL}/test")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"MariaDB is not reachable at {MARIADB_URL}: {exc}")
    finally:
        engine.dispose()
    return MARIADB_URL


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind: a SQLite file, or a MariaDB database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'raw.db'}"
        return
    yield from _fresh_mariadb(request.getfixturevalue("mariadb_server"))


@pytest.fixture
def mariadb_url(mariadb_server: str) -> Iterator[str]:
    """A fresh, empty MariaDB database."""
    yield from _fresh_mariadb(mariadb_server)


def _fresh_mariadb(server: str) -> Iterator[str]:
    name = f"driftline_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{server}/test")
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield f"{server}/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def make_settings(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings with this test's own topic prefix, consumer groups and data directory."""
    run = uuid.uuid4().hex[:10]

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap_servers": kafka_bootstrap,
            "topic_prefix": f"t{run}",
            "consumer_group_prefix": f"g{run}",
            "data_dir": tmp_path / "data",
            "topic_partitions": 2,
            "batch_max_wait_ms": 100,
            "kafka_session_timeout_ms": 2000,
            "retrain_launcher": "record",  # tests of the pipeline ask for it explicitly
            # This test's own stores, whatever the environment says.
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}",
            "bentoml_home": tmp_path / "data" / "bentoml",
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        store = tmp_path / "data" / "mlflow.db"
        if settings.mlflow_tracking_uri == f"sqlite:///{store}" and not store.exists():
            copy_empty_store(store)  # not migrated in each test: seconds of CPU every time
        return settings

    return make


# The modules that take longest (the CPU report at the end of every run names them), longest
# first. Dealt out first, they run beside each other and beside the quick modules; dealt out
# late, one of them ran alone at the end of the run while the other workers sat idle. Those
# that need Label Studio come after the first four: make test installs it beside the first
# tests, and a worker dealt one of them first sat waiting for the install.
LONGEST_FIRST = (
    "tests/e2e/test_up_demo.py",
    "tests/integration/test_pipeline.py",
    "tests/integration/test_crash_kill_points.py",
    "tests/integration/test_trigger_launches_pipeline.py",
    "tests/e2e/test_stop_signals.py",
    "tests/integration/test_labels.py",
    "tests/e2e/test_up_demo_stops.py",
    "tests/integration/test_preprocess.py",
    "tests/integration/test_mqtt_gateway.py",
    "tests/integration/test_outages.py",
    "tests/integration/test_serving_fuzz.py",
    "tests/integration/test_serving_scaled_out.py",
    "tests/integration/test_model_steps.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On pytest-xdist workers (scripts/test.sh, --dist loadfile --no-loadscope-reorder: each
    module on one worker, dealt out in this order), the longest work goes out first: the
    modules of LONGEST_FIRST, the soak, the other e2e and integration modules, then the quick
    unit tests fill the gaps at the end."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item: pytest.Item) -> tuple[int, int]:
        module = item.nodeid.split("::")[0]
        if module in LONGEST_FIRST:
            return 0, LONGEST_FIRST.index(module)
        if item.get_closest_marker("soak"):
            return 1, 0
        return (2 if item.nodeid.startswith(("tests/e2e/", "tests/integration/")) else 3), 0

    items.sort(key=rank)  # stable: every worker collects the same order
