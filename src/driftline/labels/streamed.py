"""The production model's predictions of the readings that streamed past, served or not.

Serving publishes a prediction only for a reading a client sent it. The labeler also reads the
valid-readings topic and scores each reading with the champion it holds (a
``driftline.serving.champion.ChampionWatcher`` of its own: the registry's champion, swapped
when a promotion arrives), through serving's own scoring path
(``ServingPath.score_valid``), so a streamed prediction is the one serving would have given.
Its history of each sensor's recent readings is its own: the stream, whole and in order.
The predictions are stored as ``streamed`` (``driftline.labels.scoring``): a reading that was
also served keeps its served prediction, whichever arrives first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from driftline.core import metrics
from driftline.core.profile import Profile, load_profile
from driftline.core.records import Prediction, ValidReading
from driftline.core.settings import Settings
from driftline.core.valid_topic import WireValidReading
from driftline.serving.path import PROBABILITY, Model, ServingPath

if TYPE_CHECKING:
    from driftline.serving.champion import ChampionWatcher


class StreamedScorer:
    def __init__(
        self, profile: Profile, settings: Settings, model: Callable[[], Model | None]
    ) -> None:
        self.path = ServingPath(
            profile,
            feature_window=settings.feature_window,
            threshold=settings.serving_threshold,
            max_message_bytes=settings.max_message_bytes,
            model=model,
        )

    def predictions(self, readings: Sequence[ValidReading | WireValidReading]) -> list[Prediction]:
        """The champion's predictions of ``readings`` that have a score (a sensor whose
        baseline is pending has none); none while no champion is loaded (counted)."""
        if not readings:
            return []
        answers = self.path.score_valid(readings)
        if answers is None:
            metrics.streamed_readings.labels("no_model").inc(len(readings))
            return []
        scored = [Prediction.model_validate(a) for a in answers if a[PROBABILITY] is not None]
        metrics.streamed_readings.labels("scored").inc(len(scored))
        metrics.streamed_readings.labels("baseline_pending").inc(len(answers) - len(scored))
        return scored


def watched_scorer(settings: Settings) -> tuple[StreamedScorer, ChampionWatcher]:
    """A scorer on the champion a watcher of its own keeps; the watcher is started (blocking:
    it loads the champion, or logs why not and keeps trying) and is the caller's to stop.
    ImportError when the model's packages are not installed."""
    import importlib.util

    from driftline.serving.champion import ChampionWatcher

    missing = [m for m in ("mlflow", "bentoml") if importlib.util.find_spec(m) is None]
    if missing:  # the watcher would only log, forever, that it cannot load a model
        raise ImportError(f"{', '.join(missing)} not installed")
    watcher = ChampionWatcher(settings)
    watcher.start()
    profile = load_profile(settings.profile_path)
    return StreamedScorer(profile, settings, lambda: watcher.current), watcher
