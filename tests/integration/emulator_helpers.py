"""Helpers shared by the emulator tests (RAM and SageMaker), which drive the emulators with real boto3 clients."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from botocore.config import Config
from botocore.model import ServiceModel

from pipeshare_local.wire import StrictParamValidator


def output_checker(
    model: Callable[[], ServiceModel], validator: type[StrictParamValidator]
) -> Callable[[str, dict[str, Any]], None]:
    """assert_valid_output(operation, response) for one service: a response (built by the emulator, or parsed by
    botocore) validates against the operation's output shape."""

    def assert_valid_output(operation: str, response: dict[str, Any]) -> None:
        body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        shape = model().operation_model(operation).output_shape
        report = validator().validate(body, shape)
        assert not report.has_errors(), f"{operation}: {report.generate_report()}"

    return assert_valid_output


class Clock:
    """Scenario time for an emulator: call it for the time, advance it by a timedelta or a number of seconds."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float) -> None:
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


def client_config(*, validate: bool = True) -> Config:
    """One attempt per call (errors surface at once); validate=False lets invalid input reach the emulator."""
    return Config(parameter_validation=validate, retries={"mode": "standard", "max_attempts": 1})
