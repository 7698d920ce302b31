"""pytest plugin: the ``warmline_mock`` fixture.

Installed warmline registers it through the ``pytest11`` entry point; without
that, add ``pytest_plugins = ["warmline.testing.plugin"]`` to a conftest.

Each test that asks for ``warmline_mock`` gets its own started
:class:`~warmline.testing.MockServer`, stopped when the test ends. Unless
disabled, ``verify()`` runs on teardown, after a test that passed (a failed
test already reports its own error; a second one would only add noise)::

    def test_ticker(warmline_mock):
        warmline_mock.expect(path="/ticker").respond(json={"price": "1"}).times(1)
        ...

    @pytest.mark.warmline_mock(tls=True, uds=True, verify=False)
    def test_tls(warmline_mock): ...

The marker's keywords go to ``MockServer(...)``, except ``verify``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from warmline.testing._server import MockServer

__all__ = ["warmline_mock"]

_CALL_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (the suite may run with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "warmline_mock(verify=True, **options): options of the warmline_mock fixture's "
        "MockServer; verify=False skips verify() on teardown",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test body failed, for the fixture's teardown."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def warmline_mock(request: pytest.FixtureRequest) -> Iterator[MockServer]:
    """A started MockServer for one test, verified on teardown unless disabled."""
    marker = request.node.get_closest_marker("warmline_mock")
    options = dict(marker.kwargs) if marker else {}
    verify = bool(options.pop("verify", True))
    with MockServer(**options) as server:
        yield server
    if verify and not request.node.stash.get(_CALL_FAILED, False):
        server.verify()
