"""The connect service's settings are checked when the application is made."""

from __future__ import annotations

import pytest

from connector_core.errors import ValidationError
from connector_core.serve import ConnectConfig, callback_url, check_origin


def test_callback_url_is_under_the_public_url() -> None:
    assert (
        callback_url("https://platform.example/", "hibob") == "https://platform.example/connect/oauth2/hibob/callback"
    )


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://App.Example.com", "https://app.example.com"),
        ("https://app.example.com:443/", "https://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_origins_are_normalised(origin: str, expected: str) -> None:
    assert check_origin(origin) == expected


@pytest.mark.parametrize(
    "origin",
    ["http://app.example.com", "https://app.example.com/path", "https://u:p@app.example.com", "*", "", "javascript:x"],
)
def test_bad_origins_are_refused(origin: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_origin(origin)
    assert info.value.field == "embed_origins"


def test_install_redirect_must_be_on_the_allow_list() -> None:
    with pytest.raises(ValidationError) as info:
        ConnectConfig.build(
            redirect_allow_list=["https://app.example.com/done"], install_redirect_url="https://evil.example/"
        )
    assert info.value.field == "install_redirect_url"
    ok = ConnectConfig.build(
        redirect_allow_list=["https://app.example.com/done"],
        install_redirect_url="https://app.example.com/done/install",
    )
    assert ok.install_redirect_url == "https://app.example.com/done/install"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"redirect_allow_list": "https://app.example.com"}, "redirect_allow_list"),
        ({"redirect_allow_list": ["http://app.example.com/"]}, "redirect_allow_list"),
        ({"install_profiles": {"Bad Key": "p"}}, "install_profiles"),
        ({"install_profiles": {"hibob": ""}}, "install_profiles.hibob"),
    ],
)
def test_bad_settings_name_the_setting(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ConnectConfig.build(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
