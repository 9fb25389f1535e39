"""Where the Temporal service is and how to talk to it: the URL, options and the environment.

``temporal://HOST:PORT/NAMESPACE?task_queue=Q&...`` names the service, the namespace and the task
queue. Every setting can also come from a keyword option or from the environment variables the
Temporal CLI reads; the order is option, then URL, then environment, then default. Secrets (the
API key, the TLS private key) are accepted from options and the environment only, never from the
URL, and never appear in a ``repr``, a log line or an error message.

==========================  ===========================  =========================================
setting                     URL query / option           environment
==========================  ===========================  =========================================
address                     ``HOST:PORT`` of the URL     ``TEMPORAL_ADDRESS`` (``127.0.0.1:7233``)
namespace                   the URL path                 ``TEMPORAL_NAMESPACE`` (``default``)
task queue                  ``task_queue``               ``MAI_TEMPORAL_TASK_QUEUE`` (``mai``)
TLS on                      ``tls=1``                    ``TEMPORAL_TLS`` (on when files are given)
server CA file              ``tls_ca`` option            ``TEMPORAL_TLS_CA_CERT``
client cert / key (mTLS)    ``tls_cert`` / ``tls_key``   ``TEMPORAL_TLS_CLIENT_CERT_PATH`` /
                                                         ``TEMPORAL_TLS_CLIENT_KEY_PATH``
TLS server name             ``tls_server_name``          ``TEMPORAL_TLS_SERVER_NAME``
API key                     ``api_key`` option           ``TEMPORAL_API_KEY``
activity heartbeat timeout  ``heartbeat`` (seconds, 10)
activity start-to-close     ``attempt_timeout`` (600)
pending activities per run  ``max_pending`` (200)
worker sticky timeout       ``sticky_timeout`` (1)
workflow task timeout       ``task_timeout`` (10)
activity bodies run under   ``activity_runner``          ``MAI_TEMPORAL_ACTIVITY_RUNNER``
                            (``asyncio`` or ``trio``)    (``asyncio``)
==========================  ===========================  =========================================
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mai import ConfigError

_SECRET_QUERY = {"api_key", "tls_key", "password", "token"}
_QUERY_KEYS = {
    "task_queue",
    "tls",
    "tls_ca",
    "tls_cert",
    "tls_server_name",
    "heartbeat",
    "attempt_timeout",
    "max_pending",
    "sticky_timeout",
    "task_timeout",
    "activity_runner",
}
#: The event loops a worker can run activity bodies on.
RUNNERS = ("asyncio", "trio")


@dataclass(frozen=True)
class TemporalOptions:
    """How to reach Temporal and how runs are executed there (see the module's table).

    Attributes:
        address: ``host:port`` of the Temporal frontend.
        namespace: The Temporal namespace.
        task_queue: The task queue workflows and activities run on.
        tls: Whether to connect with TLS.
        tls_ca: Path of the server's root CA certificate (PEM).
        tls_cert: Path of the client certificate for mTLS (PEM).
        tls_key: Path of the client private key for mTLS (PEM); never shown.
        tls_server_name: Name to verify the server certificate against.
        api_key: API key sent with every request; never shown.
        heartbeat: Seconds an activity may go without a heartbeat before Temporal deems its
            worker lost and runs it again elsewhere.
        attempt_timeout: Seconds one activity attempt may run at most (start-to-close).
        max_pending: Activities one run keeps scheduled at once (Temporal allows 2,000). It also
            bounds the work of one workflow activation, which Temporal fails after 2 s.
        sticky_timeout: Seconds a workflow task waits for the worker that holds the run in its
            cache before any worker may take it (how fast a run moves on after a worker died).
        task_timeout: Seconds one workflow task may take (Temporal's default, 10). A worker that
            lost a run from its cache replays the run's whole history within one task: raise
            it for runs with thousands of steps on a loaded machine, where that replay can take
            longer (a task that times out is retried, and would time out again).
        activity_runner: Where a worker runs leaf bodies (activities): ``"asyncio"`` (on the
            worker's event loop) or ``"trio"`` (each attempt under ``trio.run`` in a thread of
            the worker's own; heartbeats and cancellation work as on asyncio).
    """

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "mai"
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = field(default=None, repr=False)
    tls_server_name: str | None = None
    api_key: str | None = field(default=None, repr=False)
    heartbeat: float = 10.0
    attempt_timeout: float = 600.0
    max_pending: int = 200
    sticky_timeout: float = 1.0
    task_timeout: float = 10.0
    activity_runner: str = "asyncio"

    def __repr__(self) -> str:
        """Show where, never the secrets."""
        shown = [
            f"address={self.address!r}",
            f"namespace={self.namespace!r}",
            f"task_queue={self.task_queue!r}",
        ]
        if self.tls:
            shown.append("tls=True")
        if self.api_key:
            shown.append("api_key=<hidden>")
        return f"TemporalOptions({', '.join(shown)})"

    @property
    def url(self) -> str:
        """The ``temporal://`` URL of these options (no secrets in it)."""
        return f"temporal://{self.address}/{self.namespace}?task_queue={self.task_queue}"

    def tls_config(self) -> Any:
        """The ``temporalio`` TLS setting: ``False``, ``True`` or a ``TLSConfig`` with the files."""
        if not (self.tls or self.tls_ca or self.tls_cert or self.tls_key):
            return False
        if not (self.tls_ca or self.tls_cert or self.tls_key or self.tls_server_name):
            return True
        from temporalio.service import TLSConfig  # noqa: PLC0415

        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(
                "temporal: mTLS needs both a client certificate and its private key "
                "(tls_cert and tls_key, or TEMPORAL_TLS_CLIENT_CERT_PATH and "
                "TEMPORAL_TLS_CLIENT_KEY_PATH)"
            )
        return TLSConfig(
            server_root_ca_cert=_read(self.tls_ca, "tls_ca"),
            client_cert=_read(self.tls_cert, "tls_cert"),
            client_private_key=_read(self.tls_key, "tls_key"),
            domain=self.tls_server_name,
        )


def _read(path: str | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"temporal: cannot read the {what} file {path!r}: {exc.strerror}", key=what
        ) from None


def _number(value: Any, key: str, kind: type) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number <= 0:
        raise ConfigError(
            f"temporal: {key} expects a positive number, received {value!r}", key=key
        ) from None
    return number


def parse_options(url: str | None = None, **options: Any) -> TemporalOptions:
    """Build :class:`TemporalOptions` from a ``temporal://`` URL, options and the environment.

    Raises:
        ConfigError: (a ``TypeError``) for another scheme, an unknown option or query key, a
            secret in the URL, or a value of the wrong kind; the message names it.
    """
    env = os.environ
    values: dict[str, Any] = {}
    if url:
        parts = urlsplit(url)
        if parts.scheme.lower() != "temporal":
            raise ConfigError(
                f"temporal: expected a temporal:// URL, received scheme {parts.scheme!r}"
            )
        if parts.username or parts.password:
            raise ConfigError(
                "temporal: do not put credentials in the URL; pass api_key= or set TEMPORAL_API_KEY"
            )
        if parts.netloc:
            values["address"] = parts.netloc
        namespace = parts.path.strip("/")
        if namespace:
            values["namespace"] = namespace
        for key, items in parse_qs(parts.query, keep_blank_values=True).items():
            if key in _SECRET_QUERY:
                raise ConfigError(
                    f"temporal: {key} must not be in the URL (URLs get printed and logged); pass "
                    f"it as an option or in the environment",
                    key=key,
                )
            if key not in _QUERY_KEYS:
                raise ConfigError(
                    f"temporal: unknown URL parameter {key!r}; valid: "
                    f"{', '.join(sorted(_QUERY_KEYS))}",
                    key=key,
                )
            values[key] = items[-1]
    fields = {f.name for f in dataclasses.fields(TemporalOptions)}
    for key, value in options.items():
        if key not in fields:
            raise ConfigError(
                f"temporal: unknown option {key!r}; valid: {', '.join(sorted(fields))}", key=key
            )
        if value is not None:
            values[key] = value
    from_env = {
        "address": "TEMPORAL_ADDRESS",
        "namespace": "TEMPORAL_NAMESPACE",
        "task_queue": "MAI_TEMPORAL_TASK_QUEUE",
        "tls": "TEMPORAL_TLS",
        "tls_ca": "TEMPORAL_TLS_CA_CERT",
        "tls_cert": "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "tls_key": "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "tls_server_name": "TEMPORAL_TLS_SERVER_NAME",
        "api_key": "TEMPORAL_API_KEY",
        "activity_runner": "MAI_TEMPORAL_ACTIVITY_RUNNER",
    }
    for key, var in from_env.items():
        if key not in values and env.get(var):
            values[key] = env[var]
    if "tls" in values and not isinstance(values["tls"], bool):
        values["tls"] = str(values["tls"]).lower() in {"1", "true", "yes", "on"}
    for key in ("heartbeat", "attempt_timeout", "sticky_timeout", "task_timeout"):
        if key in values:
            values[key] = _number(values[key], key, float)
    if "activity_runner" in values:
        runner = str(values["activity_runner"]).strip().lower()
        if runner not in RUNNERS:
            raise ConfigError(
                f"temporal: activity_runner expects one of {', '.join(RUNNERS)}, received "
                f"{values['activity_runner']!r}",
                key="activity_runner",
            )
        values["activity_runner"] = runner
    if "max_pending" in values:
        values["max_pending"] = min(_number(values["max_pending"], "max_pending", int), 2000)
    return TemporalOptions(**values)
