"""``driftline baseline``: set a sensor's baseline from the raw store, show the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.cli.common import time_option
from driftline.core.settings import Settings
from driftline.core.settings_errors import settings_or_exit

baseline_app = typer.Typer(help="Per-sensor baselines: each sensor's own normal.")


def baseline_dir(settings: Settings) -> Path:
    return settings.data_dir / "baselines"


@baseline_app.command("set")
def baseline_set(
    sensor: Annotated[str, typer.Argument(help="Sensor id.")],
    start_text: Annotated[
        str | None, typer.Option("--from", help="Start (ISO time) of a period known to be normal.")
    ] = None,
    end_text: Annotated[str | None, typer.Option("--to", help="End (ISO time) of it.")] = None,
    from_labels: Annotated[
        bool,
        typer.Option(
            "--from-labels",
            help="Extend the sensor's baseline (or make one) with its readings operators "
            "labelled normal in Label Studio (the labels table), outside the spans it covers.",
        ),
    ] = False,
    max_added: Annotated[
        int | None,
        typer.Option(
            "--max-added",
            min=1,
            help="With --from-labels: add at most this many readings, evenly spread over time "
            "(default DRIFTLINE_BASELINE_READINGS).",
        ),
    ] = None,
) -> None:
    """Learn SENSOR's baseline from its valid readings in the raw store: the period given, or
    its first DRIFTLINE_BASELINE_READINGS readings; or extend it with its labelled normal
    readings (--from-labels)."""
    from driftline.anomaly.baseline import BaselineError, from_first_readings, from_period
    from driftline.anomaly.baseline_store import BaselineStore
    from driftline.core.profile import load_profile
    from driftline.training.dataset import load_readings

    settings = settings_or_exit()
    start, end = time_option(start_text), time_option(end_text)
    if (start is None) != (end is None):
        raise typer.BadParameter("give both --from and --to, or neither")
    if max_added is not None and not from_labels:
        raise typer.BadParameter("--max-added goes with --from-labels")
    if from_labels:
        if start is not None:
            raise typer.BadParameter("--from-labels takes no --from/--to: the labels say when")
        _extend_from_labels(settings, sensor, max_added or settings.baseline_readings)
        return
    measurements = load_profile(settings.profile_path).features
    frame, _ = load_readings(settings, start, end, [sensor])
    try:
        if start is not None and end is not None:
            baseline = from_period(frame, sensor, measurements, start, end)
        else:
            found = from_first_readings(frame, sensor, measurements, settings.baseline_readings)
            if found is None:
                typer.echo(
                    f"{sensor}: baseline pending ({len(frame)} of "
                    f"{settings.baseline_readings} valid readings)"
                )
                raise typer.Exit(1)
            baseline = found
    except BaselineError as exc:
        typer.echo(f"{sensor}: {exc}", err=True)
        raise typer.Exit(2) from exc
    path = BaselineStore(baseline_dir(settings)).save(baseline)
    typer.echo(f"{sensor}: baseline {baseline.version} of {baseline.count} readings -> {path}")


@baseline_app.command("show")
def baseline_show(
    sensor: Annotated[str | None, typer.Argument(help="One sensor (default: all).")] = None,
) -> None:
    """Each sensor's baseline: version, source, period, readings and per-measurement mean/std."""
    from driftline.anomaly.baseline_store import BaselineStore

    store = BaselineStore(baseline_dir(settings_or_exit()))
    baselines = store.all() if sensor is None else [b for b in [store.get(sensor)] if b]
    if sensor is not None and not baselines:
        typer.echo(f"{sensor}: baseline pending (none set)")
        raise typer.Exit(1)
    for b in baselines:
        typer.echo(
            f"{b.sensor_id}  version {b.version}  {b.source}  {b.count} readings  "
            f"{b.start} .. {b.end}"
        )
        for m, mean, std in zip(b.measurements, b.mean, b.std, strict=True):
            typer.echo(f"    {m:<22} mean {mean:>12.5g}  std {std:>10.4g}")


def _extend_from_labels(settings: Settings, sensor: str, limit: int) -> None:
    from driftline.anomaly.baseline import BaselineError, extend
    from driftline.anomaly.baseline_store import BaselineStore
    from driftline.core.profile import load_profile
    from driftline.core.records import as_utc
    from driftline.labels.baseline import labelled_normal, normal_periods, normal_runs
    from driftline.labels.training_join import label_spans
    from driftline.training.dataset import load_readings, read_only_connection

    with read_only_connection(settings.resolved_readonly_url) as conn:
        spans = label_spans(conn, None, None, [sensor])
    normal = normal_periods(spans)
    if normal.empty:
        typer.echo(f"{sensor}: no period labelled normal; baseline unchanged")
        raise typer.Exit(1)
    first, last = as_utc(normal["start_ts"].min()), as_utc(normal["end_ts"].max())
    frame, _ = load_readings(settings, first, last, [sensor])
    readings = labelled_normal(frame, spans)
    store = BaselineStore(baseline_dir(settings))
    measurements = load_profile(settings.profile_path).features
    runs = normal_runs(frame, spans)
    try:
        baseline, added = extend(
            store.get(sensor), readings, sensor, measurements, limit, periods=runs
        )
    except BaselineError as exc:
        typer.echo(f"{sensor}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if added == 0:
        typer.echo(f"{sensor}: no labelled normal reading outside its baseline; unchanged")
        return
    path = store.save(baseline)
    typer.echo(
        f"{sensor}: baseline {baseline.version} of {baseline.count} readings "
        f"({added} of {len(readings)} labelled normal added, {len(normal)} "
        f"period{'' if len(normal) == 1 else 's'}) -> {path}"
    )
