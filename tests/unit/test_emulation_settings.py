"""The local stack's emulation settings model and the scenario blocks that set it (no stack needed)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pipeshare_local import settings as settings_module
from pipeshare_local.scenario import Scenario
from pipeshare_local.settings import CloudTrailSettings, EmulationSettings

OWNER, CONSUMER = "111111111111", "222222222222"


def _scenario(**blocks: Any) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "s",
            "accounts": {"owner": {"id": OWNER}, "consumer": {"id": CONSUMER}},
            "steps": [{"note": {"text": "x"}}],
            **blocks,
        }
    )


def test_defaults_are_todays_behaviour() -> None:
    settings = EmulationSettings()
    assert settings.cloudtrail.model_dump() == {
        "delay_minutes": 0,
        "owner_trail": True,
        "consumer_trail": True,
        "trails": {},
        "order": "before_service_events",
    }
    assert settings.sagemaker.first_previous_status == "absent"
    assert settings.sagemaker.owner_cloudtrail_copy is False
    assert settings.ram.invitation_ttl_hours == 12
    assert settings.changed() == {}


@pytest.mark.parametrize(
    "raw",
    [
        {"cloudtrail": {"delay": 5}},
        {"cloudtrail": {"delay_minutes": -1}},
        {"cloudtrail": {"delay_minutes": "soon"}},
        {"cloudtrail": {"order": "random"}},
        {"cloudtrail": {"trails": {"consumer": False}}},  # the stack takes account IDs only
        {"cloudtrail": {"owner_trail": "maybe"}},
        {"sagemaker": {"first_previous_status": "Stopped"}},
        {"sagemaker": {"job_not_found_code": "NotFound"}},
        {"sagemaker": {"duplicate_events": "thrice"}},
        {"sagemaker": {"owner_copy": True}},
        {"ram": {"invitation_ttl_hours": 0}},
        {"ram": {"event_resources": "some"}},
        {"eventbridge": {}},
    ],
)
def test_unknown_keys_and_values_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EmulationSettings.model_validate(raw)


def test_assignments_are_validated() -> None:
    settings = EmulationSettings()
    with pytest.raises(ValidationError):
        settings.sagemaker.first_previous_status = "Unknown"
    settings.sagemaker.first_previous_status = "Starting"
    assert settings.changed() == {"sagemaker": {"first_previous_status": "Starting"}}


def test_trail_per_account_overrides_the_role_default() -> None:
    trails = CloudTrailSettings(owner_trail=True, consumer_trail=False, trails={OWNER: False, CONSUMER: True})
    assert trails.has_trail(OWNER, owns_resource=True) is False
    assert trails.has_trail(CONSUMER, owns_resource=False) is True
    assert trails.has_trail("333333333333", owns_resource=True) is True
    assert trails.has_trail("333333333333", owns_resource=False) is False


def test_restore_keeps_the_object() -> None:
    settings, initial = EmulationSettings(), EmulationSettings(cloudtrail={"delay_minutes": 3})
    holder = settings
    settings.restore(initial)
    assert holder.cloudtrail.delay_minutes == 3
    initial.cloudtrail.delay_minutes = 4
    assert holder.cloudtrail.delay_minutes == 3  # a copy, not the other's blocks


def test_scenario_blocks_become_stack_settings_with_account_ids() -> None:
    scenario = _scenario(
        cloudtrail={"delay_minutes": 5, "consumer_trail": False, "trails": {"owner": False, "333333333333": True}},
        sagemaker={"first_previous_status": "Executing", "owner_cloudtrail_copy": True},
        ram={"event_resources": "empty"},
    )
    settings = scenario.emulation_settings()
    assert settings.cloudtrail.trails == {OWNER: False, "333333333333": True}
    assert (settings.cloudtrail.delay_minutes, settings.cloudtrail.consumer_trail) == (5, False)
    assert settings.sagemaker.first_previous_status == "Executing"
    assert settings.sagemaker.owner_cloudtrail_copy is True
    assert settings.ram.event_resources == "empty"


def test_scenario_default_delay_is_the_scenario_constant() -> None:
    assert (
        _scenario().emulation_settings().cloudtrail.delay_minutes == settings_module.SCENARIO_CLOUDTRAIL_DELAY_MINUTES
    )
    assert _scenario(cloudtrail={"owner_trail": False}).cloudtrail.delay_minutes == (
        settings_module.SCENARIO_CLOUDTRAIL_DELAY_MINUTES
    )
    assert _scenario(cloudtrail={"delay_minutes": 2.5}).emulation_settings().cloudtrail.delay_minutes == 2.5


def test_invitation_window_shorthand_and_block() -> None:
    assert _scenario(invitation_ttl_hours=6).emulation_settings().ram.invitation_ttl_hours == 6
    assert _scenario(ram={"invitation_ttl_hours": 3}).emulation_settings().ram.invitation_ttl_hours == 3
    with pytest.raises(ValidationError, match="once"):
        _scenario(invitation_ttl_hours=6, ram={"invitation_ttl_hours": 3})


@pytest.mark.parametrize(
    "blocks",
    [
        {"cloudtrail": {"trails": {"stranger": False}}},
        {"cloudtrail": {"delay_minutes": -5}},
        {"cloudtrail": {"latency": 5}},
        {"sagemaker": {"first_previous_status": "Pending"}},
        {"ram": {"ttl": 1}},
        {"settings": {}},
    ],
)
def test_scenario_refuses_bad_settings(blocks: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _scenario(**blocks)
