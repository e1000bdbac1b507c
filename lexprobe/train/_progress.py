"""Training progress through the library's protocol: a Trainer callback calling ``progress("training", ...)``."""

from __future__ import annotations

import logging
from typing import Any

from lexprobe.progress import ProgressCallback

logger = logging.getLogger(__name__)


def progress_callback(progress: ProgressCallback, stage: str = "training") -> Any:
    """A ``transformers.TrainerCallback`` that reports optimizer steps as ``progress(stage, step, max_steps)``.

    Parameters
    ----------
    progress : callable
        ``progress(stage, done, total)``, called at the start of training (``done`` is the step a resumed run
        starts from) and after every optimizer step, from the main process only.
    stage : str
        The stage name reported.

    Returns
    -------
    transformers.TrainerCallback
        Pass it in ``callbacks`` of :func:`lexprobe.train.train_lora`. It also logs each logged loss at DEBUG.

    Examples
    --------
    The Trainer's state after optimizer step 3 of 10, as it reaches the callback (only the main process reports):

    >>> from transformers import TrainerState
    >>> callback = progress_callback(lambda stage, done, total: print(stage, done, total))
    >>> callback.on_step_end(None, TrainerState(global_step=3, max_steps=10), None)
    training 3 10
    >>> callback.on_step_end(None, TrainerState(global_step=3, max_steps=10, is_world_process_zero=False), None)
    """
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                progress(stage, int(state.global_step), int(state.max_steps))

        def on_step_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                progress(stage, int(state.global_step), int(state.max_steps))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                logger.debug("step %d of %d: loss %.4f", state.global_step, state.max_steps, logs["loss"])

    return StepProgress()
