"""The warmline_mock fixture, run in a child pytest session (pytester).

The child gets the plugin from the package's pytest11 entry point, as an
installed user does.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# The plugin comes in through the package's pytest11 entry point.
_RUN = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:asyncio",
    "-W",
    "error",
)


def test_fixture_verifies_on_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import http.client

        def get(server, target):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                conn.request("GET", target)
                return conn.getresponse().read()
            finally:
                conn.close()

        def test_met(warmline_mock):
            warmline_mock.expect(path="/a").respond(body=b"A").once()
            assert get(warmline_mock, "/a") == b"A"

        def test_unmet(warmline_mock):
            warmline_mock.expect(path="/b").times(2)
            get(warmline_mock, "/b")
        """
    )
    result = pytester.runpytest_inprocess(*_RUN)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_unmet*", "*expected exactly 2, received 1*"]
    )


def test_marker_options_and_verify_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.warmline_mock(verify=False, uds=True, tls=True)
        def test_options(warmline_mock):
            warmline_mock.expect(path="/never")
            assert warmline_mock.uds_path and warmline_mock.url.startswith("https://")

        def test_failing_body_skips_verify(warmline_mock):
            warmline_mock.expect(path="/never")
            assert False, "the test's own failure"
        """
    )
    result = pytester.runpytest_inprocess("--strict-markers", *_RUN)
    result.assert_outcomes(passed=1, failed=1)
    assert "MockServer.verify()" not in result.stdout.str()
