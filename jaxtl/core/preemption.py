"""When a run must stop and save: SIGTERM (preemption) and the periodic checkpoint interval.

Cloud TPU preemption, spot VMs and SLURM send SIGTERM some time before they kill a process. On
one host, a handler notes the signal and the loop saves at the next step boundary. On several
hosts, JAX's preemption service (started by `jax.distributed.initialize`) catches the signal on
whichever host gets it and agrees with the others on a step
(`multihost_utils.reached_preemption_sync_point`), so every host saves the same step.

The periodic interval (`train.checkpoint_every_steps`, `train.checkpoint_every_minutes`)
bounds what a kill -9 or a crash can lose, whatever the epoch length. The time interval is
decided by the first host and shared, so every host saves the same step.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Mapping
from types import FrameType

import jax
import numpy as np
from jax.experimental import multihost_utils

PARENT_PID_VARIABLE = "JAXTL_STOP_WITH_PARENT"  # set by the sweep runner: its process id
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def stop_with_parent(environ: Mapping[str, str]) -> None:
    """A run started by a sweep gets SIGTERM (checkpoint, exit) when the sweep's process dies,
    even by kill -9, instead of training on unwatched (Linux; elsewhere the run's lock refuses
    a second writer when the sweep is started again)."""
    parent = environ.get(PARENT_PID_VARIABLE)
    if not parent:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the sweep died before the signal was set up
        os.kill(os.getpid(), signal.SIGTERM)


class StopRequest:
    """Whether the run was asked to stop (SIGTERM), checked at every step boundary."""

    def __init__(self) -> None:
        self.signalled = False
        self._multihost = jax.process_count() > 1
        self._previous = None
        if not self._multihost:  # several hosts: JAX's preemption service has the signal
            self._previous = signal.signal(signal.SIGTERM, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        self.signalled = True

    def reached(self, step: int) -> bool:
        """True at the step every host saves and stops at; call it at every step."""
        if self._multihost:
            return multihost_utils.reached_preemption_sync_point(step)
        return self.signalled

    def release(self) -> None:
        """Gives SIGTERM back to the handler it had before; after a stop was asked for, the
        process (which has saved and is exiting) ignores SIGTERM from then on. Schedulers
        repeat it, and PR_SET_PDEATHSIG sends one each time a thread of the dying parent exits
        (the child passes to the next thread), so a sweep killed with kill -9 sends a run
        several; Python's own handler would go at interpreter exit, SIG_IGN stays."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN if self.signalled else self._previous)
            self._previous = None


class CheckpointInterval:
    """Every `every_steps` steps and/or every `every_minutes` minutes (0: off)."""

    def __init__(self, every_steps: int, every_minutes: float, check_every_steps: int):
        self.every_steps = every_steps
        self.every_seconds = every_minutes * 60.0
        # On several hosts the clock is read at log steps only, where the decision is shared.
        self.check_every_steps = check_every_steps if jax.process_count() > 1 else 1
        self.last_saved = time.monotonic()

    def due(self, step: int) -> bool:
        if self.every_steps and step % self.every_steps == 0:
            return True
        if not self.every_seconds or step % self.check_every_steps:
            return False
        late = time.monotonic() - self.last_saved >= self.every_seconds
        if jax.process_count() > 1:
            late = bool(multihost_utils.broadcast_one_to_all(np.asarray(late)))
        return late

    def saved(self) -> None:
        self.last_saved = time.monotonic()
