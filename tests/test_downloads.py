"""``data.download: auto``: a local copy first, else the downloader, over real HTTP from a
server this test starts on 127.0.0.1 (progress, checksum, provenance); offline, one clear line."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

import seqmia.data.text as text
from seqmia.base.errors import DamagedFileError
from seqmia.data.prepare import prepared_dataset
from seqmia.data.readers import DatasetNotFoundError
from seqmia.data.sources import load_dataset
from tests.test_sources import write_bydate_archive


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no request lines in the test's output
        pass


@pytest.fixture
def served(tmp_path: Path):
    """A bydate archive served over HTTP from a folder of its own; yields (url, sha256)."""
    folder = tmp_path / "publisher"
    archive = write_bydate_archive(folder / "news.tar.gz")
    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/news.tar.gz"
        yield url, hashlib.sha256(archive.read_bytes()).hexdigest()
    finally:
        server.shutdown()
        server.server_close()


def test_auto_downloads_a_missing_dataset_checks_it_and_says_so(
    served, tmp_path, monkeypatch, capsys
):
    url, sha = served
    monkeypatch.setattr(text, "ARCHIVE_URL", url)
    monkeypatch.setattr(text, "ARCHIVE_SHA256", sha)
    root = tmp_path / "root"
    raw = load_dataset("news20", root, download=True, vocab_size=50)
    assert (root / "news20" / text.ARCHIVE_NAME).is_file()
    assert raw.obtained == f"downloaded: {url} (SHA-256 checked)"
    assert f"downloading {url}" in capsys.readouterr().err  # progress on stderr
    _, info = prepared_dataset(raw, "news20", root)
    assert info["obtained"] == raw.obtained
    # The copy is local now: the next run reads it without fetching.
    again = load_dataset("news20", root, download=True, vocab_size=50)
    assert again.obtained == "local copy" and again.sha256 == raw.sha256


def test_a_download_with_the_wrong_checksum_is_refused_and_removed(served, tmp_path, monkeypatch):
    url, _ = served
    monkeypatch.setattr(text, "ARCHIVE_URL", url)
    monkeypatch.setattr(text, "ARCHIVE_SHA256", "0" * 64)
    root = tmp_path / "root"
    with pytest.raises(DamagedFileError) as info:
        load_dataset("news20", root, download=True)
    message = str(info.value)
    assert f"downloaded from {url} has SHA-256" in message and "\n" not in message
    assert "not the published " + "0" * 64 in message
    assert not any((root / "news20").iterdir())  # neither the archive nor a .part file


def test_offline_the_error_names_the_local_path_and_the_failed_download(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/news.tar.gz"
    monkeypatch.setattr(text, "ARCHIVE_URL", url)
    root = tmp_path / "root"
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("news20", root, download=True)
    message = str(info.value)
    assert str((root / "news20" / text.ARCHIVE_NAME).resolve()) in message
    assert f"fetching it from {url} failed" in message and "offline" in message
    assert "SEQMIA_DATA_ROOT" in message and "\n" not in message


def test_a_server_that_refuses_the_download_is_not_called_offline(served, tmp_path, monkeypatch):
    url, _ = served
    missing = url.replace("news.tar.gz", "moved.tar.gz")  # the server answers 404
    monkeypatch.setattr(text, "ARCHIVE_URL", missing)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("news20", tmp_path / "root", download=True)
    message = str(info.value)
    assert f"fetching it from {missing} failed (HTTPError: HTTP Error 404" in message
    assert "may have moved" in message and "offline" not in message and "\n" not in message


def test_a_local_copy_is_read_as_it_is_and_never_fetched(tmp_path, monkeypatch):
    monkeypatch.setattr(text, "ARCHIVE_URL", "http://127.0.0.1:9/never-fetched")
    write_bydate_archive(tmp_path / "news20" / text.ARCHIVE_NAME)
    raw = load_dataset("news20", tmp_path, download=True, vocab_size=50)
    assert raw.obtained == "local copy"
