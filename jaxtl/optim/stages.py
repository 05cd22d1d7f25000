"""Which backbone stage a variable belongs to.

Fine-tuning strategies (freeze the first K stages, gradual unfreezing, per-stage learning rates)
act on whole stages. Each model family declares its architectures' stages, from the input up
(`jaxtl.models.stages_of`; see `jaxtl.models.family.Stage`); the classifier head is not a stage:
it is always trained. `python -m jaxtl.models --stages ARCH` prints them.
"""

from __future__ import annotations

from jaxtl.models import Stage


def stage_of(stages: tuple[Stage, ...], path: str) -> str:
    """The name of the one stage that `path` (inside the backbone, '/'-joined) belongs to."""
    path = path if path.endswith("/") else path + "/"
    names = [stage.name for stage in stages if stage.matches(path)]
    if len(names) != 1:
        raise ValueError(f"backbone variable {path!r} belongs to {len(names)} stages "
                         f"({', '.join(names) or 'none'}); fix the stages in its family's "
                         f"module, jaxtl/models/<family>.py")
    return names[0]
