"""A method a dashboard page does not take is a 405 page, as the dashboard's other
refusals are, with an Allow header naming every route's methods (it was the JSON shape
with Starlette's bare "Method Not Allowed" and the first route's Allow, no HEAD); the
native API's 405 stays JSON. Through `conveyor serve`."""

from __future__ import annotations

import httpx
import pytest

from tests.http.helpers import assert_error


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", "/ui/deliveries", "GET, HEAD"),
    ("DELETE", "/", "GET, HEAD"),
    ("PUT", "/ui/queues/some-queue", "GET, HEAD"),
    ("GET", "/ui/queues", "POST"),
    ("PATCH", "/ui/jobs/retry", "POST"),  # the list's form, not /ui/jobs/{job_id}
    ("GET", "/ui/jobs/retry", "POST"),  # (it was the job page's 404: no job "retry")
    ("GET", "/ui/jobs/cancel", "POST"),
    ("DELETE", "/ui/queues/some-queue/purge", "POST"),
])
def test_a_wrong_method_on_a_page_is_a_405_page(client: httpx.Client, method: str,
                                                path: str, allow: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    page = response.text
    assert "<title>Refused · conveyor</title>" in page
    assert f"{method} is not allowed on {path}; it takes {allow}." in page
    assert "Method Not Allowed" not in page


def test_head_on_a_post_only_page_is_a_bodiless_405(client: httpx.Client) -> None:
    response = client.head("/ui/queues")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST" and response.content == b""


def test_the_apis_405_stays_json(client: httpx.Client) -> None:
    response = client.delete("/v1/notifications/counts")
    error = assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD"
    assert error["message"] == ("DELETE is not allowed on /v1/notifications/counts; it "
                                "takes GET, HEAD.")
