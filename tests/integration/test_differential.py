"""The differential check (tests/differential/run.py) as a test: every raw
request of tests/differential/cases.py goes to nginx and to forkhttpd; any
disagreement not listed in tests/differential/accepted.txt fails, and so does
a listed one whose answers changed (update the list with the code)."""
import os
import sys

import pytest

from conftest import REPO, SANITIZER_MARKS

DIFF_DIR = os.path.join(REPO, "tests", "differential")
sys.path.insert(0, DIFF_DIR)
import run as differential  # noqa: E402


def test_accepted_list_is_well_formed():
    acc = differential.load_accepted()
    ids = {c[0] for c in differential.CASES}
    unknown = sorted(set(acc) - ids)
    assert not unknown, f"accepted.txt names cases that do not exist: {unknown}"
    assert len(differential.CASES) >= 80
    for cid, (fh, ng, reason) in acc.items():
        assert "RFC" in reason, f"{cid}: the reason must cite the RFC section"


@pytest.mark.skipif(differential.nginx_path() is None, reason="nginx is not installed")
def test_no_unaccepted_disagreement_with_nginx():
    rows, err = differential.run_all()
    for mark in SANITIZER_MARKS:
        assert mark not in err, err
    table = differential.classify(rows, differential.load_accepted())
    bad = [r for r in table if r[3] in ("DIFF", "STALE")]
    msg = "\n".join(f"{cid}: nginx {n}, forkhttpd {f} ({v})" for cid, n, f, v in bad)
    assert not bad, "disagreements not accepted in tests/differential/accepted.txt:\n" + msg
