"""The YAML config file: services, per-service thresholds and remediation, catalog.

Everything in it can also be done through the API; the file is for operators
who keep their fleet in version control. Errors name the file, the line and
the field, so a typo at 3 a.m. is a one-line fix.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from selfheal.configyaml import (
    MissingEnvError,
    dotted,
    error_message,
    expand_env,
    is_union_tag,
    line_of,
)
from selfheal.errors import ConfigError
from selfheal.outbound import parse_networks
from selfheal.types import DEFAULT_TENANT, IncidentType, Severity

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
M = TypeVar("M", bound=BaseModel)
_SERVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ACTION_NAME = r"^[a-z][a-z0-9_]{0,63}$"
PLUGIN_NAME = r"^[a-z][a-z0-9_.-]{0,63}$"


# the longest duration anything takes (a year): past it a value is a typo, and 1e20
# seconds would overflow the event loop's timer heap and datetime arithmetic
MAX_DURATION = 366 * 86_400.0
DURATION_TEXT = r"^\s*\d{1,12}(\.\d{1,9})?\s*(ms|s|m|h|d)?\s*$"


def parse_duration(value: Any) -> float:
    """Seconds from ``10``, ``2.5``, ``"500ms"``, ``"10s"``, ``"5m"``, ``"1h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '10s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 32 and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"{value!r:.40} is not a duration; write e.g. 10, '500ms', '10s', '5m'")
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"a duration is at most {MAX_DURATION:,.0f} seconds (a year)")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _between(low: float, high: float) -> AfterValidator:
    def check(seconds: float) -> float:
        if not low <= seconds <= high:
            raise ValueError(f"must be between {low:g} and {high:g} seconds, got {seconds:g}")
        return seconds

    return AfterValidator(check)


def _duration_schema(low: float, high: float) -> WithJsonSchema:
    # the document states the bounds; "10s"-style strings are accepted too
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": low, "maximum": high},
                {"type": "string", "pattern": DURATION_TEXT, "maxLength": 32},
            ],
            "description": f"seconds ({low:g} to {high:g}), or a string like '10s', '5m'",
        }
    )


def bounded_duration(low: float, high: float) -> tuple[Any, ...]:
    """Annotated metadata of a duration field between ``low`` and ``high`` seconds."""
    return (BeforeValidator(parse_duration), _between(low, high), _duration_schema(low, high))


DAY = 86_400.0
# a probe interval under a second measures the network, not the service; 0.001 s made
# every probe time out (the timeout never outlives the interval) and a healthy service down
Interval = Annotated[float, *bounded_duration(1.0, DAY)]
ProbeTimeout = Annotated[float, *bounded_duration(0.1, 300.0)]
ShortDuration = Annotated[float, *bounded_duration(0.0, DAY)]
LongDuration = Annotated[float, *bounded_duration(0.0, 30 * DAY)]
HeartbeatTimeout = Annotated[float, *bounded_duration(0.1, 7 * DAY)]


def check_http_url(value: str) -> str:
    """Only http(s) URLs can be probed or called back."""
    if not re.match(r"^https?://", value, re.IGNORECASE):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    AnyHttpUrl(value)  # full syntax check; raises ValueError on nonsense
    return value


class Strict(BaseModel):
    """Config sections refuse unknown keys: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class ThresholdOverrides(Strict):
    """Per-service overrides of the global thresholds; unset ones use the globals."""

    cpu: float | None = Field(default=None, ge=0, le=100)
    memory: float | None = Field(default=None, ge=0, le=100)
    latency_ms: float | None = Field(default=None, gt=0, le=3_600_000)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    response_time_ms: float | None = Field(default=None, gt=0, le=3_600_000)


class RemediationSpec(Strict):
    """How one named action is carried out for one service.

    At most one of ``exec`` (a local command; a string runs through ``/bin/sh``,
    a list runs as is) or ``executor`` (a plugin of ``selfheal.executors``, with
    its ``options``); with neither, a signed call to the service's webhook.
    """

    exec: str | list[str] | None = None
    webhook: bool | None = None
    plugin: str | None = Field(default=None, alias="executor", pattern=PLUGIN_NAME)
    options: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration | None = None
    # names of the agent's environment variables the command may see (besides PATH, HOME)
    env: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _one_way(self) -> RemediationSpec:
        if self.exec is not None and self.plugin is not None:
            raise ValueError("give either exec or executor, not both")
        return self

    @field_validator("exec")
    @classmethod
    def _non_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and not value:
            raise ValueError("exec must be a non-empty command")
        return value

    @property
    def executor(self) -> str:
        """Which executor carries this action out."""
        if self.plugin is not None:
            return self.plugin
        return "exec" if self.exec is not None else "webhook"


class ProcessConfig(Strict):
    """A process the agent starts and supervises (it is the parent: exits are seen at once).

    ``env`` is added to a small clean environment (PATH, HOME, LANG, TZ), never to
    the agent's own, so the agent's secrets do not leak into it. stdout and stderr
    go to files rotated at ``log_max_bytes`` with ``log_backups`` older files kept.
    """

    command: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    stop_signal: Literal["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2"] = "TERM"
    stop_timeout: Duration = Field(default=10.0, gt=0)
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_backups: int = Field(default=3, ge=0, le=100)


class ServiceConfig(Strict):
    """One monitored service as written in the config file."""

    id: str = Field(pattern=_SERVICE_ID)
    # the tenant the service belongs to; left out: the default tenant
    tenant: str | None = Field(default=None, pattern=_SERVICE_ID)
    name: str | None = Field(default=None, max_length=200)
    health_url: str | None = None
    # a plugin check instead of the HTTP probe: {type: NAME, ...the check's options}
    check: dict[str, Any] | None = None
    webhook_url: str | None = None
    secret: str | None = Field(default=None, min_length=1, max_length=512, repr=False)
    interval: Interval | None = None
    timeout: ProbeTimeout | None = None
    retries: int | None = Field(default=None, ge=1, le=100)
    retry_delay: ShortDuration | None = None
    cooldown: LongDuration | None = None
    heartbeat_timeout: HeartbeatTimeout | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    thresholds: ThresholdOverrides = Field(default_factory=ThresholdOverrides)
    remediation: dict[Annotated[str, Field(pattern=ACTION_NAME)], RemediationSpec] = Field(
        default_factory=dict
    )
    depends_on: list[Annotated[str, Field(pattern=_SERVICE_ID)]] = Field(default_factory=list)
    dry_run: bool | None = None
    grace: ShortDuration | None = None
    recovery_probes: int | None = Field(default=None, ge=1, le=100)
    # replicas that must see it down before an incident opens (cluster/quorum.py)
    confirm_from: int | None = Field(default=None, ge=1, le=5)
    process: ProcessConfig | None = None  # the agent starts and supervises it
    container: str | None = Field(default=None, pattern=r"^/?[A-Za-z0-9][A-Za-z0-9_.-]*$")

    @model_validator(mode="after")
    def _one_runtime(self) -> ServiceConfig:
        if self.process is not None and self.container is not None:
            raise ValueError("a service is either a process or a container, not both")
        return self

    @field_validator("health_url", "webhook_url")
    @classmethod
    def _http_urls(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @field_validator("check")
    @classmethod
    def _check_type(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        kind = value.get("type")
        if not isinstance(kind, str) or not re.match(PLUGIN_NAME, kind):
            raise ValueError("a check needs a type, e.g. {type: tcp, address: 127.0.0.1:5432}")
        return value

    @model_validator(mode="after")
    def _probed_somehow(self) -> ServiceConfig:
        if self.health_url is None and self.check is None:
            raise ValueError("a service needs a health_url or a check")
        return self

    @property
    def tenant_id(self) -> str:
        """The tenant it belongs to."""
        return self.tenant or DEFAULT_TENANT

    @property
    def target(self) -> str:
        """What is probed, for display and storage: the health URL or ``type:options``."""
        if self.health_url is not None:
            return self.health_url
        assert self.check is not None
        return check_target(self.check)


class CatalogAction(Strict):
    """One candidate fix in the catalog, with optional parameters."""

    action: str = Field(pattern=ACTION_NAME)
    params: dict[str, Any] = Field(default_factory=dict)


class CatalogEntryConfig(Strict):
    """The ordered candidate fixes for one incident type; first is tried first."""

    type: IncidentType
    tenant: str | None = Field(default=None, pattern=_SERVICE_ID)  # left out: the default
    actions: list[CatalogAction | Annotated[str, Field(pattern=ACTION_NAME)]] = Field(min_length=1)

    def normalised(self) -> list[CatalogAction]:
        """Actions as objects, whichever spelling the file used."""
        return [
            a if isinstance(a, CatalogAction) else CatalogAction(action=a) for a in self.actions
        ]


BUILTIN_CHANNELS = ("webhook", "slack", "teams", "pagerduty", "email")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class NotificationConfig(Strict):
    """An escalation channel, in the real format of its service.

    ``webhook`` posts a signed JSON body; ``slack`` and ``teams`` post to an
    incoming-webhook URL; ``pagerduty`` sends Events API v2 (trigger, then
    resolve with the same dedup key); ``email`` sends through an SMTP server.
    """

    name: str = Field(pattern=_SERVICE_ID)
    # whose incidents it is told about; left out: the default tenant's
    tenant: str | None = Field(default=None, pattern=_SERVICE_ID)
    type: str = Field(default="webhook", pattern=PLUGIN_NAME)  # or a plugin's name
    options: dict[str, Any] = Field(default_factory=dict)  # a plugin channel's options
    url: str | None = None
    secret: str | None = Field(default=None, min_length=8, repr=False)
    routing_key: str | None = Field(default=None, min_length=1, repr=False)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    from_addr: str | None = Field(default=None, alias="from")
    to: list[str] = Field(default_factory=list)
    min_severity: Severity = Severity.LOW

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @model_validator(mode="after")
    def _required_per_type(self) -> NotificationConfig:
        if self.type not in BUILTIN_CHANNELS:
            return self  # a plugin's options are validated by its own model
        needed = {
            "webhook": ("url",),
            "slack": ("url",),
            "teams": ("url",),
            "pagerduty": ("routing_key",),
            "email": ("smtp_host", "from_addr", "to"),
        }[self.type]
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            names = ", ".join("from" if m == "from_addr" else m for m in missing)
            raise ValueError(f"a {self.type} channel needs {names}")
        if self.type == "pagerduty" and self.url is None:
            self.url = PAGERDUTY_EVENTS_URL
        return self

    @property
    def tenant_id(self) -> str:
        """The tenant whose incidents this channel is told about."""
        return self.tenant or DEFAULT_TENANT


class BreakerConfig(Strict):
    """Stop using a fix on a service after it failed ``failures`` times in a row."""

    failures: int = Field(default=3, ge=1, le=100)
    reset_after: Duration = Field(default=1800.0, gt=0)


class FlappingConfig(Strict):
    """A service changing between healthy and not ``changes`` times within ``window``."""

    enabled: bool = True
    changes: int = Field(default=6, ge=2, le=1000)
    window: Duration = Field(default=600.0, gt=0)


class ApprovalConfig(Strict):
    """Actions that wait for a person: by incident severity or by action name."""

    severities: list[Severity] = Field(default_factory=list)
    actions: list[Annotated[str, Field(pattern=ACTION_NAME)]] = Field(default_factory=list)
    timeout: Duration = Field(default=600.0, gt=0)


class BackoffConfig(Strict):
    """Repeated restarts of one service wait longer each time (as Kubernetes does)."""

    initial: Duration = Field(default=10.0, ge=0)
    max: Duration = Field(default=300.0, ge=0)
    reset_after: Duration = Field(default=600.0, gt=0)


class TenantPolicies(Strict):
    """The guard rails a tenant may set for its own services (config file ``tenants.T.policies``
    or ``PUT /api/tenant/policies``); unset values keep the operator's."""

    dry_run: bool | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    verify_timeout: Duration | None = Field(default=None, gt=0)
    max_actions_per_service_per_hour: int | None = Field(default=None, ge=1, le=100_000)
    breaker: BreakerConfig | None = None
    approval: ApprovalConfig | None = None
    grace: Duration | None = None


class PoliciesConfig(TenantPolicies):
    """Guard rails on automation. Unset values keep the environment's defaults.

    The fields of ``TenantPolicies`` are defaults a tenant may override; the rest
    act on the whole agent (shared slots, detection, grouping) and stay the operator's.
    """

    cooldown: Duration | None = None
    max_concurrent_actions: int | None = Field(default=None, ge=1)
    max_fleet_fraction: float | None = Field(default=None, gt=0, le=1)
    flapping: FlappingConfig | None = None
    restart_backoff: BackoffConfig | None = None
    group_window: Duration | None = Field(default=None, ge=0)
    escalate_severity_after: Duration | None = Field(default=None, gt=0)
    auto_thresholds: bool | None = None  # apply thresholds suggested by learned baselines


class SilenceMatchers(Strict):
    """Which incidents a silence covers: a service id, and/or every one of some tags."""

    service_id: str | None = Field(default=None, pattern=_SERVICE_ID)
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_everything(self) -> SilenceMatchers:
        if self.service_id is None and not self.tags:
            raise ValueError("a silence needs a service_id or tags to match")
        return self


class SilenceConfig(Strict):
    """A silence or maintenance window: matching incidents are recorded, not acted on."""

    matchers: SilenceMatchers
    tenant: str | None = Field(default=None, pattern=_SERVICE_ID)  # left out: the default
    starts_at: datetime | None = None
    ends_at: datetime
    comment: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _ordered(self) -> SilenceConfig:
        for name in ("starts_at", "ends_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=UTC))
        if self.starts_at is not None and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self


class TenantQuotas(Strict):
    """Limits on one tenant's use of the agent; unset means no limit."""

    max_services: int | None = Field(default=None, ge=0, le=10_000_000)
    requests_per_second: float | None = Field(default=None, ge=0.01, le=100_000)


class TenantConfig(TenantQuotas):
    """What the operator grants one tenant (its keys cannot change the outbound networks).

    ``policies`` are the tenant's defaults, which an admin key of the tenant may
    change through the API; the quotas are limits the API may only lower.
    """

    # loopback and private networks the tenant's services may be probed and called on
    outbound_allow: list[str] = Field(default_factory=list)
    policies: TenantPolicies = Field(default_factory=TenantPolicies)

    @field_validator("outbound_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [str(net) for net in parse_networks(value)]


class FileConfig(Strict):
    """The whole config file."""

    services: list[ServiceConfig] = Field(default_factory=list)
    tenants: dict[Annotated[str, Field(pattern=_SERVICE_ID)], TenantConfig] = Field(
        default_factory=dict
    )
    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    catalog: list[CatalogEntryConfig] = Field(default_factory=list)
    notifications: list[NotificationConfig] = Field(default_factory=list)
    silences: list[SilenceConfig] = Field(default_factory=list)
    # where it was read from, so later checks (plugin options) can name file and line
    _source: str = PrivateAttr(default="<config>")
    _root: Any = PrivateAttr(default=None)

    def error_at(self, loc: tuple[str | int, ...], message: str) -> ConfigError:
        """A ``ConfigError`` naming the file, the line and the field at ``loc``."""
        return ConfigError(f"{self._source}:{line_of(self._root, loc)}: {dotted(loc)}: {message}")

    def validate_at(self, loc: tuple[str | int, ...], model: type[M], data: Any) -> M:
        """Validate ``data`` (found at ``loc``) with a plugin's model; errors name the line."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = [
                f"{self._source}:{line_of(self._root, (*loc, *err['loc']))}: "
                f"{dotted((*loc, *err['loc']))}: {error_message(err)}"
                for err in exc.errors()
            ]
            raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None

    @field_validator("services")
    @classmethod
    def _unique_ids(cls, services: list[ServiceConfig]) -> list[ServiceConfig]:
        seen: set[tuple[str, str]] = set()
        for svc in services:
            if (svc.tenant_id, svc.id) in seen:
                raise ValueError(f"service id {svc.id!r} appears twice in tenant {svc.tenant_id!r}")
            seen.add((svc.tenant_id, svc.id))
        return services

    @field_validator("notifications")
    @classmethod
    def _unique_names(cls, channels: list[NotificationConfig]) -> list[NotificationConfig]:
        seen: set[tuple[str, str]] = set()
        for channel in channels:
            if (channel.tenant_id, channel.name) in seen:
                raise ValueError(
                    f"channel name {channel.name!r} appears twice in tenant {channel.tenant_id!r}"
                )
            seen.add((channel.tenant_id, channel.name))
        return channels

    def named_tenants(self) -> set[str]:
        """Every tenant the file names (a service, channel, catalog entry, silence, section)."""
        named = {t or DEFAULT_TENANT for t in self._tenant_fields()} | set(self.tenants)
        return named | {DEFAULT_TENANT}

    def _tenant_fields(self) -> list[str | None]:
        sections: list[list[Any]] = [self.services, self.notifications, self.catalog]
        return [item.tenant for section in sections for item in section] + [
            s.tenant for s in self.silences
        ]

    def tenant(self, tenant_id: str) -> TenantConfig:
        """What the file says about one tenant (empty if it names none)."""
        return self.tenants.get(tenant_id) or TenantConfig()


def check_target(check: dict[str, Any]) -> str:
    """A short text naming what a plugin check probes (``tcp:127.0.0.1:5432``)."""
    shown = [str(v) for k, v in check.items() if k != "type" and isinstance(v, str | int)]
    return f"{check['type']}:{' '.join(shown)}"[:2048]


def load_config_file(path: Path) -> FileConfig:
    """Read, expand ``${VAR}`` references in, and validate a config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "<config>") -> FileConfig:
    """Validate config text; errors carry ``source:line: field: problem``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        return FileConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the config must be a mapping with keys like 'services:'")
    try:
        data = expand_env(data, path=())
        config = FileConfig.model_validate(data)
        config._source, config._root = source, root
        return config
    except MissingEnvError as exc:
        line = line_of(root, exc.path)
        raise ConfigError(
            f"{source}:{line}: {dotted(exc.path)}: environment variable {exc.name} is not set "
            f"(set it, or write ${{{exc.name}:-default}})"
        ) from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not is_union_tag(p))
            problems.append(f"{source}:{line_of(root, loc)}: {dotted(loc)}: {error_message(err)}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None
