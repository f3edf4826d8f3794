"""scripts/fetch_corpus.py: local fetches, verification, skipping and one-line errors (never touches the network)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "fetch_corpus.py"
SHARED = REPO.parent / "shared" / "data"
MULTI30K = SHARED / "multi30k-task1"
CMN = SHARED / "tatoeba-cmn-eng" / "cmn.txt"
DAILYDIALOG = SHARED / "dailydialog"


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


# --- dailydialog ------------------------------------------------------------------------------------------------

SPLITS = ("train", "validation", "test")


def dd_text(split: str) -> bytes:
    return "".join(f"{split} dialogue {i} , hi ! __eou__ Hello . __eou__\n" for i in range(3)).encode()


def dd_labels(split: str, kind: str) -> bytes:
    return ("1 2 \n" if kind == "act" else "0 4 \n").encode() * 3


@pytest.fixture
def synthetic_dd(monkeypatch) -> dict[str, bytes]:
    """The content of each file of a small made-up release, whose sha256s the script is made to expect."""
    files = {f"{split}/dialogues_{split}.txt": dd_text(split) for split in SPLITS}
    for split in SPLITS:
        for kind in ("act", "emotion"):
            files[f"{split}/dialogues_{kind}_{split}.txt"] = dd_labels(split, kind)
    digest = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    text = {
        ("train/dialogues_train.txt.gz" if s == "train" else f"{s}/dialogues_{s}.txt"): digest[f"{s}/dialogues_{s}.txt"]
        for s in SPLITS
    }
    monkeypatch.setattr(fc, "DAILYDIALOG_TEXT", text)
    monkeypatch.setattr(
        fc, "DAILYDIALOG_LABELS", {rel: sha for rel, sha in digest.items() if "_act_" in rel or "_emotion_" in rel}
    )
    return files


def dd_content(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def shared_dd(root: Path, rel: str) -> Optional[bytes]:
    """The content of root/rel, or of root/rel.gz; None if neither is there."""
    for path in (root / rel, root / (rel + ".gz")):
        if path.is_file():
            return dd_content(path)
    return None


@pytest.fixture
def dailydialog_dir() -> Path:
    if not all(
        (DAILYDIALOG / s / f"dialogues_{s}.txt.gz").is_file() or (DAILYDIALOG / s / f"dialogues_{s}.txt").is_file()
        for s in SPLITS
    ):
        pytest.skip(f"no local DailyDialog copy in {DAILYDIALOG}")
    return DAILYDIALOG


def write_layout(root: Path, files: dict[str, bytes], gz: tuple[str, ...] = ("train",)) -> Path:
    """files laid out under root/<split>/, the dialogue text of the splits in gz gzipped (like the shared copy)."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.name in gz and path.name == f"dialogues_{path.parent.name}.txt":
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
        else:
            path.write_bytes(data)
    return root


def official_zip(path: Path, files: dict[str, bytes]) -> Path:
    """An ijcnlp_dailydialog.zip as released: a top folder holding train.zip, validation.zip and test.zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as outer:
        outer.writestr("ijcnlp_dailydialog/readme.txt", "the full set, not split\n")
        outer.writestr("ijcnlp_dailydialog/dialogues_text.txt", "all dialogues __eou__\n")
        outer.writestr("__MACOSX/ijcnlp_dailydialog/._train.zip", "resource fork")
        for split in SPLITS:
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
                for rel, data in files.items():
                    if rel.startswith(f"{split}/"):
                        archive.writestr(rel, data)
            outer.writestr(f"ijcnlp_dailydialog/{split}.zip", inner.getvalue())
    return path


def check_dailydialog_output(out: Path, files: dict[str, bytes], stdout: str) -> None:
    dest = out / "dailydialog"
    for rel, data in files.items():
        target = dest / ("train/dialogues_train.txt.gz" if rel == "train/dialogues_train.txt" else rel)
        assert dd_content(target) == data, rel
    assert not (dest / "train" / "dialogues_train.txt").exists()
    for rel, expected in fc.DAILYDIALOG_TEXT.items():
        assert hashlib.sha256(dd_content(dest / rel)).hexdigest() == expected
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert fc.DAILYDIALOG_URL in readme
    assert "CC BY-NC-SA 4.0 (non-commercial" in readme and "Li et al. 2017" in readme
    for rel, sha in fc.DAILYDIALOG_TEXT.items():
        assert f"| {rel} | " in readme and sha in readme
    assert f"use: nmt-train data=dailydialog paths.corpora_dir={out.resolve()}" in stdout
    assert no_temp_files(out)


def dd_main(capsys, *args) -> tuple[int, str, str]:
    code = fc.main(["dailydialog", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dailydialog_from_local_layout(tmp_path, capsys, synthetic_dd):
    files = {rel: data for rel, data in synthetic_dd.items() if "_emotion_" not in rel}  # labels are optional
    local = write_layout(tmp_path / "download", files)
    code, stdout, err = dd_main(capsys, "--from-local", local, "--out", tmp_path / "corpora")
    assert code == 0, err
    check_dailydialog_output(tmp_path / "corpora", files, stdout)
    assert stdout.count("fetched ") == len(files) and stdout.count("skipped ") == 3
    assert not any((tmp_path / "corpora").rglob("dialogues_emotion_*"))


def test_dailydialog_from_local_shared_copy_then_kept(tmp_path, dailydialog_dir):
    result = run("dailydialog", "--from-local", dailydialog_dir, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    names = [f"{s}/dialogues{kind}_{s}.txt" for s in SPLITS for kind in ("", "_act", "_emotion")]
    files = {rel: data for rel in names if (data := shared_dd(dailydialog_dir, rel)) is not None}
    check_dailydialog_output(tmp_path, files, result.stdout)
    assert "train/dialogues_train.txt.gz | 11118 | " in (tmp_path / "dailydialog" / "README.md").read_text()

    again = run("dailydialog", "--from-local", dailydialog_dir, "--out", tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("kept ") == len(files) and "fetched" not in again.stdout


def test_dailydialog_official_zip_from_local(tmp_path, dailydialog_dir):
    files = {f"{s}/dialogues_{s}.txt": shared_dd(dailydialog_dir, f"{s}/dialogues_{s}.txt") for s in SPLITS}
    local = tmp_path / "download"
    local.mkdir()
    official_zip(local / "ijcnlp_dailydialog.zip", files)
    result = run("dailydialog", "--from-local", local, "--out", tmp_path / "corpora")
    assert result.returncode == 0, result.stderr
    check_dailydialog_output(tmp_path / "corpora", files, result.stdout)
    assert "skipped " in result.stdout  # this zip holds no labels


def test_dailydialog_download_reads_the_nested_zips(tmp_path, capsys, monkeypatch, synthetic_dd):
    archive = official_zip(tmp_path / "release.zip", synthetic_dd)
    urls = []

    def fake_download(url, dest):
        urls.append(url)
        shutil.copyfile(archive, dest)

    monkeypatch.setattr(fc, "download", fake_download)
    code, stdout, err = dd_main(capsys, "--out", tmp_path / "corpora")
    assert code == 0, err
    assert urls == [fc.DAILYDIALOG_URL]
    check_dailydialog_output(tmp_path / "corpora", synthetic_dd, stdout)
    assert not (tmp_path / "corpora" / "dailydialog" / "ijcnlp_dailydialog.zip").exists()
    assert [p.name for p in (tmp_path / "corpora" / "dailydialog").iterdir() if p.is_file()] == ["README.md"]


def test_dailydialog_download_that_is_not_a_zip_is_one_line(tmp_path, capsys, monkeypatch, synthetic_dd):
    monkeypatch.setattr(fc, "download", lambda url, dest: Path(dest).write_text("<html>moved</html>\n"))
    code, _, err = dd_main(capsys, "--out", tmp_path)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"fetch_corpus: {fc.DAILYDIALOG_URL}: not a valid zip file (")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_dailydialog_member_paths_are_found_wherever_they_are(tmp_path, capsys, synthetic_dd):
    local = tmp_path / "download"
    local.mkdir()
    with zipfile.ZipFile(local / "ijcnlp_dailydialog.zip", "w") as outer:
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as archive:
            archive.writestr("dialogues_train.txt", synthetic_dd["train/dialogues_train.txt"])  # no folder
        outer.writestr("train.zip", inner.getvalue())
        outer.writestr(
            "EMNLP_dataset/validation/dialogues_validation.txt", synthetic_dd["validation/dialogues_validation.txt"]
        )
        outer.writestr("x/y/test/dialogues_test.txt", synthetic_dd["test/dialogues_test.txt"])  # not nested
    code, stdout, err = dd_main(capsys, "--from-local", local, "--out", tmp_path / "corpora")
    assert code == 0, err
    texts = {rel: data for rel, data in synthetic_dd.items() if "_act_" not in rel and "_emotion_" not in rel}
    check_dailydialog_output(tmp_path / "corpora", texts, stdout)


@pytest.mark.parametrize("source", ["layout", "zip"])
def test_dailydialog_mismatch_names_the_file(tmp_path, capsys, synthetic_dd, source):
    files = dict(synthetic_dd)
    files["test/dialogues_test.txt"] = files["test/dialogues_test.txt"].replace(b"hi", b"ho", 1)
    local = tmp_path / "download"
    if source == "layout":
        write_layout(local, files)
        label = str(local / "test" / "dialogues_test.txt")
    else:
        local.mkdir()
        official_zip(local / "ijcnlp_dailydialog.zip", files)
        label = f"{local / 'ijcnlp_dailydialog.zip'}:ijcnlp_dailydialog/test.zip:test/dialogues_test.txt"
    out = tmp_path / "corpora"
    code, _, err = dd_main(capsys, "--from-local", local, "--out", out)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(
        f"fetch_corpus: {label}: sha256 mismatch (expected {fc.DAILYDIALOG_TEXT['test/dialogues_test.txt']}"
    )
    assert hashlib.sha256(files["test/dialogues_test.txt"]).hexdigest() in err
    assert err.rstrip().endswith(f"download it again from {fc.DAILYDIALOG_URL}")
    assert not (out / "dailydialog" / "test" / "dialogues_test.txt").exists()
    assert no_temp_files(out)


def test_dailydialog_damaged_gzip_is_one_line(tmp_path, capsys, synthetic_dd):
    local = write_layout(tmp_path / "download", synthetic_dd)
    damaged = local / "train" / "dialogues_train.txt.gz"
    damaged.write_bytes(damaged.read_bytes()[:-12])
    code, _, err = dd_main(capsys, "--from-local", local, "--out", tmp_path / "corpora")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"fetch_corpus: {damaged}: not a valid gzip file")
    assert not (tmp_path / "corpora" / "dailydialog" / "train" / "dialogues_train.txt.gz").exists()


def test_dailydialog_existing_files_are_kept_unless_forced(tmp_path, capsys, monkeypatch, synthetic_dd):
    local = write_layout(tmp_path / "download", synthetic_dd)
    out = tmp_path / "corpora"
    assert dd_main(capsys, "--from-local", local, "--out", out)[0] == 0
    targets = sorted(p for p in (out / "dailydialog").rglob("dialogues_*"))
    inodes = [p.stat().st_ino for p in targets]

    monkeypatch.setattr(fc, "download", lambda url, dest: pytest.fail(f"downloaded {url}"))
    code, stdout, err = dd_main(capsys, "--out", out)  # everything is there: no download
    assert code == 0, err
    assert stdout.count("kept ") == len(synthetic_dd) and "fetched" not in stdout
    assert [p.stat().st_ino for p in targets] == inodes

    code, stdout, err = dd_main(capsys, "--from-local", local, "--out", out, "--force")
    assert code == 0, err
    assert stdout.count("fetched ") == len(synthetic_dd) and "kept " not in stdout
    check_dailydialog_output(out, synthetic_dd, stdout)


def test_dailydialog_existing_damaged_file_is_replaced(tmp_path, capsys, synthetic_dd):
    local = write_layout(tmp_path / "download", synthetic_dd)
    target = tmp_path / "corpora" / "dailydialog" / "train" / "dialogues_train.txt.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"half a file")
    code, stdout, err = dd_main(capsys, "--from-local", local, "--out", tmp_path / "corpora")
    assert code == 0, err
    assert f"replacing {target}: {target}: not a valid gzip file" in stdout
    assert dd_content(target) == synthetic_dd["train/dialogues_train.txt"]


@pytest.mark.parametrize(
    ("setup", "needles"),
    [
        ("empty", ("ijcnlp_dailydialog.zip", "train/dialogues_train.txt", "drop --from-local")),
        ("no test split", ("test/dialogues_test.txt", "test/dialogues_test.txt.gz")),
        ("zip without test", ("ijcnlp_dailydialog.zip", "has no dialogues_test.txt (nor a test.zip")),
        ("not a zip", ("ijcnlp_dailydialog.zip", "not a valid zip file")),
    ],
)
def test_dailydialog_incomplete_source_is_one_line(tmp_path, capsys, synthetic_dd, setup, needles):
    local = tmp_path / "download"
    local.mkdir()
    if setup == "no test split":
        write_layout(local, {rel: data for rel, data in synthetic_dd.items() if not rel.startswith("test/")})
    elif setup == "zip without test":
        official_zip(
            local / "ijcnlp_dailydialog.zip", {k: v for k, v in synthetic_dd.items() if not k.startswith("test/")}
        )
    elif setup == "not a zip":
        (local / "ijcnlp_dailydialog.zip").write_text("<html>moved</html>\n")
    code, _, err = dd_main(capsys, "--from-local", local, "--out", tmp_path / "corpora")
    assert code == 1 and err.count("\n") == 1 and err.startswith("fetch_corpus: ")
    for needle in needles:
        assert needle in err
    assert no_temp_files(tmp_path)


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
    [
        ("multi30k", fc.MULTI30K_URL + "train.en.gz"),
        ("tatoeba_cmn", fc.TATOEBA_URL),
        ("dailydialog", fc.DAILYDIALOG_URL),
    ],
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
