"""RunConfig: the experiment that ties a task, architecture, trainer and data split together."""

from __future__ import annotations

import attrs

from ._base import ONLY_MAIN, field
from .architectures import ArchitectureConfig
from .datasplits import DataSplitConfig
from .starts import StartConfig
from .tasks import TaskConfig
from .trainers import TrainerConfig

#: Required and never None in DaCapo 0.3.5's documents; DaCapo main allows None.
REQUIRED_035 = ("0.3.5",)


@attrs.define
class RunConfig:
    """One training run. Not a family: its document has no `__type__` at top level.

    The union of both dialects: DaCapo main allows None for every part but the architecture,
    and holds `batch_size`, `num_workers`, `snapshot_interval` and `learning_rate` here (DaCapo
    0.3.5 keeps batch size, learning rate and snapshots in the trainer).
    """

    task_config: TaskConfig | None = field("The task to train for.", required_in=REQUIRED_035)
    architecture_config: ArchitectureConfig = field("The network to train.")
    trainer_config: TrainerConfig | None = field("How to train it.", required_in=REQUIRED_035)
    datasplit_config: DataSplitConfig | None = field(
        "The data to train and validate on.", required_in=REQUIRED_035
    )
    name: str | None = field("A unique name for this run.", required_in=REQUIRED_035)
    repetition: int | None = field("The repetition number of this run.", required_in=REQUIRED_035)
    num_iterations: int | None = field("The number of training iterations.", required_in=REQUIRED_035)
    validation_interval: int = field("Validate every so many iterations.", default=1000)
    start_config: StartConfig | None = field("Weights to start from, if any.", default=None)
    batch_size: int = field(
        "The number of samples in a training batch (DaCapo main; 0.3.5: the trainer's).",
        default=1,
        keys=ONLY_MAIN,
    )
    num_workers: int = field("Worker processes of the data loader (DaCapo main).", default=0, keys=ONLY_MAIN)
    snapshot_interval: int | None = field(
        "Save a snapshot every so many iterations (DaCapo main; 0.3.5: the trainer's).",
        default=None,
        keys=ONLY_MAIN,
    )
    learning_rate: float = field(
        "The learning rate of the optimizer (DaCapo main; 0.3.5: the trainer's).",
        default=1e-3,
        keys=ONLY_MAIN,
    )

    #: DaCapo main writes a run's keys in its own order (its attrs order), architecture first.
    __dacapo_key_order__ = {
        "main": (
            "architecture_config",
            "task_config",
            "trainer_config",
            "datasplit_config",
            "name",
            "repetition",
            "num_iterations",
            "batch_size",
            "num_workers",
            "validation_interval",
            "snapshot_interval",
            "start_config",
            "learning_rate",
        )
    }

    def verify(self) -> tuple[bool, str]:
        """Check the parts, the iteration counts, and that the run does not start from itself."""
        for part in (self.task_config, self.architecture_config, self.trainer_config, self.datasplit_config):
            if part is None:  # DaCapo main allows a run without it
                continue
            ok, why = part.verify()
            if not ok:
                return False, why
        if self.num_iterations is not None and self.num_iterations <= 0:
            return False, f"run {self.name}: num_iterations must be > 0, got {self.num_iterations}"
        if self.validation_interval <= 0:
            return False, f"run {self.name}: validation_interval must be > 0, got {self.validation_interval}"
        if self.batch_size <= 0:
            return False, f"run {self.name}: batch_size must be > 0, got {self.batch_size}"
        if self.learning_rate <= 0:
            return False, f"run {self.name}: learning_rate must be > 0, got {self.learning_rate}"
        if self.start_config is not None and self.start_config.run == self.name:
            return False, f"run {self.name}: start_config names the run itself"
        if self.start_config is not None:
            ok, why = self.start_config.verify()
            if not ok:
                return False, f"run {self.name}: {why}"
        return True, "ok"
