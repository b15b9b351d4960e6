"""Short jobs never wait behind long ones: with one converter process busy on a long
normalized job, another user's 10 s clip is done within 15 s. The long job was handed over to
the `video.long` lane, which the converter consumes beside `video`."""

import json
import time

import pytest
import requests

from tests.e2e.api import classic_upload, get_job, wait_for_job
from tools.media import make_noise

pytestmark = pytest.mark.e2e
LONG_JOB_SECONDS = 60


def test_a_short_job_is_done_while_the_only_converter_works_on_a_long_one(stack_factory,
                                                                         media_dir):
    stack = stack_factory(LONG_JOB_SECONDS=str(LONG_JOB_SECONDS))
    assert [name for name in stack.processes if name.startswith("converter")] == ["converter"]
    long_video, short_video = make_noise(media_dir, 1800), make_noise(media_dir, 10)
    _, a_jwt = stack.user()
    _, b_jwt = stack.user()

    with open(long_video, "rb") as video:  # 30 minutes, measured and then encoded
        response = requests.post(f"{stack.gateway_url}/upload", files={"file": video},
                                 data={"normalize": "true"},
                                 headers={"Authorization": f"Bearer {a_jwt}"}, timeout=60)
    assert response.status_code == 202, response.text
    long_id = response.json()["job_id"]
    wait_for_job(stack, a_jwt, long_id, timeout=60, statuses=("converting",), progress=1)

    uploaded = time.monotonic()
    status, body = classic_upload(stack, b_jwt, short_video)
    assert status == 202, body
    short = wait_for_job(stack, b_jwt, body["job_id"], timeout=15)
    took = time.monotonic() - uploaded
    assert short["status"] == "done", short
    long_job = get_job(stack, a_jwt, long_id)
    print(f"10 s clip done {took:.1f} s after its upload; the long job meanwhile: "
          f"{long_job['status']} at {long_job['progress']} %")
    assert long_job["status"] == "converting", long_job  # still at work beside it

    handed = [line for line in stack.logs["converter"].read_text().splitlines()
              if "handed over to the long lane" in line]
    assert [json.loads(line)["job_id"] for line in handed] == [long_id]
    # no need to wait for the long one: deleting it stops its conversion
    assert requests.delete(f"{stack.gateway_url}/jobs/{long_id}", timeout=10,
                           headers={"Authorization": f"Bearer {a_jwt}"}).status_code == 204
