"""Stopping a run between denoising steps: ``CancelToken`` and ``Cancelled``.

A front end makes one token per run, passes it as ``cancel=`` to ``pipeline()`` or to any MiDaS
pipeline's ``__call__``, and calls ``token.cancel()`` from another thread (a Cancel button, a
closed request, Ctrl-C). The run raises ``Cancelled`` at the next check: before the depth is
estimated, before the denoising loop, and at the end of every denoising step. Nothing is decoded
and nothing is returned, so no partial result can be written; the pipeline is ready for the next
run at once.

>>> import threading
>>> from midas_diffusion.pipelines import pipeline
>>> from midas_diffusion.pipelines.cancel import CancelToken, Cancelled
>>> token = CancelToken()
>>> threading.Timer(5.0, token.cancel).start()  # e.g. a Cancel button          # doctest: +SKIP
>>> try:                                                                          # doctest: +SKIP
...     out = pipeline(photo, "a watercolor castle", cancel=token)
... except Cancelled:
...     print("cancelled")

The check raises from diffusers' ``callback_on_step_end``, which stops the loop at once; diffusers'
own ``interrupt`` flag would still decode the latents of the unfinished run. A caller's own
``callback_on_step_end`` keeps working beside ``cancel=`` (the token is checked first);
``token.callback`` is the bare check, for a plain diffusers pipeline's ``callback_on_step_end``.
A token stays cancelled: make a new one for the next run.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Dict, Optional


class Cancelled(Exception):
    """The run was stopped by its ``CancelToken``; it produced nothing."""


class CancelToken:
    """Set once (``cancel()``, from any thread); read with ``cancelled``; checked by the pipelines."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop at its next check (thread-safe, idempotent)."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """``Cancelled`` when ``cancel()`` has been called."""
        if self._event.is_set():
            raise Cancelled("the run was cancelled")

    def callback(self, pipe: Any, step: int, timestep: Any, callback_kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """A diffusers ``callback_on_step_end``: raises ``Cancelled`` once the token is set."""
        self.raise_if_cancelled()
        return callback_kwargs

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self.cancelled})"


def check_cancelled(cancel: Optional[CancelToken]) -> None:
    """``Cancelled`` when ``cancel`` is set (nothing when there is no token)."""
    if cancel is not None:
        if not isinstance(cancel, CancelToken):
            raise TypeError(f"cancel must be a midas_diffusion.pipelines.cancel.CancelToken, got {type(cancel).__name__}")
        cancel.raise_if_cancelled()


def step_end_arguments(cancel: Optional[CancelToken], kwargs: Dict[str, Any],
                       parent_call: Optional[Callable] = None) -> Dict[str, Any]:
    """``kwargs`` for a diffusers ``__call__`` with ``cancel`` checked at the end of every step.

    The caller's ``callback_on_step_end`` (a function, ``PipelineCallback`` or
    ``MultiPipelineCallbacks``) and ``callback_on_step_end_tensor_inputs`` pass through unchanged;
    with a token, the token is checked first and the caller's callback runs after it. A
    ``parent_call`` without ``callback_on_step_end`` (diffusers' SDXL T2I-Adapter pipeline) gets
    the check through its older per-step ``callback`` instead.
    """
    check_cancelled(cancel)
    if parent_call is not None and "callback_on_step_end" not in inspect.signature(parent_call).parameters:
        return _legacy_step_arguments(cancel, kwargs)
    if cancel is None:
        return kwargs
    callback: Optional[Callable] = kwargs.get("callback_on_step_end")
    tensor_inputs = kwargs.get("callback_on_step_end_tensor_inputs")
    if callback is not None and tensor_inputs is None:
        tensor_inputs = getattr(callback, "tensor_inputs", None)  # diffusers' callback objects name theirs

    def on_step_end(pipe, step, timestep, callback_kwargs):
        cancel.raise_if_cancelled()
        return callback(pipe, step, timestep, callback_kwargs) if callback is not None else callback_kwargs

    out = dict(kwargs, callback_on_step_end=on_step_end)
    if tensor_inputs is not None:
        out["callback_on_step_end_tensor_inputs"] = tensor_inputs
    return out


def _legacy_step_arguments(cancel: Optional[CancelToken], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    for name in ("callback_on_step_end", "callback_on_step_end_tensor_inputs"):
        if kwargs.get(name) is not None:
            raise ValueError(f"{name} is not supported by this pipeline's diffusers loop; use callback= "
                             "(called as callback(step, timestep, latents)) or cancel=")
    kwargs = {k: v for k, v in kwargs.items() if k not in ("callback_on_step_end", "callback_on_step_end_tensor_inputs")}
    if cancel is None:
        return kwargs
    callback: Optional[Callable] = kwargs.get("callback")
    every = kwargs.get("callback_steps") or 1

    def on_step(step, timestep, latents):
        cancel.raise_if_cancelled()
        if callback is not None and step % every == 0:
            callback(step, timestep, latents)

    return dict(kwargs, callback=on_step, callback_steps=1)
