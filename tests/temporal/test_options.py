"""temporal:// URLs, options and the environment; secrets never shown."""

from __future__ import annotations

import pytest

import mai

options_mod = pytest.importorskip("mai_temporal")


def test_url_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL names address, namespace and queue; the environment fills in the rest."""
    monkeypatch.setenv("TEMPORAL_API_KEY", "sekrit-key")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "ignored-because-the-url-says")
    o = options_mod.parse_options("temporal://h:7000/prod?task_queue=orders&heartbeat=3")
    assert (o.address, o.namespace, o.task_queue, o.heartbeat) == ("h:7000", "prod", "orders", 3.0)
    assert o.api_key == "sekrit-key"
    assert "sekrit" not in repr(o)
    assert "sekrit" not in o.url
    assert "api_key=<hidden>" in repr(o)


def test_secrets_in_the_url_are_refused() -> None:
    """An API key or a password in the URL is refused (URLs get printed)."""
    with pytest.raises(mai.ConfigError, match="must not be in the URL"):
        options_mod.parse_options("temporal://h:1/ns?api_key=abc")
    with pytest.raises(mai.ConfigError, match="credentials"):
        options_mod.parse_options("temporal://user:pw@h:1/ns")
    with pytest.raises(mai.ConfigError, match="unknown URL parameter 'colour'"):
        options_mod.parse_options("temporal://h:1/ns?colour=red")


def test_mtls_needs_both_files_and_readable_ones(tmp_path: object) -> None:
    """mTLS with a certificate but no key, or an unreadable file, is a clear error."""
    with pytest.raises(mai.ConfigError, match="both a client certificate"):
        options_mod.parse_options("temporal://h:1/ns", tls_cert="/c.pem").tls_config()
    with pytest.raises(mai.ConfigError, match="cannot read the tls_ca file"):
        options_mod.parse_options("temporal://h:1/ns", tls_ca="/nope/ca.pem").tls_config()


def test_runtime_on_a_temporal_url_is_the_temporal_runtime() -> None:
    """mai.Runtime on a temporal:// URL returns the plugin's runtime (an entry point)."""
    rt = mai.Runtime("temporal://127.0.0.1:1/default?task_queue=x", api_key="k")
    assert isinstance(rt, options_mod.TemporalRuntime)
    assert "k'" not in repr(rt)


async def test_task_timeout_is_the_workflows_task_timeout(rt: object) -> None:
    """task_timeout (URL or option) becomes the run's workflow task timeout on Temporal."""
    assert options_mod.parse_options("temporal://h:1/ns?task_timeout=45").task_timeout == 45.0
    with pytest.raises(mai.ConfigError, match="task_timeout expects a positive number"):
        options_mod.parse_options(task_timeout=0)
    import temporal_flows as f

    async with mai.Runtime(rt.url, task_timeout=33, worker=True) as other:  # type: ignore[attr-defined]
        await (await other.start(f.double, 1, run_id="task-timeout")).result()
        desc = await other._call(other.client.get_workflow_handle("task-timeout").describe())
    assert desc.raw_description.execution_config.default_workflow_task_timeout.seconds == 33


def test_the_dev_server_starts_again_when_a_chosen_port_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A port taken between choosing and binding it: the dev server restarts on fresh ports."""
    import socket

    import mai_temporal.testing as t

    if t.find_cli() is None:
        pytest.skip("the Temporal CLI is missing (MAI_REQUIRE_TEMPORAL fails the session)")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        real = t.free_port
        picks = iter([taken])  # the first attempt's HTTP port is one somebody holds

        def pick() -> int:
            return next(picks, None) or real()

        server = t.DevServer()
        monkeypatch.setattr(t, "free_port", pick)
        try:
            server.start()
            assert server.pid is not None
        finally:
            server.stop()
    assert next(picks, None) is None  # the taken port was tried (and refused) first
