"""Glance image data as devcloud stores and serves it: streamed both ways, hashed
as it arrives, status queued → saving → active (queued again after a cut-off
upload), synthetic snapshot data that hashes to what a download serves, and the
image_upload fault."""

import hashlib
import socket
import time
import urllib.parse

from .conftest import member_api

OCTET = {"Content-Type": "application/octet-stream"}
MIB = 1024 * 1024


def _new_image(api, name):
    resp = api.post(
        "/image/v2/images", json={"name": name, "disk_format": "raw", "container_format": "bare"}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _pieces(count, size=MIB):
    for n in range(count):
        yield bytes([n % 251]) * size


def _peak_rss_mib(pid):
    """The process's peak resident memory so far (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        line = next(line for line in fh if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_a_chunked_upload_and_its_download_stream_in_bounded_memory(fresh_cloud):
    cloud = fresh_cloud()
    api = member_api(cloud, "alpha")
    image_id = _new_image(api, "streamed")
    before = _peak_rss_mib(cloud.pid)
    # A generator body: requests sends it with Transfer-Encoding: chunked.
    put = api.put(f"/image/v2/images/{image_id}/file", data=_pieces(160), headers=OCTET)
    assert put.status_code == 204, put.text
    expected_md5, expected_sha = hashlib.md5(), hashlib.sha512()
    for piece in _pieces(160):
        expected_md5.update(piece)
        expected_sha.update(piece)
    shown = api.image(image_id).json()
    assert shown["status"] == "active"
    assert shown["size"] == 160 * MIB
    assert shown["checksum"] == expected_md5.hexdigest()
    assert shown["os_hash_value"] == expected_sha.hexdigest()
    down = api.get(f"/image/v2/images/{image_id}/file", stream=True)
    assert down.status_code == 200
    assert int(down.headers["Content-Length"]) == 160 * MIB
    got = hashlib.sha512()
    for piece in down.iter_content(MIB):
        got.update(piece)
    assert got.hexdigest() == shown["os_hash_value"]
    # devcloud held a few pieces at a time, never the 160 MiB image.
    assert _peak_rss_mib(cloud.pid) - before < 48


def _raw_put(cloud, api, image_id, head_only_bytes, declared):
    """A PUT that declares `declared` bytes, sends fewer, and hangs up."""
    url = urllib.parse.urlsplit(cloud.url)
    sock = socket.create_connection((url.hostname, url.port))
    sock.sendall(
        (
            f"PUT /image/v2/images/{image_id}/file HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"X-Auth-Token: {api.token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        + b"x" * head_only_bytes
    )
    return sock


def test_an_upload_is_saving_while_it_streams_and_queued_again_when_cut_off(cloud, alpha):
    image_id = _new_image(alpha, "cut-off")
    try:
        sock = _raw_put(cloud, alpha, image_id, MIB, 10 * MIB)
        deadline = time.monotonic() + 5
        while alpha.image(image_id).json()["status"] != "saving":
            assert time.monotonic() < deadline, "never saving"
            time.sleep(0.02)
        assert alpha.image(image_id).json()["size"] is None
        sock.close()  # the client goes away half-way
        deadline = time.monotonic() + 5
        while (shown := alpha.image(image_id).json())["status"] != "queued":
            assert time.monotonic() < deadline, f"not queued again: {shown['status']}"
            time.sleep(0.02)
        assert shown["checksum"] is None
        # Nothing was kept: a new upload starts from the beginning and succeeds.
        put = alpha.put(f"/image/v2/images/{image_id}/file", data=b"whole", headers=OCTET)
        assert put.status_code == 204
        assert alpha.get(f"/image/v2/images/{image_id}/file").content == b"whole"
    finally:
        alpha.delete(f"/image/v2/images/{image_id}")


def test_a_snapshot_of_a_server_serves_the_bytes_its_size_and_hashes_describe(fresh_cloud):
    cloud = fresh_cloud(speed=40.0)
    api = member_api(cloud, "alpha")
    sid = api.find_server("alpha-web-01")["id"]
    cloud.set_server(sid, disk_used_bytes=3 * MIB + 17)
    resp = api.action(sid, {"createImage": {"name": "synthetic-data"}})
    assert resp.status_code == 202, resp.text
    image = api.wait_image(resp.json()["image_id"], lambda r: r.json()["status"] == "active").json()
    data = api.get(f"/image/v2/images/{image['id']}/file").content
    assert len(data) == image["size"] == 3 * MIB + 17
    assert hashlib.md5(data).hexdigest() == image["checksum"]
    assert hashlib.sha512(data).hexdigest() == image["os_hash_value"]


def test_the_corrupt_upload_fault_stores_other_bytes_than_the_client_sent(fresh_cloud):
    cloud = fresh_cloud(faults={"image_upload": {"image_name": "^bad-", "corrupt": True}})
    api = member_api(cloud, "alpha")
    payload = b"exactly these bytes" * 1000
    bad, good = _new_image(api, "bad-copy"), _new_image(api, "good-copy")
    for image_id in (bad, good):
        put = api.put(f"/image/v2/images/{image_id}/file", data=payload, headers=OCTET)
        assert put.status_code == 204
    sent = hashlib.sha512(payload).hexdigest()
    assert api.image(good).json()["os_hash_value"] == sent
    stored = api.image(bad).json()
    assert stored["status"] == "active"
    assert stored["size"] == len(payload)
    assert stored["os_hash_value"] != sent
    assert (
        hashlib.sha512(api.get(f"/image/v2/images/{bad}/file").content).hexdigest()
        == (stored["os_hash_value"])
    )


def test_the_slow_store_fault_paces_an_upload(fresh_cloud):
    cloud = fresh_cloud(faults={"image_upload": {"bytes_per_second": 4 * MIB}})
    api = member_api(cloud, "alpha")
    image_id = _new_image(api, "paced")
    began = time.monotonic()
    put = api.put(f"/image/v2/images/{image_id}/file", data=_pieces(2), headers=OCTET)
    assert put.status_code == 204
    assert time.monotonic() - began >= 0.45  # 2 MiB at 4 MiB/s
