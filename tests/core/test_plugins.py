"""The plugin registry: entry points found lazily, validated, listed; code registration too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import types
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import mai
from mai import PluginWarning
from mai._casting import Caster
from mai.core import plugins as registry

HERE = Path(__file__).resolve().parent
TESTPLUGIN = HERE.parent / "plugins" / "mai-testplugin"


# -- fixtures -------------------------------------------------------------------------------------


@dataclass
class _Dist:
    name: str
    version: str


@pytest.fixture
def entry_points(monkeypatch):
    """A fresh, undiscovered registry whose entry points the test declares (group -> list)."""
    from mai import _casting, _seam

    saved = (
        set(registry._discovered),
        dict(registry._infos),
        dict(registry._tracers),
        dict(registry._casters),
        dict(registry._stores),
        _casting._adapters,
        list(_seam._global_interceptors),
    )
    for name in list(registry._tracers):
        registry._drop(registry.TRACERS, name)
    registry._discovered.clear()
    registry._infos.clear()
    registry._casters.clear()
    registry._stores.clear()
    _casting._adapters = {}
    registry._install_pending_table()
    declared: dict[str, list[EntryPoint]] = {}
    monkeypatch.setattr(registry, "_entry_points", lambda group: list(declared.get(group, [])))
    yield declared
    for name in list(registry._tracers):
        registry._drop(registry.TRACERS, name)
    (discovered, infos, tracers, casters, stores, adapters, interceptors) = saved
    registry._discovered.clear()
    registry._discovered.update(discovered)
    registry._infos.clear()
    registry._infos.update(infos)
    registry._tracers.clear()
    registry._tracers.update(tracers)
    registry._casters.clear()
    registry._casters.update(casters)
    registry._stores.clear()
    registry._stores.update(stores)
    _casting._adapters = adapters
    _seam._global_interceptors[:] = interceptors


@pytest.fixture
def fake_module(monkeypatch):
    """An importable module ``fake_plugins`` holding the objects the entry points name."""
    mod = types.ModuleType("fake_plugins")
    monkeypatch.setitem(sys.modules, "fake_plugins", mod)
    return mod


def _ep(group: str, name: str, value: str, dist: str = "acme-plugins", version: str = "1.2"):
    return EntryPoint(name, value, group)._for(_Dist(dist, version))


class Document:
    """A user type pydantic cannot build from a str."""

    def __init__(self, text: str) -> None:
        self.text = text


class Seen:
    """A tracer that records module names; also usable as a factory's product."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, call, proceed):
        self.names.append(call.name)
        return await proceed()


@mai.module
async def shout(text: str) -> str:
    """Upper-case."""
    return text.upper()


@mai.module
async def read(doc: Document) -> str:
    """Take a Document."""
    return doc.text


@mai.module
async def number(n: int) -> int:
    """Take an int."""
    return n


# -- casting adapters -----------------------------------------------------------------------------


async def test_a_registered_caster_lets_a_sequential_feed_str_into_document(entry_points):
    """Sequential(str-returning, Document-taking) works once an adapter str -> Document exists."""
    pipeline = shout >> read
    with pytest.raises(mai.CastError, match="parameter 'doc' expects Document"):
        await pipeline("hi")
    mai.register_caster(str, Document, Document)
    assert await pipeline("hi") == "HI"
    assert mai.unregister_caster(str, Document)
    assert not mai.unregister_caster(str, Document)
    with pytest.raises(mai.CastError):
        await pipeline("hi")


async def test_precedence_is_exact_type_then_adapter_then_pydantic(entry_points):
    """An exact-type value passes untouched; an exact adapter beats pydantic; pydantic is last."""
    calls = []

    def count_chars(text: str) -> int:
        calls.append(text)
        return len(text)

    assert await number("12") == 12  # pydantic parses the string
    mai.register_caster(str, number.output_type, count_chars)
    assert await number("12") == 2  # the exact (str, int) adapter wins over pydantic
    assert await number(7) == 7  # already an int: no adapter, no pydantic
    assert await number(3.0) == 3  # (float, int) has no adapter: pydantic
    assert calls == ["12"]
    mai.unregister_caster(str, int)


async def test_a_failing_adapter_is_a_cast_error_naming_the_module(entry_points):
    """An exception in an adapter becomes a CastError naming the module and the parameter."""

    def refuse(text: str) -> Document:
        raise ValueError("empty text")

    mai.register_caster(str, Document, refuse)
    with pytest.raises(mai.CastError, match=r"module 'read': parameter 'doc'.*empty text"):
        await read("")
    mai.unregister_caster(str, Document)


def test_register_caster_validates_its_arguments(entry_points):
    """register_caster refuses a non-class source or a non-callable function, with TypeError."""
    with pytest.raises(TypeError, match="source type must be a class"):
        mai.register_caster("str", Document, Document)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be callable"):
        mai.register_caster(str, Document, 3)  # type: ignore[arg-type]


# -- tracers ---------------------------------------------------------------------------------------


async def test_registered_tracers_see_every_call_until_unregistered(entry_points):
    """A tracer registered in code (interceptor or factory) wraps every call of later runs."""
    seen = Seen()
    mai.register_tracer("seen", seen)
    made: list[Seen] = []

    def factory() -> Seen:
        made.append(Seen())
        return made[-1]

    mai.register_tracer("made", factory)
    await (shout >> shout)("a")
    assert seen.names == ["Sequential", "shout", "shout"]
    assert made[0].names == seen.names
    assert mai.unregister_tracer("seen")
    assert not mai.unregister_tracer("seen")
    await shout("a")
    assert seen.names == ["Sequential", "shout", "shout"]
    assert made[0].names[-1] == "shout"
    mai.unregister_tracer("made")


def test_register_tracer_refuses_what_is_not_an_interceptor(entry_points):
    """A sync callable, a wrong signature or a factory returning junk is refused with TypeError."""

    def sync(call, proceed):
        return proceed()

    async def one_arg(call):
        return None

    with pytest.raises(TypeError, match="calling it as a factory with no arguments failed"):
        mai.register_tracer("sync", sync)
    with pytest.raises(TypeError, match="calling it as a factory"):
        mai.register_tracer("one", one_arg)
    with pytest.raises(TypeError, match="the factory returned 42"):
        mai.register_tracer("junk", lambda: 42)
    with pytest.raises(TypeError, match="expected an interceptor"):
        mai.register_tracer("num", 3)  # type: ignore[arg-type]
    assert mai.plugins("mai.tracers") == []


# -- stores ----------------------------------------------------------------------------------------


def test_stores_are_looked_up_by_url_scheme(entry_points):
    """store_factory finds the factory by scheme or whole URL; unknown schemes give None."""

    def open_mem(url: str) -> dict:
        return {"url": url}

    mai.register_store("Mem", open_mem)
    assert mai.store_factory("mem") is open_mem
    assert mai.store_factory("mem://x/y")("mem://x/y") == {"url": "mem://x/y"}
    assert mai.store_factory("nope://") is None
    assert mai.unregister_store("mem")
    assert mai.store_factory("mem") is None
    with pytest.raises(ValueError, match="bare URL scheme"):
        mai.register_store("mem://", open_mem)
    with pytest.raises(TypeError, match="must be callable"):
        mai.register_store("mem", "not callable")  # type: ignore[arg-type]


# -- discovery -------------------------------------------------------------------------------------


def test_entry_points_are_discovered_validated_and_listed(entry_points, fake_module):
    """Each group's entry points load once; good ones work, broken ones warn and are listed."""
    fake_module.Tracer = Seen
    fake_module.CASTER = (str, Document, Document)
    fake_module.open_store = lambda url: url
    fake_module.BAD_CASTER = (str, Document)
    fake_module.NOT_CALLABLE = "x"
    entry_points["mai.tracers"] = [_ep("mai.tracers", "seen", "fake_plugins:Tracer")]
    entry_points["mai.casters"] = [
        _ep("mai.casters", "doc", "fake_plugins:CASTER"),
        _ep("mai.casters", "bad", "fake_plugins:BAD_CASTER", dist="broken-dist", version="0.1"),
        _ep("mai.casters", "gone", "fake_plugins_missing:thing", dist="broken-dist", version="0.1"),
    ]
    entry_points["mai.stores"] = [
        _ep("mai.stores", "fake", "fake_plugins:open_store"),
        _ep("mai.stores", "junk", "fake_plugins:NOT_CALLABLE"),
    ]
    with pytest.warns(PluginWarning) as caught:
        found = mai.plugins()
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert messages[0].startswith(
        "mai: skipping plugin 'bad' (entry point 'fake_plugins:BAD_CASTER' in group "
        "'mai.casters', distribution broken-dist 0.1): it does not satisfy the mai.casters "
        "protocol: expected a (source, target, fn) tuple, found 2 items"
    )
    assert "'gone'" in messages[1]
    assert "ModuleNotFoundError" in messages[1]
    assert "'junk'" in messages[2]
    assert [(i.group, i.name, i.status, i.distribution) for i in found] == [
        ("mai.tracers", "seen", "ok", "acme-plugins"),
        ("mai.casters", "bad", "broken", "broken-dist"),
        ("mai.casters", "doc", "ok", "acme-plugins"),
        ("mai.casters", "gone", "broken", "broken-dist"),
        ("mai.stores", "fake", "ok", "acme-plugins"),
        ("mai.stores", "junk", "broken", "acme-plugins"),
    ]
    assert found[0].version == "1.2"
    assert found[0].value == "fake_plugins:Tracer"
    assert found[0].origin == "entry point"
    assert found[1].reason is not None
    assert mai.plugins() == found  # discovered once: no second round of warnings
    assert mai.plugins("mai.stores") == found[-2:]
    assert mai.store_factory("fake")("u") == "u"
    with pytest.raises(ValueError, match=r"unknown plugin group 'mai\.nope'"):
        mai.plugins("mai.nope")


async def test_discovery_is_lazy_and_happens_on_first_use(entry_points, fake_module):
    """Tracers are found by the first run, casters by the first cast that needs an adapter."""
    seen = Seen()
    fake_module.seen = seen
    fake_module.CASTER = (str, Document, Document)
    entry_points["mai.tracers"] = [_ep("mai.tracers", "seen", "fake_plugins:seen")]
    entry_points["mai.casters"] = [_ep("mai.casters", "doc", "fake_plugins:CASTER")]
    assert registry._discovered == set()
    assert await number(1) == 1  # the first run discovers tracers (an exact int needs no cast)
    assert registry._discovered == {"mai.tracers"}
    assert seen.names == ["number"]  # ... and the tracer already wraps that first run
    assert await read("text") == "text"  # this cast needs an adapter: casters are discovered
    assert registry._discovered == {"mai.tracers", "mai.casters"}
    from mai import _casting

    assert type(_casting._adapters) is dict  # the stand-in table is gone: casts pay nothing more


def test_a_thread_needing_a_group_waits_for_its_discovery(entry_points, fake_module, monkeypatch):
    """A cast in a second thread waits while the first thread loads mai.casters, then uses it."""
    fake_module.CASTER = (str, Document, Document)
    loading, release = threading.Event(), threading.Event()

    def slow(group):
        if group != "mai.casters":
            return []
        loading.set()
        assert release.wait(5)
        return [_ep("mai.casters", "doc", "fake_plugins:CASTER")]

    monkeypatch.setattr(registry, "_entry_points", slow)
    texts: list[str] = []

    def cast(text: str) -> None:
        texts.append(Caster(Document).cast(text, "m", "p").text)

    first = threading.Thread(target=cast, args=("first",))
    first.start()
    assert loading.wait(5)
    second = threading.Thread(target=cast, args=("second",))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # blocked on the registry lock, not answered from a half-loaded group
    release.set()
    first.join(5)
    second.join(5)
    assert sorted(texts) == ["first", "second"]


def test_a_plugin_registered_in_code_wins_over_an_entry_point(entry_points, fake_module):
    """Code registration takes precedence over an entry point of the same name."""
    fake_module.open_store = lambda url: "from the entry point"
    entry_points["mai.stores"] = [_ep("mai.stores", "db", "fake_plugins:open_store")]
    mai.register_store("db", lambda url: "from code")
    assert mai.store_factory("db")("x") == "from code"
    (info,) = mai.plugins("mai.stores")
    assert (info.origin, info.distribution, info.version) == ("code", None, None)
    assert info.value.endswith(
        ":test_a_plugin_registered_in_code_wins_over_an_entry_point.<locals>.<lambda>"
    )


def test_a_caster_registered_in_code_wins_over_a_plugin_for_the_same_types(
    entry_points, fake_module
):
    """When code and a plugin both convert (str, Document), the code's function is used."""
    fake_module.CASTER = (str, Document, lambda s: Document("plugin"))
    entry_points["mai.casters"] = [_ep("mai.casters", "doc", "fake_plugins:CASTER")]
    mai.register_caster(str, Document, lambda s: Document("code"))
    assert Caster(Document).cast("x", "m", "p").text == "code"


def test_two_distributions_claiming_one_name_keep_the_first(entry_points, fake_module):
    """A second entry point with a name already taken is skipped with a warning naming both."""
    fake_module.a = lambda url: "a"
    fake_module.b = lambda url: "b"
    entry_points["mai.stores"] = [
        _ep("mai.stores", "db", "fake_plugins:a", dist="first"),
        _ep("mai.stores", "db", "fake_plugins:b", dist="second"),
    ]
    with pytest.warns(PluginWarning, match="already provided by distribution first"):
        assert mai.store_factory("db")("x") == "a"


def test_unregistering_a_plugin_keeps_it_away(entry_points, fake_module):
    """Unregistering discovers the group first, so the plugin does not come back later."""
    fake_module.a = lambda url: "a"
    entry_points["mai.stores"] = [_ep("mai.stores", "db", "fake_plugins:a")]
    assert mai.unregister_store("db")
    assert mai.store_factory("db") is None
    assert mai.plugins() == []


def test_unreadable_metadata_is_a_warning(entry_points, monkeypatch):
    """An error while reading entry points is reported as a PluginWarning, not raised."""

    def broken(group):
        raise OSError("metadata unreadable")

    monkeypatch.setattr(registry, "_entry_points", broken)
    with pytest.warns(PluginWarning, match="metadata unreadable"):
        assert mai.store_factory("x") is None


def test_a_caster_object_with_source_and_target_is_accepted(entry_points, fake_module):
    """A caster plugin may be an object with source and target attributes that is callable."""

    class ToDocument:
        source = str
        target = Document

        def __call__(self, value):
            return Document(value)

    fake_module.obj = ToDocument()
    fake_module.half = types.SimpleNamespace(source=str)
    entry_points["mai.casters"] = [
        _ep("mai.casters", "obj", "fake_plugins:obj"),
        _ep("mai.casters", "half", "fake_plugins:half"),
    ]
    with pytest.warns(PluginWarning, match="with source and target attributes"):
        assert Caster(Document).cast("x", "m", "p").text == "x"


# -- a real distribution ---------------------------------------------------------------------------

_CHECK = """
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import mai
    import_warnings = len(caught)
    from mai_testplugin import SEEN, Document

    @mai.module
    async def shout(text: str) -> str:
        return text.upper()

    @mai.module
    async def words(doc: Document) -> int:
        return doc.words

    result = mai.run(shout >> words, "no registration code here")
    store = mai.store_factory("testmem://bucket")("testmem://bucket")
    infos = [
        [i.group, i.name, i.status, i.distribution, i.version, i.origin]
        for i in mai.plugins()
    ]
print(json.dumps({
    "import_warnings": import_warnings,
    "result": result,
    "seen": SEEN,
    "store": [type(store).__name__, store.url],
    "plugins": infos,
    "warnings": [(w.category.__name__, str(w.message)) for w in caught],
}))
"""


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """The test plugin distribution, really installed (pip --target) into a temporary folder."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(TESTPLUGIN),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("mai_testplugin-0.3.1.dist-info"))
    return target


def _python(site: Path, code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_an_installed_distribution_is_found_without_registration_code(installed_plugin):
    """After pip installs the plugin, its tracer, caster and store work with no code at all."""
    proc = _python(installed_plugin, _CHECK)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # other installed plugin distributions (e.g. mai-postgres) are not this test's business
    out["plugins"] = [p for p in out["plugins"] if p[3] == "mai-testplugin"]
    assert out["import_warnings"] == 0
    assert out["result"] == 4  # "NO REGISTRATION CODE HERE" became a Document of 4 words
    assert out["seen"] == [["Sequential", "1"], ["shout", "1.1"], ["words", "1.2"]]
    assert out["store"] == ["DictStore", "testmem://bucket"]
    dist = ["mai-testplugin", "0.3.1", "entry point"]
    assert [p[:3] for p in out["plugins"]] == [
        ["mai.tracers", "counting", "ok"],
        ["mai.tracers", "not_a_tracer", "broken"],
        ["mai.casters", "missing", "broken"],
        ["mai.casters", "str_to_document", "ok"],
        ["mai.stores", "testmem", "ok"],
    ]
    assert all(p[3:] == dist for p in out["plugins"])
    warned = sorted(msg for cat, msg in out["warnings"] if cat == "PluginWarning")
    assert len(warned) == 2
    assert "'missing'" in warned[0]
    assert "'not_a_tracer'" in warned[1]
    assert all("distribution mai-testplugin 0.3.1" in msg for msg in warned)


def test_a_broken_plugin_never_breaks_import_mai(installed_plugin):
    """import mai reads no plugin metadata: even with warnings as errors it cannot fail."""
    proc = _python(
        installed_plugin,
        "import mai, sys; print(sorted(mai.core.plugins._discovered))",
        "-W",
        "error",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


_UNDECLARED_RUN = """
import sys, trio, mai

@mai.module
async def one(x: int) -> int:
    return x + 1

assert trio.run(one, 1) == 2
assert "mai.tracers" in mai.core.plugins._discovered
print("importlib.metadata" in sys.modules)
"""


def test_a_group_no_distribution_declares_costs_no_metadata_parsing(tmp_path):
    """A first run discovers mai.tracers; with none declared, importlib.metadata never loads."""
    proc = _python(tmp_path, _UNDECLARED_RUN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_a_declared_group_is_read_through_importlib_metadata(installed_plugin):
    """With a distribution declaring mai.tracers on the path, discovery parses the metadata."""
    proc = _python(installed_plugin, _UNDECLARED_RUN)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def _dist_info(site: Path, name: str, text: str) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(text)


def test_the_declaration_scan_sees_a_distribution_installed_later(tmp_path, monkeypatch):
    """The scan is cached per directory but a distribution added afterwards is seen."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert not registry._may_declare("mai.example")
    _dist_info(site, "late-plugin", "[mai.example]\nthing = late_plugin:thing\n")
    os.utime(site, ns=(0, site.stat().st_mtime_ns + 1_000_000))  # same-tick writes
    assert registry._may_declare("mai.example")
    assert [ep.name for ep in registry._entry_points("mai.example")] == ["thing"]


def test_what_the_scan_cannot_read_is_left_to_importlib_metadata(tmp_path, monkeypatch):
    """A zip or an egg on sys.path, or a custom distribution finder: the scan answers maybe."""
    assert not registry._may_declare("mai.nobody")
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    with monkeypatch.context() as m:
        m.syspath_prepend(str(archive))
        assert registry._may_declare("mai.nobody")
    with monkeypatch.context() as m:
        m.syspath_prepend(str(tmp_path / "old.egg"))
        assert registry._may_declare("mai.nobody")

    class Finder:
        """A meta-path finder that also provides distributions."""

        def find_spec(self, *args: object) -> None:
            return None

        def find_distributions(self, *args: object) -> list[object]:
            return []

    with monkeypatch.context() as m:
        m.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
        assert registry._may_declare("mai.nobody")


def test_plugin_warning_points_at_the_callers_code(entry_points):
    """A PluginWarning is attributed to the user's line that triggered discovery, not to mai."""
    entry_points["mai.tracers"] = [_ep("mai.tracers", "junk", "fake_plugins_missing:thing")]

    @mai.module
    async def one() -> int:
        return 1

    with pytest.warns(PluginWarning) as caught:
        mai.run(one)
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]


def test_plugin_warning_from_plugins_points_at_the_caller(entry_points):
    """mai.plugins() warns at the line that called it."""
    entry_points["mai.stores"] = [_ep("mai.stores", "junk", "fake_plugins_missing:thing")]
    with pytest.warns(PluginWarning) as caught:
        mai.plugins()
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]
