import pytest

from accounts.signals import login_locked_out


@pytest.fixture
def lockouts():
    """The usernames that lockouts are announced for (accounts.signals.login_locked_out)."""
    received = []

    def remember(sender, username, request, **kwargs):
        received.append(username)

    login_locked_out.connect(remember, dispatch_uid="test-lockouts")
    yield received
    login_locked_out.disconnect(dispatch_uid="test-lockouts")
