"""A user cannot make the service send requests without end: webhook registrations and test
sends (each one a request notification makes to the endpoint) share a per-user rate limit,
WEBHOOK_RATE_LIMIT_PER_USER; past it, 429 with the wait, and nothing more is queued."""

import pytest
import requests

pytestmark = pytest.mark.security


def test_test_sends_and_registrations_are_rate_limited_per_user(stack_factory):
    stack = stack_factory(WEBHOOK_RATE_LIMIT_PER_USER="4 per hour")
    _, jwt = stack.user()
    _, other = stack.user()
    auth = {"Authorization": f"Bearer {jwt}"}
    created = requests.post(f"{stack.gateway_url}/webhooks", headers=auth, timeout=10,
                            json={"url": "http://93.184.216.34/hook"})
    assert created.status_code == 201, created.text
    test = f"{stack.gateway_url}/webhooks/{created.json()['id']}/test"
    statuses = [requests.post(test, headers=auth, timeout=10).status_code for _ in range(5)]
    assert statuses == [202, 202, 202, 429, 429], statuses
    refused = requests.post(test, headers=auth, timeout=10)
    assert refused.json()["error"].startswith("too many webhook registrations and test sends; "
                                              "try again in ")
    assert int(refused.headers["Retry-After"]) > 0
    again = requests.post(f"{stack.gateway_url}/webhooks", headers=auth, timeout=10,
                          json={"url": "http://93.184.216.34/other"})
    assert again.status_code == 429  # one count for both
    # another user is not held back by it
    theirs = requests.post(f"{stack.gateway_url}/webhooks", timeout=10,
                           headers={"Authorization": f"Bearer {other}"},
                           json={"url": "http://93.184.216.34/hook"})
    assert theirs.status_code == 201, theirs.text
