"""Finds and loads the deployables under ``services/`` (they are not importable packages:
each directory is one service, its entry point ``service.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from driftline.core.errors import ConfigurationError

SERVICE_NAMES: tuple[str, ...] = ("ingest", "validator", "drift", "retrain-trigger")
# Services that feed the platform from outside Kafka; 'driftline up' starts them when configured.
GATEWAY_NAMES: tuple[str, ...] = ("mqtt-gateway",)
# Started only when what they need is there (the labeler: a Label Studio to talk to).
OPTIONAL_SERVICE_NAMES: tuple[str, ...] = ("labeler",)


def services_dir() -> Path:
    # src/driftline/platform/services.py -> the checkout's top level holds services/.
    root = Path(__file__).resolve().parents[3]
    path = root / "services"
    if not path.is_dir():
        raise ConfigurationError(f"no services/ directory next to the package (looked in {root})")
    return path


def service_script(name: str) -> Path:
    known = (*SERVICE_NAMES, *GATEWAY_NAMES, *OPTIONAL_SERVICE_NAMES)
    if name not in known:
        raise ConfigurationError(f"unknown service {name!r}; one of {', '.join(known)}")
    return services_dir() / name / "service.py"


def load_service(name: str) -> ModuleType:
    path = service_script(name)
    module_name = f"driftline_service_{name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot load service {name!r} from {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would: dataclasses look their module up there.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
