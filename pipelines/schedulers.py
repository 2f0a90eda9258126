"""The schedulers a run may choose by short name, and swapping them on a loaded pipeline."""

from __future__ import annotations

from typing import Optional

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "lms": "LMSDiscreteScheduler",
}


def set_scheduler(pipe, name: Optional[str]):
    """Swap the pipeline's scheduler for ``name``, keeping its config; ``None`` restores the one the
    pipeline was loaded with. ``name``: a key of ``SCHEDULERS`` or a diffusers scheduler class name
    (as ``settings["scheduler"]`` records it)."""
    if name is None:
        if getattr(pipe, "_loaded_scheduler", None) is not None:
            pipe.scheduler = pipe._loaded_scheduler
        return pipe
    import diffusers

    class_name = SCHEDULERS.get(name, name)
    cls = getattr(diffusers, class_name, None) if class_name.endswith("Scheduler") else None
    if cls is None or not issubclass(cls, diffusers.SchedulerMixin):
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)} "
                         "or a diffusers scheduler class name")
    if getattr(pipe, "_loaded_scheduler", None) is None:
        pipe._loaded_scheduler = pipe.scheduler
    if type(pipe.scheduler) is not cls:
        pipe.scheduler = cls.from_config(pipe._loaded_scheduler.config)
    return pipe
