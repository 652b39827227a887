"""The default redaction hook masks keys that name a secret, and only those."""

from __future__ import annotations

import pytest

from bus import redact_secrets

SECRET_KEYS = [
    "password", "PASSWORD", "db_password", "dbPassword", "user_pass", "passwd", "pwd",
    "passphrase", "client_secret", "secretKey", "access_token", "X-Api-Key", "api_key",
    "apiKey", "APIKey", "Authorization", "credentials",
]  # fmt: skip
PLAIN_KEYS = ["passenger", "compass", "passage", "name", "room", "tokens", "keyboard", "api"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_are_masked(key: str) -> None:
    assert redact_secrets(key, "hunter2") == "***"


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_words_that_merely_contain_a_secret_word_are_kept(key: str) -> None:
    assert redact_secrets(key, "hunter2") == "hunter2"


def test_the_masked_value_never_reaches_the_activity(make_bus) -> None:
    bus = make_bus()
    seen = []
    bus.register_command("login", lambda user, password: user)
    bus.watch(seen.append)
    assert bus.execute_command("login", "ada", password="hunter2").result(timeout=5) == "ada"
    assert bus.wait_idle(5)
    (call,) = [a for a in seen if a.kind == "call"]
    assert "hunter2" not in (call.kwargs or "")
    assert '"***"' in (call.kwargs or "")
