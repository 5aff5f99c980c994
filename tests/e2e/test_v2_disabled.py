"""Without --enable-v2 the v2 API is not there: real etcd 3.5.1 and pyetcd answer 404."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from both_servers import server  # noqa: F401 - the parametrized fixture


@pytest.mark.parametrize("path", ["/v2/keys/a", "/v2/members", "/v2/stats/self", "/v2/machines"])
def test_v2_paths_answer_404(server, path):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.url + path, timeout=10)
    assert (err.value.code, err.value.read()) == (404, b"404 page not found\n")
