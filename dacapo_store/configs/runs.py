"""RunConfig: the experiment that ties a task, architecture, trainer and data split together."""

from __future__ import annotations

import attrs

from ._base import field
from .architectures import ArchitectureConfig
from .datasplits import DataSplitConfig
from .starts import StartConfig
from .tasks import TaskConfig
from .trainers import TrainerConfig


@attrs.define
class RunConfig:
    """One training run. Not a family: its document has no `__type__` at top level."""

    task_config: TaskConfig = field("The task to train for.")
    architecture_config: ArchitectureConfig = field("The network to train.")
    trainer_config: TrainerConfig = field("How to train it.")
    datasplit_config: DataSplitConfig = field("The data to train and validate on.")
    name: str = field("A unique name for this run.")
    repetition: int = field("The repetition number of this run.")
    num_iterations: int = field("The number of training iterations.")
    validation_interval: int = field("Validate every so many iterations.", default=1000)
    start_config: StartConfig | None = field("Weights to start from, if any.", default=None)

    def verify(self) -> tuple[bool, str]:
        """Check the parts, the iteration counts, and that the run does not start from itself."""
        for part in (self.task_config, self.architecture_config, self.trainer_config, self.datasplit_config):
            ok, why = part.verify()
            if not ok:
                return False, why
        if self.num_iterations <= 0:
            return False, f"run {self.name}: num_iterations must be > 0, got {self.num_iterations}"
        if self.validation_interval <= 0:
            return False, f"run {self.name}: validation_interval must be > 0, got {self.validation_interval}"
        if self.start_config is not None and self.start_config.run == self.name:
            return False, f"run {self.name}: start_config names the run itself"
        if self.start_config is not None:
            ok, why = self.start_config.verify()
            if not ok:
                return False, f"run {self.name}: {why}"
        return True, "ok"
