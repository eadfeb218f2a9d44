"""Label Studio's HTTP API, the few calls Driftline makes (legacy token auth).

Every failure to reach Label Studio or an answer that is not 2xx raises LabelStudioUnavailable;
the caller logs it, counts it and tries again on its next pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from driftline.core.errors import DriftlineError


class LabelStudioUnavailable(DriftlineError):
    """Label Studio could not be reached or refused a request."""


class LabelStudioClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Token {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(f"{method} {path}: {exc}") from exc
        if response.status_code >= 300:
            raise LabelStudioUnavailable(
                f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else None

    def ensure_project(self, title: str, label_config: str) -> int:
        """The project of this title, made (or its interface brought up to date) if needed."""
        for project in self._paged("/api/projects", {}):
            if project.get("title") == title:
                if project.get("label_config") != label_config:
                    self._call(
                        "PATCH",
                        f"/api/projects/{project['id']}",
                        json={"label_config": label_config},
                    )
                return int(project["id"])
        made = self._call(
            "POST", "/api/projects", json={"title": title, "label_config": label_config}
        )
        return int(made["id"])

    def ensure_webhook(self, project_id: int, url: str) -> None:
        """An annotation webhook to ``url`` for the project (one, however often this runs)."""
        hooks = self._call("GET", "/api/webhooks", params={"project": project_id}) or []
        if any(h.get("url") == url for h in hooks):
            return
        self._call(
            "POST",
            "/api/webhooks",
            json={
                "project": project_id,
                "url": url,
                "send_payload": True,
                "send_for_all_actions": False,
                "actions": ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"],
                "is_active": True,
            },
        )

    def task_ids_by_key(self, project_id: int) -> dict[str, int]:
        """Driftline's task key -> Label Studio task id, for the project's tasks."""
        out: dict[str, int] = {}
        for task in self.tasks(project_id):
            key = (task.get("data") or {}).get("task_key")
            if isinstance(key, str):
                out.setdefault(key, int(task["id"]))
        return out

    def import_tasks(self, project_id: int, data: list[dict[str, Any]]) -> None:
        self._call("POST", f"/api/projects/{project_id}/import", json=[{"data": d} for d in data])

    def tasks(self, project_id: int) -> Iterator[dict[str, Any]]:
        """Every task of the project, with its annotations."""
        params = {"project": project_id, "fields": "all"}
        yield from self._paged("/api/tasks", params, key="tasks")

    def annotations(self, task_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/tasks/{task_id}/annotations") or [])

    def create_annotation(self, task_id: int, result: list[dict[str, Any]]) -> dict[str, Any]:
        made: dict[str, Any] = self._call(
            "POST", f"/api/tasks/{task_id}/annotations", json={"result": result}
        )
        return made

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> None:
        self._call("PATCH", f"/api/annotations/{annotation_id}", json={"result": result})

    def _paged(
        self, path: str, params: dict[str, Any], key: str = "results", page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            body = self._call("GET", path, params={**params, "page": page, "page_size": page_size})
            items = body if isinstance(body, list) else (body or {}).get(key, [])
            yield from items
            if isinstance(body, list) or len(items) < page_size:
                return
            page += 1
