"""Job 0: preparing banking_train.csv from a local file or a served UCI zip."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import job_env, run_script


def nested_uci_zip(csv_bytes: bytes) -> bytes:
    """Build a zip shaped like UCI's: bank+marketing.zip > bank.zip > bank-full.csv."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("bank-full.csv", csv_bytes)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as archive:
        archive.writestr("bank.zip", inner.getvalue())
        archive.writestr("bank-additional.zip", b"not used")
    return outer.getvalue()


@pytest.fixture
def served_folder(tmp_path):
    """An HTTP server on 127.0.0.1 serving files from a temporary folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_served_zip(bank_csv, workspace, served_folder):
    folder, base_url = served_folder
    (folder / "bank+marketing.zip").write_bytes(nested_uci_zip(bank_csv.read_bytes()))

    result = run_script(
        0, "--url", f"{base_url}/bank+marketing.zip", env=job_env(workspace)
    )

    assert result.returncode == 0, result.stderr
    train = pd.read_csv(workspace / "data" / "banking_train.csv")
    assert len(train) == 45_211
    assert list(train.columns)[-1] == "y"
    assert set(train["y"]) == {"yes", "no"}


def test_download_rejects_altered_csv(bank_csv, workspace, served_folder):
    folder, base_url = served_folder
    altered = bank_csv.read_bytes().replace(b';"no";', b';"yes";', 1)
    (folder / "bank+marketing.zip").write_bytes(nested_uci_zip(altered))

    result = run_script(
        0, "--url", f"{base_url}/bank+marketing.zip", env=job_env(workspace)
    )

    assert result.returncode == 3
    assert "does not match UCI's published file" in result.stderr
    assert not (workspace / "data" / "banking_train.csv").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a zip", "not the UCI bank marketing zip"),
        (None, "404"),
    ],
)
def test_download_failures_exit_3(workspace, served_folder, content, message):
    folder, base_url = served_folder
    if content is not None:
        (folder / "bank+marketing.zip").write_bytes(content)

    result = run_script(
        0, "--url", f"{base_url}/bank+marketing.zip", env=job_env(workspace)
    )

    assert result.returncode == 3
    assert message in result.stderr
    assert "--source" in result.stderr


def test_unreachable_download_names_offline_option(workspace):
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/bank+marketing.zip"
    result = run_script(0, "--url", url, "--download-timeout", "5", env=job_env(workspace))

    assert result.returncode == 3
    assert url in result.stderr
    assert "BANK_MARKETING_CSV" in result.stderr


def test_source_comma_csv_matches_uci_format(bank_csv, workspace, tmp_path):
    comma = tmp_path / "bank-comma.csv"
    pd.read_csv(bank_csv, sep=";").to_csv(comma, index=False)

    from_uci = run_script(0, "--source", str(bank_csv), env=job_env(workspace))
    written = (workspace / "data" / "banking_train.csv").read_bytes()
    from_comma = run_script(0, "--source", str(comma), env=job_env(workspace))

    assert from_uci.returncode == 0, from_uci.stderr
    assert from_comma.returncode == 0, from_comma.stderr
    assert "up to date" in from_comma.stdout
    assert (workspace / "data" / "banking_train.csv").read_bytes() == written


def test_rerun_with_other_content_needs_force(bank_csv, workspace, tmp_path):
    smaller = tmp_path / "bank-small.csv"
    pd.read_csv(bank_csv, sep=";").head(5000).to_csv(smaller, index=False)
    first = run_script(0, "--source", str(bank_csv), env=job_env(workspace))
    original = (workspace / "data" / "banking_train.csv").read_bytes()

    rejected = run_script(0, "--source", str(smaller), env=job_env(workspace))
    forced = run_script(0, "--source", str(smaller), "--force", env=job_env(workspace))

    assert first.returncode == 0, first.stderr
    assert rejected.returncode == 2
    assert "--force" in rejected.stderr
    assert forced.returncode == 0, forced.stderr
    kept = sorted((workspace / "data").glob("banking_train.*.csv"))
    assert len(kept) == 1
    assert hashlib.sha256(kept[0].read_bytes()).digest() == hashlib.sha256(original).digest()
    assert len(pd.read_csv(workspace / "data" / "banking_train.csv")) == 5000


def test_missing_source_exits_2(workspace):
    result = run_script(0, "--source", str(Path("/nonexistent/bank.csv")), env=job_env(workspace))

    assert result.returncode == 2
    assert "/nonexistent/bank.csv" in result.stderr


def test_existing_data_kept_without_source(prepared_workspace):
    train = prepared_workspace / "data" / "banking_train.csv"
    before = train.read_bytes()

    result = run_script(0, env=job_env(prepared_workspace))

    assert result.returncode == 0, result.stderr
    assert "nothing downloaded" in result.stdout
    assert "downloading" not in result.stderr
    assert train.read_bytes() == before
