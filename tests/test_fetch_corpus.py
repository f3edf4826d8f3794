"""scripts/fetch_corpus.py: local fetches, verification, skipping and one-line errors (never touches the network)."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import shutil
import subprocess
import sys
import tarfile
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
    """fetch_corpus imported as a module, with the modules beside it that it imports."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        return importlib.import_module("fetch_corpus")
    finally:
        sys.path.remove(str(SCRIPT.parent))


fc = load_script()
ff, dd = sys.modules["fetch_files"], sys.modules["fetch_dailydialog"]
cr, rb = sys.modules["corpus_recipes"], sys.modules["recipe_build"]


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
    monkeypatch.setattr(dd, "DAILYDIALOG_TEXT", text)
    monkeypatch.setattr(
        dd, "DAILYDIALOG_LABELS", {rel: sha for rel, sha in digest.items() if "_act_" in rel or "_emotion_" in rel}
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
    for rel, expected in dd.DAILYDIALOG_TEXT.items():
        assert hashlib.sha256(dd_content(dest / rel)).hexdigest() == expected
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert dd.DAILYDIALOG_URL in readme
    assert "CC BY-NC-SA 4.0 (non-commercial" in readme and "Li et al. 2017" in readme
    for rel, sha in dd.DAILYDIALOG_TEXT.items():
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

    monkeypatch.setattr(ff, "download", fake_download)
    code, stdout, err = dd_main(capsys, "--out", tmp_path / "corpora")
    assert code == 0, err
    assert urls == [dd.DAILYDIALOG_URL]
    check_dailydialog_output(tmp_path / "corpora", synthetic_dd, stdout)
    assert not (tmp_path / "corpora" / "dailydialog" / "ijcnlp_dailydialog.zip").exists()
    assert [p.name for p in (tmp_path / "corpora" / "dailydialog").iterdir() if p.is_file()] == ["README.md"]


def test_dailydialog_download_that_is_not_a_zip_is_one_line(tmp_path, capsys, monkeypatch, synthetic_dd):
    monkeypatch.setattr(ff, "download", lambda url, dest: Path(dest).write_text("<html>moved</html>\n"))
    code, _, err = dd_main(capsys, "--out", tmp_path)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"fetch_corpus: {dd.DAILYDIALOG_URL}: not a valid zip file (")
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
        f"fetch_corpus: {label}: sha256 mismatch (expected {dd.DAILYDIALOG_TEXT['test/dialogues_test.txt']}"
    )
    assert hashlib.sha256(files["test/dialogues_test.txt"]).hexdigest() in err
    assert err.rstrip().endswith(f"download it again from {dd.DAILYDIALOG_URL}")
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

    monkeypatch.setattr(ff, "download", lambda url, dest: pytest.fail(f"downloaded {url}"))
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
        ("dailydialog", dd.DAILYDIALOG_URL),
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


# --- archives (IWSLT'14, WMT'14): tiny synthetic copies of the published archives --------------------------------


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def gz_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines()


def main_(capsys, *args) -> tuple[int, str, str]:
    code = fc.main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_failed_cleanly(code: int, err: str, out: Path, *needles: str) -> None:
    assert code == 1 and err.count("\n") == 1 and err.startswith("fetch_corpus: "), err
    for needle in needles:
        assert needle in err, err
    assert not any(p.name.endswith(".gz") for p in out.rglob("*")), sorted(out.rglob("*"))
    assert no_temp_files(out) and not any(p.name.startswith(".extract-") for p in out.rglob("*"))


IWSLT_SETS = ("TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012")


def iwslt_train(talks: int = 4) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """train.tags lines per language, and the (de, en) pairs the recipe keeps from them, in order."""
    side: dict[str, list[str]] = {"de": [], "en": []}
    kept = []
    for talk in range(talks):
        meta = [
            f"<url>http://www.ted.com/talks/talk_{talk}.html</url>",
            "<keywords>talks, science, technology</keywords>",
            f"<speaker>Speaker {talk}</speaker>",
            f"<talkid>{talk + 1}</talkid>",
        ]
        for lang in side:
            side[lang] += meta
        side["de"] += [
            f"<title>Speaker {talk}: Titel {talk}</title>",
            f"<description>Beschreibung {talk}</description>",
        ]
        side["en"] += [f"<title>Speaker {talk}: Title {talk}</title>", f"<description>Description {talk}</description>"]
        kept += [(f"Speaker {talk}: Titel {talk}", f"Speaker {talk}: Title {talk}")]
        kept += [(f"Beschreibung {talk}", f"Description {talk}")]
        for lang in side:
            side[lang] += [
                f'<reviewer href="http://www.ted.com/profiles/{talk}">Reviewer {talk}</reviewer>',
                f'<translator href="http://www.ted.com/profiles/{talk + 9}">Translator {talk}</translator>',
            ]
        for i in range(10):
            de, en = f"Satz {i} von Vortrag {talk} .", f"Sentence {i} of talk {talk} ."
            if i == 3 and talk == 1:
                de = "  "  # an empty side: dropped
            if i == 4 and talk == 2:
                de, en = "<3 ist ein Herz.", "<3 is a heart."  # a sentence, not metadata
            side["de"].append(de)
            side["en"].append(en)
            if de.strip():
                kept.append((de, en))
    return side, kept


def iwslt_xml(name: str, lang: str, segs: list[str]) -> bytes:
    tag = "srcset" if lang == "de" else 'refset trglang="english" refid="ref"'
    body = "".join(f'<seg id="{i}"> {text} </seg>\n' for i, text in enumerate(segs, start=1))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n<{tag} setid="iwslt2014_{name}" srclang="german">\n'
        f'<doc docid="{len(segs)}" genre="lectures">\n<url>http://www.ted.com/talks/x.html</url>\n'
        f"<talkid>7</talkid>\n<title>Title</title>\n{body}</doc>\n</{tag.split()[0]}>\n</mteval>\n"
    ).encode()


def iwslt_test_segs(name: str) -> dict[str, list[str]]:
    return {
        "de": [f"{name} Satz {i} &amp; mehr." for i in range(3)],
        "en": [f"{name} sentence {i} &amp; more." for i in range(3)],
    }


def iwslt_members(side: Optional[dict[str, list[str]]] = None) -> dict[str, bytes]:
    side = side or iwslt_train()[0]
    members = {"de-en/README": b"IWSLT 2014 de-en\n"}
    for lang in ("de", "en"):
        members[f"de-en/train.tags.de-en.{lang}"] = "".join(line + "\n" for line in side[lang]).encode()
    for name in IWSLT_SETS:
        for lang, segs in iwslt_test_segs(name).items():
            members[f"de-en/IWSLT14.{name}.de-en.{lang}.xml"] = iwslt_xml(name, lang, segs)
    return members


@pytest.fixture
def iwslt_dir(tmp_path) -> Path:
    local = tmp_path / "download"
    local.mkdir()
    make_tar(local / "de-en.tgz", iwslt_members())
    return local


def check_iwslt_output(out: Path) -> None:
    dest = out / "iwslt14-de-en"
    kept = iwslt_train()[1]
    assert len(kept) == 47  # 4 talks x (title + description + 10 sentences), less one empty pair
    expected = {
        "train": [pair for n, pair in enumerate(kept, start=1) if n % 23],
        "valid": [kept[22], kept[45]],
    }
    test = {lang: [s for name in IWSLT_SETS for s in iwslt_test_segs(name)[lang]] for lang in ("de", "en")}
    expected["test"] = list(zip(test["de"], test["en"], strict=True))
    for split, pairs in expected.items():
        assert gz_lines(dest / f"{split}.de.gz") == [de for de, _ in pairs], split
        assert gz_lines(dest / f"{split}.en.gz") == [en for _, en in pairs], split
    train_de = gz_lines(dest / "train.de.gz")
    assert not any(
        line.startswith(("<url", "<keywords", "<speaker", "<talkid", "<title", "<reviewer")) for line in train_de
    )
    assert "<3 ist ein Herz." in train_de and "Speaker 0: Titel 0" in train_de
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [f"{split}.{lang}.gz" for split in ("train", "valid", "test") for lang in ("de", "en")] + ["README.md"]
    )
    assert no_temp_files(out)


def test_iwslt14_from_local(tmp_path, capsys, iwslt_dir):
    out = tmp_path / "corpora"
    code, stdout, err = main_(capsys, "iwslt14_de_en", "--from-local", iwslt_dir, "--out", out)
    assert code == 0, err
    check_iwslt_output(out)
    readme = (out / "iwslt14-de-en" / "README.md").read_text(encoding="utf-8")
    assert f"| de-en.tgz | {iwslt_dir / 'de-en.tgz'} | `{sha256(iwslt_dir / 'de-en.tgz')}` |" in readme
    for needle in (
        *cr.IWSLT14_ARCHIVE.urls,
        "CC BY-NC-ND 4.0",
        "Cettolo",
        "WIT3",
        "every 23rd",
        "Moses-tokenizes and lowercases",
        "| train.de.gz | 45 |",
        "| valid.en.gz | 2 |",
        "| test.de.gz | 15 |",
        "1 dropped (empty side)",
    ):
        assert needle in readme, needle
    assert "`IWSLT14.TEDX.dev2012`" in readme and "`.de-en.{de,en}.xml`" in readme
    assert f"use: nmt-train data=iwslt14_de_en paths.corpora_dir={out.resolve()}" in stdout


@pytest.mark.parametrize("primary", ["refused", "error page"])
def test_iwslt14_download_falls_back_to_the_mirror(tmp_path, capsys, monkeypatch, iwslt_dir, primary):
    urls = []

    def fake_download(url, dest):
        urls.append(url)
        if url == cr.IWSLT14_ARCHIVE.urls[0]:
            if primary == "refused":
                raise ff.DownloadError(url, "Connection refused")
            Path(dest).write_text("<html>moved</html>\n")
        else:
            shutil.copyfile(iwslt_dir / "de-en.tgz", dest)

    monkeypatch.setattr(ff, "download", fake_download)
    out = tmp_path / "corpora"
    code, _, err = main_(capsys, "iwslt14_de_en", "--out", out)
    assert code == 0, err
    assert urls == list(cr.IWSLT14_ARCHIVE.urls)
    check_iwslt_output(out)
    assert f"| de-en.tgz | {cr.IWSLT14_ARCHIVE.urls[1]} | " in (out / "iwslt14-de-en" / "README.md").read_text()
    assert not (out / "iwslt14-de-en" / "downloads").exists()


def test_iwslt14_network_failure_names_both_addresses(tmp_path, capsys, offline):
    code, _, err = main_(capsys, "iwslt14_de_en", "--out", tmp_path)
    assert offline == list(cr.IWSLT14_ARCHIVE.urls)
    assert_failed_cleanly(code, err, tmp_path, *cr.IWSLT14_ARCHIVE.urls, "Connection refused", "--from-local DIR")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_iwslt14_existing_corpus_is_kept_unless_forced(tmp_path, capsys, monkeypatch, iwslt_dir):
    out = tmp_path / "corpora"
    assert main_(capsys, "iwslt14_de_en", "--from-local", iwslt_dir, "--out", out)[0] == 0
    files = sorted((out / "iwslt14-de-en").glob("*.gz"))
    inodes = [p.stat().st_ino for p in files]

    monkeypatch.setattr(ff, "download", lambda url, dest: pytest.fail(f"downloaded {url}"))
    code, stdout, err = main_(capsys, "iwslt14_de_en", "--out", out)
    assert code == 0, err
    assert stdout.count("kept ") == 6 and "wrote " not in stdout
    assert [p.stat().st_ino for p in files] == inodes

    code, stdout, err = main_(capsys, "iwslt14_de_en", "--from-local", iwslt_dir, "--out", out, "--force")
    assert code == 0, err
    assert stdout.count("wrote ") == 6 and "kept " not in stdout
    check_iwslt_output(out)


def test_iwslt14_damaged_corpus_is_rebuilt(tmp_path, capsys, iwslt_dir):
    out = tmp_path / "corpora"
    assert main_(capsys, "iwslt14_de_en", "--from-local", iwslt_dir, "--out", out)[0] == 0
    damaged = out / "iwslt14-de-en" / "valid.en.gz"
    damaged.write_bytes(damaged.read_bytes()[:-9])
    code, stdout, err = main_(capsys, "iwslt14_de_en", "--from-local", iwslt_dir, "--out", out)
    assert code == 0, err
    assert f"rebuilding {out / 'iwslt14-de-en'}: {damaged}: not a valid gzip file" in stdout
    check_iwslt_output(out)


def damage_iwslt(local: Path, how: str) -> tuple[str, ...]:
    """Replace local/de-en.tgz by a damaged one; what the error must say."""
    archive = local / "de-en.tgz"
    label = str(archive)
    members = iwslt_members()
    if how == "missing member":
        del members["de-en/IWSLT14.TED.tst2012.de-en.en.xml"]
        make_tar(archive, members)
        return label, "has no member IWSLT14.TED.tst2012.de-en.en.xml", cr.IWSLT14_ARCHIVE.urls[0]
    if how == "misaligned train":
        members["de-en/train.tags.de-en.en"] += b"One sentence too many .\n"
        make_tar(archive, members)
        return f"{label}:train.tags.de-en.de has 48 sentence lines", f"{label}:train.tags.de-en.en has 49"
    if how == "misaligned test":
        en = iwslt_test_segs("TED.tst2011")["en"]
        members["de-en/IWSLT14.TED.tst2011.de-en.en.xml"] = iwslt_xml("TED.tst2011", "en", en[:1] + en[2:])
        make_tar(archive, members)
        return f"{label}:IWSLT14.TED.tst2011.de-en.de.xml has 3 <seg> lines", "has 2"
    if how == "seg ids":
        xml = members["de-en/IWSLT14.TED.dev2010.de-en.en.xml"].replace(b'<seg id="2">', b'<seg id="5">')
        members["de-en/IWSLT14.TED.dev2010.de-en.en.xml"] = xml
        make_tar(archive, members)
        return f"{label}:IWSLT14.TED.dev2010.de-en.de.xml: <seg> 2 has id 2 but", "has id 5"
    if how == "unclosed seg":
        xml = members["de-en/IWSLT14.TED.tst2010.de-en.de.xml"].replace(b"</seg>", b"", 1)
        members["de-en/IWSLT14.TED.tst2010.de-en.de.xml"] = xml
        make_tar(archive, members)
        return f"{label}:IWSLT14.TED.tst2010.de-en.de.xml:8: a <seg> without an id or not closed", "download it"
    if how == "truncated":
        make_tar(archive, members)
        archive.write_bytes(archive.read_bytes()[:300])
        return label, "not a valid tar archive", cr.IWSLT14_ARCHIVE.urls[0]
    archive.write_text("<html>moved</html>\n")  # "not an archive"
    return label, "not a valid tar archive", cr.IWSLT14_ARCHIVE.urls[0]


@pytest.mark.parametrize(
    "how",
    ["missing member", "misaligned train", "misaligned test", "seg ids", "unclosed seg", "truncated", "not an archive"],
)
def test_iwslt14_bad_archive_is_one_line(tmp_path, capsys, iwslt_dir, how):
    needles = damage_iwslt(iwslt_dir, how)
    out = tmp_path / "corpora"
    code, _, err = main_(capsys, "iwslt14_de_en", "--from-local", iwslt_dir, "--out", out)
    assert_failed_cleanly(code, err, out, *needles)


def test_iwslt14_bad_download_is_deleted_for_the_next_run(tmp_path, capsys, monkeypatch, iwslt_dir):
    damage_iwslt(iwslt_dir, "misaligned train")
    monkeypatch.setattr(ff, "download", lambda url, dest: shutil.copyfile(iwslt_dir / "de-en.tgz", dest))
    out = tmp_path / "corpora"
    code, _, err = main_(capsys, "iwslt14_de_en", "--out", out)
    assert_failed_cleanly(code, err, out, f"{cr.IWSLT14_ARCHIVE.urls[0]}:train.tags.de-en.en has 49")
    assert not (out / "iwslt14-de-en" / "downloads" / "de-en.tgz").exists()


# WMT'14: each archive's members as published (plus members of other pairs, which the recipes must not read).


def text(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def corpus_lines(name: str, lang: str, n: int = 3) -> list[str]:
    return [f"{name} {lang} {i}" for i in range(n)]


def sgm(kind: str, lang: str, segs: list[str]) -> bytes:
    head = f'<{kind}set setid="newstest2014" srclang="any" trglang="{lang}">\n<doc sysid="ref" docid="d1">\n'
    body = "".join(f'<seg id="{i}">{s}</seg>\n' for i, s in enumerate(segs, start=1))
    return f"{head}<p>\n{body}</p>\n</doc>\n</{kind}set>\n".encode()


def wmt_archives(local: Path, europarl_name: str = "training-parallel-europarl-v7.tgz") -> Path:
    local.mkdir(exist_ok=True)
    europarl = {}
    for other in ("de", "fr", "cs"):
        stem = f"europarl-v7.{other}-en"
        lines_other, lines_en = corpus_lines(stem, other, 4), corpus_lines(stem, "en", 4)
        lines_other[1] = ""  # an empty side: dropped
        europarl[f"{stem}.{other}"], europarl[f"{stem}.en"] = text(lines_other), text(lines_en)
    europarl["europarl-v7.de-en.de"] = europarl["europarl-v7.de-en.de"].replace(b"de 2", b"de \xff 2")  # bad UTF-8
    if europarl_name == "training-parallel-europarl-v7.tgz":
        make_tar(local / europarl_name, {f"training/{name}": data for name, data in europarl.items()})
    else:  # europarl's own de-en.tgz: one pair, no folder
        make_tar(local / europarl_name, {name: data for name, data in europarl.items() if ".de-en." in name})
    commoncrawl = {"commoncrawl.de-en.annotation": b"annotation\n"}
    nc = {}
    for other in ("de", "fr", "ru"):
        for lang in (other, "en"):
            commoncrawl[f"commoncrawl.{other}-en.{lang}"] = text(corpus_lines(f"commoncrawl.{other}-en", lang))
            stem = f"news-commentary-v9.{other}-en"
            nc[f"training/{stem}.{lang}"] = text(corpus_lines(stem, lang, 2))
    make_tar(local / "training-parallel-commoncrawl.tgz", commoncrawl)
    make_tar(local / "training-parallel-nc-v9.tgz", nc)
    make_tar(
        local / "training-parallel-un.tgz",
        {f"un/undoc.2000.fr-en.{lang}": text(corpus_lines("undoc.2000.fr-en", lang, 5)) for lang in ("fr", "en")},
    )
    make_tar(
        local / "training-giga-fren.tar",
        {
            f"giga-fren.release2.fixed.{lang}.gz": gzip.compress(text(corpus_lines("giga", lang, 6)))
            for lang in ("fr", "en")
        },
        mode="w",
    )
    dev = {f"dev/newstest2013.{lang}": text(corpus_lines("newstest2013", lang)) for lang in ("en", "de", "fr", "cs")}
    dev["dev/newstest2013-src.en.sgm"] = sgm("src", "en", ["not this one"])
    make_tar(local / "dev.tgz", dev)
    test = {}
    for pair, other in (("deen", "de"), ("fren", "fr")):
        for kind in ("src", "ref"):
            for lang in ("en", other):
                segs = [f"newstest2014 {pair} {kind} {lang} {i} &amp; co" for i in range(4)]
                test[f"test-full/newstest2014-{pair}-{kind}.{lang}.sgm"] = sgm(kind, lang, segs)
    make_tar(local / "test-full.tgz", test)
    return local


def check_wmt_output(out: Path, other: str) -> None:
    dest = out / f"wmt14-en-{other}"
    pair = f"{other}-en"
    europarl = {lang: corpus_lines(f"europarl-v7.{pair}", lang, 4) for lang in ("en", other)}
    drop = [1, 2] if other == "de" else [1]  # the empty side; the invalid UTF-8 (de-en only)
    stems = [f"commoncrawl.{pair}"] + (["undoc.2000.fr-en"] if other == "fr" else [])
    train = {}
    for lang in ("en", other):
        train[lang] = [line for i, line in enumerate(europarl[lang]) if i not in drop]
        train[lang] += [line for stem in stems for line in corpus_lines(stem, lang, 5 if "undoc" in stem else 3)]
        train[lang] += corpus_lines(f"news-commentary-v9.{pair}", lang, 2)
        if other == "fr":
            train[lang] += corpus_lines("giga", lang, 6)
    tag = f"{other}en"
    for lang, kind in (("en", "src"), (other, "ref")):
        assert gz_lines(dest / f"train.{lang}.gz") == train[lang]
        assert gz_lines(dest / f"valid.{lang}.gz") == corpus_lines("newstest2013", lang)
        assert gz_lines(dest / f"test.{lang}.gz") == [
            f"newstest2014 {tag} {kind} {lang} {i} &amp; co" for i in range(4)
        ]
    readme = (dest / "README.md").read_text(encoding="utf-8")
    for needle in ("Bojar et al. 2014", "statmt.org", "newstest2013", "newstest2014", "1 dropped (empty side)"):
        assert needle in readme, needle
    assert ("1 dropped (invalid UTF-8)" in readme) == (other == "de")
    for recipe in cr.RECIPES:
        if recipe.key == f"wmt14_en_{other}":
            for archive in recipe.archives():
                assert " or ".join(archive.urls) in readme
    assert no_temp_files(out) and not any(p.name.startswith(".extract-") for p in out.rglob("*"))


@pytest.mark.parametrize("europarl", ["training-parallel-europarl-v7.tgz", "de-en.tgz"])
def test_wmt14_en_de_from_local(tmp_path, capsys, europarl):
    local = wmt_archives(tmp_path / "download", europarl)
    out = tmp_path / "corpora"
    code, stdout, err = main_(capsys, "wmt14_en_de", "--from-local", local, "--out", out)
    assert code == 0, err
    check_wmt_output(out, "de")
    readme = (out / "wmt14-en-de" / "README.md").read_text(encoding="utf-8")
    for name in (europarl, "training-parallel-commoncrawl.tgz", "training-parallel-nc-v9.tgz", "dev.tgz"):
        assert f"| {name} | {local / name} | `{sha256(local / name)}` |" in readme
    assert "un.tgz" not in readme and "giga" not in readme
    assert f"use: nmt-train data=wmt14_en_de paths.corpora_dir={out.resolve()}" in stdout


def test_wmt14_en_fr_from_local(tmp_path, capsys):
    local = wmt_archives(tmp_path / "download")
    out = tmp_path / "corpora"
    code, stdout, err = main_(capsys, "wmt14_en_fr", "--from-local", local, "--out", out)
    assert code == 0, err
    check_wmt_output(out, "fr")
    assert f"| training-giga-fren.tar | {local / 'training-giga-fren.tar'} | " in (
        out / "wmt14-en-fr" / "README.md"
    ).read_text(encoding="utf-8")
    assert "use: nmt-train data=wmt14_en_fr" in stdout


def test_wmt14_missing_local_archives_are_named_in_one_line(tmp_path, capsys):
    local = wmt_archives(tmp_path / "download")
    for name in ("training-parallel-un.tgz", "training-giga-fren.tar"):
        (local / name).unlink()
    out = tmp_path / "corpora"
    code, _, err = main_(capsys, "wmt14_en_fr", "--from-local", local, "--out", out)
    assert_failed_cleanly(
        code,
        err,
        out,
        f"{local}: has no training-parallel-un.tgz, training-giga-fren.tar — put them there",
        cr.UN.urls[0],
    )


def test_wmt14_download_is_resumed_and_then_removed(tmp_path, capsys, monkeypatch):
    local = wmt_archives(tmp_path / "download")
    urls = []

    def fake_download(url, dest):
        urls.append(url)
        if url.endswith("test-full.tgz") and len(urls) < 6:
            raise ff.DownloadError(url, "Connection reset by peer")
        shutil.copyfile(local / url.rsplit("/", 1)[-1], dest)

    monkeypatch.setattr(ff, "download", fake_download)
    out = tmp_path / "corpora"
    code, _, err = main_(capsys, "wmt14_en_de", "--out", out)
    assert_failed_cleanly(code, err, out, f"cannot download {cr.WMT14_TEST.urls[0]}: Connection reset by peer")
    expected = [archive.urls[0] for archive in cr.RECIPES[1].archives()]
    assert urls == expected
    downloads = out / "wmt14-en-de" / "downloads"
    assert sorted(p.name for p in downloads.iterdir()) == sorted(url.rsplit("/", 1)[-1] for url in expected[:-1])

    code, stdout, err = main_(capsys, "wmt14_en_de", "--out", out)
    assert code == 0, err
    assert urls == [*expected, cr.WMT14_TEST.urls[0]] and stdout.count("reusing ") == 4
    check_wmt_output(out, "de")
    assert not downloads.exists()
    assert f"| test-full.tgz | {cr.WMT14_TEST.urls[0]} | " in (out / "wmt14-en-de" / "README.md").read_text()


def test_wmt14_network_failure_is_one_line(tmp_path, capsys, offline):
    code, _, err = main_(capsys, "wmt14_en_de", "--out", tmp_path)
    europarl = cr.RECIPES[1].archives()[0].urls
    assert offline == list(europarl)
    assert_failed_cleanly(code, err, tmp_path, "cannot download training-parallel-europarl-v7.tgz (", *europarl)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("recipe", cr.RECIPES, ids=lambda recipe: recipe.key)
def test_data_config_composes_and_reads_the_recipe_output(tmp_path, recipe):
    from nmt.data.corpus import read_corpus
    from tests.conftest import compose_config

    name = fc.DATA_CONFIG[recipe.key]
    assert (REPO / "src" / "nmt" / "configs" / "data" / f"{name}.yaml").is_file()
    cfg = compose_config("train", [f"data={name}", f"paths.corpora_dir={tmp_path}"])
    assert (cfg.data.name, cfg.data.src_lang, cfg.data.tgt_lang) == (name, recipe.src, recipe.tgt)
    assert cfg.data.tokenizer.joint and cfg.data.tokenizer.type == "unigram"
    assert cfg.data.tokenizer.vocab_size == (8000 if recipe.key.startswith("iwslt") else 32000)
    outputs = recipe.outputs(tmp_path / recipe.directory)
    for split, key in (("train", "train"), ("valid", "dev"), ("test", "test")):
        assert list(cfg.data[key]) == [str(path) for path in outputs[split]]
    if recipe.key == "iwslt14_de_en":  # what the recipe writes, nmt reads
        make_tar(tmp_path / "de-en.tgz", iwslt_members())
        rb.fetch(recipe, tmp_path, tmp_path, force=False)
        pairs = read_corpus(list(cfg.data.train))
        assert len(pairs) == 45 and pairs[0].src == "Speaker 0: Titel 0"


def test_download_shows_progress(tmp_path, capsys, monkeypatch):
    payload = b"x" * 10_000

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(payload))
    monkeypatch.setattr(ff, "CHUNK", 1000)
    monkeypatch.setattr(ff, "PROGRESS_EVERY", 4000)
    ff.download("https://example.org/big.tgz", tmp_path / "big.tgz")
    assert (tmp_path / "big.tgz").read_bytes() == payload
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("downloading https://example.org/big.tgz: 0.0 MiB of 0.0 MiB (40%)")


def test_recipe_errors_are_one_line_when_run_as_a_script(tmp_path):
    """Run as a script, fetch_corpus and corpus_recipes share one FetchError: no traceback."""
    line = assert_one_line_error(
        run("wmt14_en_de", "--from-local", tmp_path, "--out", tmp_path / "corpora"),
        f"{tmp_path}: has no training-parallel-europarl-v7.tgz or de-en.tgz, training-parallel-commoncrawl.tgz",
        "test-full.tgz — put them there (from http://statmt.org/wmt13/training-parallel-europarl-v7.tgz",
    )
    assert line.endswith("or drop --from-local to download")
