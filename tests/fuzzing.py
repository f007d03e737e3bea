"""What both fuzzing files share: hypothesis settings, outcome counting, and the one-line-error
check (their scratch folder is conftest.py's `scratch` fixture)."""

from __future__ import annotations


from hypothesis import HealthCheck, settings
from hypothesis import event as hypothesis_event
from hypothesis.control import currently_in_test_context


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_FILES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def event(name: str) -> None:
    """Count outcomes (`pytest --hypothesis-show-statistics`), also from the plain tests."""
    if currently_in_test_context():
        hypothesis_event(name)


def assert_one_line(exc: Exception, name: str) -> None:
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert name in message, f"{name!r} not named in {message!r}"
