"""Stopping a running pipeline: a ``CancelToken`` whose ``callback`` (diffusers' ``callback_on_step_end``)
raises ``Cancelled`` at the next denoising step once ``cancel()`` was called, from any thread."""

import threading


class Cancelled(Exception):
    """The run was cancelled; nothing of it was returned."""


class CancelToken:
    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def callback(self, pipe, step, timestep, callback_kwargs):
        if self._event.is_set():
            raise Cancelled("cancelled")
        return callback_kwargs
