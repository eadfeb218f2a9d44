"""Sensor history in Redis, shared by every serving replica (DRIFTLINE_SERVING_HISTORY_URL).

Each sensor is one sorted set. A member is one reading, its ts (int64 ns, big-endian) and its
values (float64); its score is the ts in microseconds, exact in a double until 2255 (readings
come from datetimes, whose resolution is the microsecond). A Lua script merges a sensor's new
readings atomically (a reading of a ts already held replaces it), returns all of its readings in
ts order and trims it to the newest ``held``: replicas that score readings of one sensor at the
same time both land in its history. One batch is one round trip: a script call per sensor, in a
pipeline. A sensor unseen for ``ttl_seconds`` is forgotten.

Keys are ``<prefix><digest of the measurements>:<sensor_id>``: a profile with other
measurements does not read a history of another shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from driftline.serving.history import HistoryUnavailable, Readings

# KEYS: one per sensor. ARGV: held, ttl, then per sensor its count n and n (score, member).
# Returns per sensor its readings in ts order (before trimming), concatenated: members have one
# size, and one string per sensor is far cheaper to read than one per reading.
MERGE = """
local held = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local at = 3
local out = {}
for k, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  for i = at + 1, at + 2 * n, 2 do
    redis.call('ZREMRANGEBYSCORE', key, ARGV[i], ARGV[i])
    redis.call('ZADD', key, ARGV[i], ARGV[i + 1])
  end
  at = at + 1 + 2 * n
  local all = redis.call('ZRANGE', key, 0, -1)
  if #all > held then
    redis.call('ZREMRANGEBYRANK', key, 0, #all - held - 1)
  end
  if ttl > 0 then
    redis.call('EXPIRE', key, ttl)
  end
  out[k] = table.concat(all)
end
return out
"""


class RedisHistory:
    def __init__(
        self,
        url: str,
        features: list[str],
        held: int,
        *,
        ttl_seconds: int = 86_400,
        timeout_seconds: float = 2.0,
        prefix: str = "driftline:history:v1:",
    ) -> None:
        import redis

        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
        )
        self.held = held
        self.ttl_seconds = ttl_seconds
        shape = hashlib.sha256("\0".join(features).encode()).hexdigest()[:12]
        self.prefix = f"{prefix}{shape}:".encode()
        self.row = np.dtype([("ts", ">i8"), ("values", "<f8", (len(features),))])
        self._sha = hashlib.sha1(MERGE.encode(), usedforsecurity=False).hexdigest()

    def key(self, sensor: str) -> bytes:
        return self.prefix + sensor.encode("utf-8", "surrogatepass")

    def merge(self, new: Mapping[str, Readings]) -> dict[str, Readings]:
        import redis

        keys = [self.key(sensor) for sensor in new]
        args: list[Any] = [self.held, self.ttl_seconds]
        for ts, values in new.values():
            args += self._args(ts, values)
        try:
            try:
                replies = self.client.evalsha(self._sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:  # a new or restarted server: load it once
                self.client.script_load(MERGE)
                replies = self.client.evalsha(self._sha, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise HistoryUnavailable(f"Redis history: {exc}") from exc
        return {sensor: self._decode(reply) for sensor, reply in zip(new, replies, strict=True)}

    def _args(self, ts: np.ndarray, values: np.ndarray) -> list[Any]:
        rows = np.empty(len(ts), dtype=self.row)
        rows["ts"] = ts
        rows["values"] = values
        members = rows.tobytes()
        size = self.row.itemsize
        args: list[Any] = [len(ts)]
        for i, t in enumerate(ts.tolist()):
            args += [t // 1000, members[i * size : (i + 1) * size]]
        return args

    def _decode(self, members: bytes) -> Readings:
        rows = np.frombuffer(members, dtype=self.row)
        return rows["ts"].astype("int64"), rows["values"].astype("float64")

    def ping(self) -> bool:
        import redis

        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def sensors(self) -> int:
        return sum(1 for _ in self.client.scan_iter(match=self.prefix + b"*", count=1000))
