"""Settings refuse combinations that would make leases, heartbeats or timeouts misfire."""

from __future__ import annotations

import pytest

from farm.kernel.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("fields", "names_in_error"),
    [
        ({"lease_ttl_s": 3.0, "lease_renew_s": 2.0}, "lease_renew_s"),
        ({"worker_ttl_s": 5.0, "heartbeat_s": 4.0}, "heartbeat_s"),
        ({"stall_timeout_s": 1.0, "lease_renew_s": 1.0, "lease_ttl_s": 6.0}, "stall_timeout_s"),
        ({"join_timeout_s": 200.0}, "join_timeout_s"),
    ],
)
def test_inconsistent_timings_are_refused_with_what_to_change(
    fields: dict[str, float], names_in_error: str
) -> None:
    with pytest.raises(ValueError, match=names_in_error):
        Settings.model_validate(fields)


def test_the_defaults_are_consistent() -> None:
    settings = Settings.model_validate({})
    assert settings.lease_renew_s * 2 <= settings.lease_ttl_s
    assert settings.stall_timeout_s > settings.lease_renew_s
