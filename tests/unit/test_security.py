"""The exposure rules as plain functions: tokens, the allow-lists, the rate limiter, the start-up
check, the settings that configure them, and the deployment files that must use tokens."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from server.config import Settings
from server.ratelimit import TokenBucket
from server.security import exposure_problem, host_allowed, origin_allowed, split_authority
from server.tokens import Scope, new_token, parse_prefix, verify

ROOT = Path(__file__).resolve().parents[2]


def test_tokens_are_random_hashed_and_verified() -> None:
    one, two = new_token(), new_token()
    assert one.secret != two.secret and one.prefix != two.prefix
    assert parse_prefix(one.secret) == one.prefix and one.secret not in one.digest
    assert verify(one.secret, one.digest) and not verify(two.secret, one.digest)
    assert parse_prefix(one.secret + "x") is None and parse_prefix("Bearer abc") is None
    assert Scope.admin.allows(Scope.write) and Scope.write.allows(Scope.read)
    assert not Scope.read.allows(Scope.write) and not Scope.write.allows(Scope.admin)


def test_authorities_hosts_and_origins() -> None:
    assert split_authority("[::1]:8000") == ("::1", 8000)
    assert split_authority("LocalHost:80") == ("localhost", 80)
    assert split_authority("example.com") == ("example.com", None)
    assert host_allowed("::1", ["127.0.0.1", "::1"])
    assert host_allowed("a.obs.example.com", ["*.example.com"])
    assert not host_allowed("example.com.evil.test", ["*.example.com", "example.com"])
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", [])
    assert origin_allowed("https://obs.example.com", "obs.example.com", [])
    assert origin_allowed("http://localhost", "localhost:80", [])
    assert not origin_allowed("http://localhost:8001", "localhost:8000", [])
    assert not origin_allowed("null", "localhost:8000", [])
    assert origin_allowed("https://ui.example.com/", "127.0.0.1:8000", ["https://ui.example.com"])


def test_token_bucket_refills_per_key() -> None:
    now = [0.0]
    bucket = TokenBucket(2, 60.0, clock=lambda: now[0])
    assert bucket.take("a") == bucket.take("a") == 0.0
    assert bucket.take("a") == pytest.approx(30.0)  # one request back every 30 s
    assert bucket.take("b") == 0.0
    now[0] = 29.0
    assert bucket.take("a") == pytest.approx(1.0)
    now[0] = 31.0
    assert bucket.take("a") == 0.0


def test_start_up_check() -> None:
    open_ = Settings(auth="open")
    assert exposure_problem(open_, "127.0.0.1") is None
    assert exposure_problem(open_, "localhost") is None and exposure_problem(open_, "::1") is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "myhost"):
        assert "OBS_AUTH=required" in exposure_problem(open_, host)
    proxied = Settings(auth="open", allowed_hosts="obs.example.com")
    assert "obs.example.com" in exposure_problem(proxied, "127.0.0.1")
    assert exposure_problem(Settings(auth="required"), "0.0.0.0") is None


def test_settings_parse_lists_and_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBS_ALLOWED_HOSTS", "obs.example.com, *.lab.test")
    monkeypatch.setenv("OBS_SUBMIT_RATE", "10/minute")
    settings = Settings()
    assert settings.allowed_hosts == ["obs.example.com", "*.lab.test"]
    assert settings.submit_limit == (10, 60.0)
    assert Settings(submit_rate="off").submit_limit is None
    for bad in ("10", "0/minute", "5/fortnight"):
        with pytest.raises(ValidationError):
            Settings(submit_rate=bad)
    with pytest.raises(ValidationError):
        Settings(auth="none")


def test_docker_image_and_compose_require_tokens() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ENV .*OBS_AUTH=required", dockerfile, re.MULTILINE)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    server = compose["services"]["server"]
    assert server["environment"]["OBS_AUTH"] == "required"
    assert server["command"][:2] == ["observatory", "serve"] and "0.0.0.0" in server["command"]
