"""GET /jobs in pages: the cursor's form, and what the list answers to a bad limit or cursor
(before asking the job store)."""

import base64
import struct

import pytest
from bson import ObjectId

from gateway import cursors

INSTANT = 1_767_000_000.123


def test_a_cursor_holds_the_exact_instant_and_id_in_url_safe_characters():
    for created_at in (INSTANT, 0.0, 1e-7, 4_102_444_800.999_999):
        oid = ObjectId()
        cursor = cursors.encode(created_at, oid)
        assert len(cursor) == 28 and "=" not in cursor
        assert cursor.replace("-", "").replace("_", "").isalnum()
        assert cursors.decode(cursor) == (created_at, oid)


def _packed(version=1, created_at=INSTANT, oid=b"\x01" * 12) -> str:
    return base64.urlsafe_b64encode(struct.pack(">Bd12s", version, created_at, oid)).decode()


@pytest.mark.parametrize("cursor", [
    "", "x", "null", "0", "A" * 28, "_" * 28, "A" * 27, "A" * 29, "A" * 5000,
    _packed()[:-1], _packed() + "A", _packed() + "=", _packed().replace(_packed()[3], "+"),
    _packed(version=2), _packed(version=0), _packed(created_at=float("nan")),
    _packed(created_at=float("inf")), _packed(created_at=-1.0), "é" * 28, "A" * 26 + "\n\n",
    base64.urlsafe_b64encode(b"65a1b2c3d4e5f6a7b8c9d0e1").decode(),
])
def test_anything_encode_did_not_make_is_a_bad_cursor(cursor):
    with pytest.raises(cursors.BadCursor):
        cursors.decode(cursor)


class PagedJobs:
    """The job store's ``page``, over a list of jobs already in list order."""

    def __init__(self, docs):
        self.docs, self.asked = docs, []

    def page(self, owner, limit, after=None):
        self.asked.append((owner, limit, after))
        start = 0
        if after is not None:
            start = sum(1 for d in self.docs if (d["created_at"], d["_id"]) >= after)
        found = self.docs[start:start + limit]
        return found, start + limit < len(self.docs)


@pytest.fixture
def listed(stand_ins):
    """Five of the user's jobs created at the same instant, in list order."""
    docs = [{"_id": oid, "owner": "user@example.com", "status": "done", "created_at": INSTANT}
            for oid in sorted((ObjectId() for _ in range(5)), reverse=True)]
    stand_ins.jobs.page = PagedJobs(docs).page
    stand_ins.jobs.docs = docs
    return stand_ins.jobs


def _asked(jobs) -> list:
    return jobs.page.__self__.asked


def test_without_parameters_the_list_is_the_newest_200_with_a_null_next(client, bearer, listed):
    answer = client.get("/jobs", headers=bearer)
    assert answer.status_code == 200
    assert answer.json["next"] is None and "Link" not in answer.headers
    assert [job["job_id"] for job in answer.json["jobs"]] == [str(d["_id"]) for d in listed.docs]
    assert _asked(listed) == [("user@example.com", 200, None)]


def test_following_next_lists_every_job_once_and_the_link_header_says_the_same(client, bearer,
                                                                              listed):
    seen, url = [], "/jobs?limit=2"
    while url:
        answer = client.get(url, headers=bearer)
        assert answer.status_code == 200 and len(answer.json["jobs"]) <= 2
        seen += [job["job_id"] for job in answer.json["jobs"]]
        following = answer.json["next"]
        if following is None:
            assert "Link" not in answer.headers
            url = None
        else:
            url = f"/jobs?limit=2&cursor={following}"
            assert answer.headers["Link"] == f'<{url}>; rel="next"'
    assert seen == [str(d["_id"]) for d in listed.docs]
    assert [after for _, _, after in _asked(listed)] == [
        None, (INSTANT, listed.docs[1]["_id"]), (INSTANT, listed.docs[3]["_id"])]


@pytest.mark.parametrize("limit", ["0", "201", "-1", "1.5", "ten", "+5", " 5", "5 ", "1e2",
                                   "٣", "²", "99999999999999999999", "0x10", "null"])
def test_a_limit_out_of_range_or_not_a_whole_number_is_400_naming_the_limit(client, bearer,
                                                                           listed, limit):
    answer = client.get("/jobs", query_string={"limit": limit}, headers=bearer)
    assert answer.status_code == 400
    assert answer.json == {"error": "limit must be a whole number from 1 to 200"}
    assert _asked(listed) == []


@pytest.mark.parametrize("limit", ["1", "200", "007"])
def test_a_limit_from_1_to_200_is_taken(client, bearer, listed, limit):
    answer = client.get("/jobs", query_string={"limit": limit}, headers=bearer)
    assert answer.status_code == 200
    assert _asked(listed) == [("user@example.com", int(limit), None)]


@pytest.mark.parametrize("cursor", ["x", "A" * 28, "%00", "../../etc", "A" * 4096,
                                    _packed(version=9), _packed(created_at=float("nan"))])
def test_a_malformed_or_foreign_cursor_is_400_with_a_clear_message(client, bearer, listed,
                                                                   cursor):
    answer = client.get("/jobs", query_string={"cursor": cursor}, headers=bearer)
    assert answer.status_code == 400
    assert answer.json["error"].startswith("cursor is not valid")
    assert _asked(listed) == []


def test_a_tampered_cursor_only_moves_within_the_callers_jobs(client, bearer, listed):
    cursor = cursors.encode(INSTANT + 1, ObjectId("f" * 24))  # decodes: any position is fine
    answer = client.get("/jobs", query_string={"cursor": cursor}, headers=bearer)
    assert answer.status_code == 200 and len(answer.json["jobs"]) == 5
    assert _asked(listed) == [("user@example.com", 200, (INSTANT + 1, ObjectId("f" * 24)))]


def test_the_list_needs_a_login(client, listed):
    assert client.get("/jobs?limit=1").status_code == 401
    assert client.get("/jobs?limit=0").status_code == 401
    assert _asked(listed) == []
