"""One settings object, read from `FHIR_SCHEDULER_*` environment variables and validated at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import PositiveFloat, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Deployment settings; every field is documented in the README."""

    model_config = SettingsConfigDict(env_prefix="FHIR_SCHEDULER_", extra="ignore")

    store_url: str = "sqlite:///./data/fhir-scheduler.db"
    data_dir: Path = Path("./data")
    base_url: str = "http://127.0.0.1:8080/fhir"
    capability_dir: Path = REPO_ROOT / "capability"
    profiles_dir: Path = REPO_ROOT / "profiles"
    log_level: str = "INFO"
    mongo_timeout_ms: int = 5000
    recovery_interval_s: float = 30.0
    # How often buffered audit records are written: the most a killed process can lose.
    audit_flush_interval_s: PositiveFloat = 0.05
    # SMART-on-FHIR: `embedded` validates tokens signed with the keys under data_dir/keys;
    # `external` fetches an IdP's keys through its OIDC discovery document.
    auth_mode: Literal["embedded", "external"] = "embedded"
    auth_issuer: str | None = None
    auth_jwks_timeout_s: float = 3.0
    # Reminders (fhir_server/notify/): Celery broker; empty = filesystem transport under
    # data_dir/broker, with worker and beat started by `serve` (see README "Reminders").
    broker_url: str = ""
    embedded_worker: bool = True
    reminder_offsets_h: list[float] = [72.0, 24.0, 2.0]
    dispatch_interval_s: float = 2.0
    dispatch_lease_s: float = 120.0
    dispatch_max_attempts: int = 5
    default_language: str = "en"
    templates_dir: Path | None = None
    # Secret that signs calendar-feed tokens and one-click confirm/cancel links; generated
    # under data_dir on first start when empty.
    link_secret: str = ""
    link_ttl_h: float = 72.0
    public_url: str = ""  # where patients' links point; defaults to the base URL's origin
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_from: str = "Clinic <no-reply@clinic.example>"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    # A Twilio-compatible HTTP API for SMS and voice (Messages and Calls resources).
    sms_api_url: str = ""  # e.g. https://api.twilio.com/2010-04-01; empty disables SMS/voice
    sms_account_sid: str = ""
    sms_auth_token: str = ""
    sms_from: str = ""
    voice_from: str = ""
    sms_timeout_s: float = 10.0

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("store_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "mongodb://", "mongodb+srv://")):
            raise ValueError("store_url must start with sqlite://, mongodb:// or mongodb+srv://")
        return value

    @model_validator(mode="after")
    def _external_needs_issuer(self) -> Settings:
        if self.auth_mode == "external" and not self.auth_issuer:
            raise ValueError("FHIR_SCHEDULER_AUTH_ISSUER is required with "
                             "FHIR_SCHEDULER_AUTH_MODE=external")
        return self

    @property
    def issuer(self) -> str:
        """The `iss` tokens must carry: the configured issuer, else `<base origin>/auth`."""
        if self.auth_issuer:
            return self.auth_issuer.rstrip("/")
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}/auth"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
