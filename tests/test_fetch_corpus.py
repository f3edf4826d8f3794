"""scripts/fetch_corpus.py: local fetches, verification, skipping and one-line errors (never touches the network)."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "fetch_corpus.py"
SHARED = REPO.parent / "shared" / "data"
MULTI30K = SHARED / "multi30k-task1"
CMN = SHARED / "tatoeba-cmn-eng" / "cmn.txt"


def load_script():
    spec = importlib.util.spec_from_file_location("fetch_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fc = load_script()


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fetch_corpus: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def no_temp_files(directory: Path) -> bool:
    return not any(p.name.endswith(".part") for p in directory.rglob("*"))


@pytest.fixture
def multi30k_dir() -> Path:
    if not all((MULTI30K / name).is_file() for name in fc.MULTI30K_SHA256):
        pytest.skip(f"no local Multi30k copy in {MULTI30K}")
    return MULTI30K


@pytest.fixture
def cmn_txt() -> Path:
    if not CMN.is_file():
        pytest.skip(f"no local Tatoeba cmn-eng copy at {CMN}")
    return CMN


def writable_copy(src: Path, dst: Path) -> Path:
    """The .gz files of src copied into dst with ordinary (writable) modes, whatever the source's."""
    dst.mkdir()
    for path in src.glob("*.gz"):
        shutil.copyfile(path, dst / path.name)
    return dst


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- multi30k ---------------------------------------------------------------------------------------------------


def test_multi30k_from_local_copies_all_files_verified(tmp_path, multi30k_dir):
    result = run("multi30k", "--from-local", multi30k_dir, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    dest = tmp_path / "multi30k-task1"
    assert sorted(p.name for p in dest.glob("*.gz")) == sorted(fc.MULTI30K_SHA256)
    for name, expected in fc.MULTI30K_SHA256.items():
        assert sha256(dest / name) == expected
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert fc.MULTI30K_URL in readme
    assert "non-commercial research and/or educational purposes only (Multi30K README)" in readme
    assert "Elliott et al. 2016 (W16-3210)" in readme
    assert f"use: nmt-train data=multi30k_de_en paths.corpora_dir={tmp_path.resolve()}" in result.stdout
    assert no_temp_files(tmp_path)


def test_multi30k_tampered_file_fails_and_leaves_nothing(tmp_path, multi30k_dir):
    local = writable_copy(multi30k_dir, tmp_path / "download")
    tampered = local / "val.de.gz"
    data = bytearray(tampered.read_bytes())
    data[100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    out = tmp_path / "corpora"
    line = assert_one_line_error(
        run("multi30k", "--from-local", local, "--out", out),
        str(tampered),
        fc.MULTI30K_SHA256["val.de.gz"],
        hashlib.sha256(bytes(data)).hexdigest(),
        "download it again from " + fc.MULTI30K_URL + "val.de.gz",
    )
    assert "sha256 mismatch" in line
    assert not (out / "multi30k-task1" / "val.de.gz").exists()
    assert no_temp_files(out)


def test_multi30k_missing_local_file_is_one_line(tmp_path, multi30k_dir):
    local = writable_copy(multi30k_dir, tmp_path / "download")
    (local / "test_2017_flickr.en.gz").unlink()
    assert_one_line_error(
        run("multi30k", "--from-local", local, "--out", tmp_path / "corpora"), "test_2017_flickr.en.gz", "not found"
    )


def test_multi30k_existing_files_are_kept_unless_forced(tmp_path, multi30k_dir):
    assert run("multi30k", "--from-local", multi30k_dir, "--out", tmp_path).returncode == 0
    dest = tmp_path / "multi30k-task1"
    inodes = {name: (dest / name).stat().st_ino for name in fc.MULTI30K_SHA256}

    again = run("multi30k", "--from-local", multi30k_dir, "--out", tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("kept ") == len(fc.MULTI30K_SHA256)
    assert "fetched" not in again.stdout
    assert {name: (dest / name).stat().st_ino for name in fc.MULTI30K_SHA256} == inodes

    forced = run("multi30k", "--from-local", multi30k_dir, "--out", tmp_path, "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.count("fetched ") == len(fc.MULTI30K_SHA256)
    assert "kept " not in forced.stdout
    for name, expected in fc.MULTI30K_SHA256.items():
        assert sha256(dest / name) == expected


def test_multi30k_existing_corrupt_file_is_replaced(tmp_path, multi30k_dir):
    dest = tmp_path / "multi30k-task1"
    dest.mkdir()
    (dest / "train.en.gz").write_bytes(b"half a file")
    result = run("multi30k", "--from-local", multi30k_dir, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "replacing" in result.stdout
    assert sha256(dest / "train.en.gz") == fc.MULTI30K_SHA256["train.en.gz"]


# --- tatoeba cmn-eng --------------------------------------------------------------------------------------------


def check_tatoeba_output(result: subprocess.CompletedProcess, out: Path, source: Path) -> None:
    assert result.returncode == 0, result.stderr
    dest = out / "tatoeba-cmn-eng"
    assert (dest / "cmn.txt").read_bytes() == source.read_bytes()
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert fc.TATOEBA_URL in readme
    assert "CC-BY 2.0 (France)" in readme
    assert "www.manythings.org/anki" in readme and "tatoeba.org" in readme
    assert f"use: nmt-train data=tatoeba_eng_cmn paths.corpora_dir={out.resolve()}" in result.stdout
    assert no_temp_files(out)


def test_tatoeba_from_local_txt(tmp_path, cmn_txt):
    result = run("tatoeba_cmn", "--from-local", cmn_txt.parent, "--out", tmp_path)
    check_tatoeba_output(result, tmp_path, cmn_txt)


def test_tatoeba_from_local_zip(tmp_path, cmn_txt):
    local = tmp_path / "download"
    local.mkdir()
    with zipfile.ZipFile(local / "cmn-eng.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(cmn_txt, "cmn.txt")
        archive.writestr("_about.txt", "about the export\n")
    out = tmp_path / "corpora"
    check_tatoeba_output(run("tatoeba_cmn", "--from-local", local, "--out", out), out, cmn_txt)


def test_tatoeba_existing_file_is_kept(tmp_path, cmn_txt):
    assert run("tatoeba_cmn", "--from-local", cmn_txt.parent, "--out", tmp_path).returncode == 0
    again = run("tatoeba_cmn", "--from-local", cmn_txt.parent, "--out", tmp_path)
    assert again.returncode == 0, again.stderr
    assert "kept " in again.stdout and "fetched" not in again.stdout


@pytest.mark.parametrize("bad_line", ["Only English here.", "\tNo English.", "No Chinese.\t  \tCC-BY"])
def test_tatoeba_malformed_line_names_file_and_line(tmp_path, bad_line):
    local = tmp_path / "download"
    local.mkdir()
    (local / "cmn.txt").write_text(
        f"Hi.\t嗨。\tCC-BY\nRun.\t跑。\tCC-BY\n{bad_line}\nWait.\t等等。\n", encoding="utf-8"
    )
    out = tmp_path / "corpora"
    assert_one_line_error(run("tatoeba_cmn", "--from-local", local, "--out", out), f"{local / 'cmn.txt'}:3:")
    assert not (out / "tatoeba-cmn-eng" / "cmn.txt").exists()
    assert no_temp_files(out)


def test_tatoeba_zip_without_member_is_one_line(tmp_path):
    local = tmp_path / "download"
    local.mkdir()
    with zipfile.ZipFile(local / "cmn-eng.zip", "w") as archive:
        archive.writestr("fra.txt", "Hi.\tSalut.\n")
    assert_one_line_error(run("tatoeba_cmn", "--from-local", local, "--out", tmp_path / "c"), "cmn-eng.zip", "cmn.txt")


def test_tatoeba_local_dir_without_files_is_one_line(tmp_path):
    assert_one_line_error(
        run("tatoeba_cmn", "--from-local", tmp_path, "--out", tmp_path / "c"), str(tmp_path), "cmn.txt", "cmn-eng.zip"
    )


# --- network failures and usage ---------------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch):
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


@pytest.mark.parametrize(
    ("corpus", "url"),
    [("multi30k", fc.MULTI30K_URL + "train.en.gz"), ("tatoeba_cmn", fc.TATOEBA_URL)],
)
def test_network_failure_is_one_line(tmp_path, capsys, offline, corpus, url):
    assert fc.main([corpus, "--out", str(tmp_path)]) == 1
    assert offline == [url]
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"fetch_corpus: cannot download {url}: ")
    assert "Connection refused" in err and "--from-local" in err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_http_error_is_one_line(tmp_path, capsys, monkeypatch):
    def not_found(url, *args, **kwargs):
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)

    monkeypatch.setattr(urllib.request, "urlopen", not_found)
    assert fc.main(["tatoeba_cmn", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fetch_corpus: cannot download {fc.TATOEBA_URL}: HTTP 404 Not Found — ")
    assert err.endswith("rerun with --from-local DIR\n") and err.count("\n") == 1


def test_bad_usage_is_one_line(tmp_path):
    assert_one_line_error(run("iwslt14", "--out", tmp_path), "invalid choice")
    assert_one_line_error(run("multi30k", "--from-local", tmp_path / "nowhere", "--out", tmp_path), "nowhere")
    assert not any(tmp_path.iterdir())
