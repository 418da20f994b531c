"""StartConfig: begin a run from another run's weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._base import Verifiable, family_base, field, register_config

if TYPE_CHECKING:
    from ..start import Start


@family_base
@attrs.define
class StartConfig(Verifiable):
    """Begin from `run`'s weights chosen by `criterion`: a criterion name, "latest", or digits."""

    run: str = field("The run whose weights to start from.")
    criterion: str = field(
        "How to pick the iteration: a criterion name (best by it), 'latest', or an iteration number."
    )

    def verify(self) -> tuple[bool, str]:
        """`criterion` must be "latest", an iteration number as digits, or a valid criterion name."""
        from ..criteria import start_rule

        try:
            start_rule(self.criterion)
        except (TypeError, ValueError) as exc:
            return False, f"start from run {self.run!r}: {exc}"
        return True, "ok"

    @property
    def start_type(self) -> type[Start]:
        """The class that applies this start: `Start`."""
        from ..start import Start

        return Start


@register_config
@attrs.define
class CosemStartConfig(StartConfig):
    """Begin from a pretrained COSEM model: `run` names the model, `criterion` its checkpoint."""

    @property
    def start_type(self) -> type[Start]:
        """COSEM models come from DaCapo's `cellmap_models`; dacapo_store does not load them."""
        raise NotImplementedError(
            f"CosemStartConfig({self.run!r}, {self.criterion!r}): pretrained COSEM models are "
            "loaded by DaCapo (cellmap_models), not by dacapo_store"
        )
