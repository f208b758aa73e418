"""Request: idempotency follows the method unless the Source says otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from asyncrawl.http import IDEMPOTENT_METHODS, Request


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "get", "Put"])
def test_safe_methods_are_idempotent_by_default(method: str) -> None:
    assert Request(url="http://127.0.0.1/x", method=method).idempotent is True


@pytest.mark.parametrize("method", ["POST", "PATCH", "post", "CONNECT"])
def test_unsafe_methods_are_not_idempotent_by_default(method: str) -> None:
    assert Request(url="http://127.0.0.1/x", method=method).idempotent is False


def test_the_source_can_override_either_way() -> None:
    assert Request(url="http://127.0.0.1/x", method="POST", idempotent=True).idempotent is True
    assert Request(url="http://127.0.0.1/x", method="GET", idempotent=False).idempotent is False


def test_replace_keeps_an_explicit_choice_and_resolves_a_new_method() -> None:
    post = Request(url="http://127.0.0.1/x", method="POST")
    # replace() passes the resolved value on: changing the method alone keeps "not idempotent".
    assert dataclasses.replace(post, method="GET").idempotent is False
    assert dataclasses.replace(post, method="GET", idempotent=None).idempotent is True


def test_request_stays_frozen_and_slotted() -> None:
    request = Request(url="http://127.0.0.1/x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.idempotent = False  # type: ignore[misc]
    assert not hasattr(request, "__dict__")


def test_the_idempotent_set_is_rfc_9110s() -> None:
    assert {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"} <= IDEMPOTENT_METHODS
    assert not {"POST", "PATCH"} & IDEMPOTENT_METHODS


def test_display_url_masks_params_added_to_a_url_with_a_query() -> None:
    request = Request(
        url="http://127.0.0.1/x?page=2",
        params={"api_key": "SECRET"},
        secret_params=frozenset({"api_key"}),
    )
    assert request.display_url == "http://127.0.0.1/x?page=2&api_key=***"
    assert "SECRET" not in repr(request)
