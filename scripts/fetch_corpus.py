"""Download, verify and lay out the corpora nmt does not bundle (Multi30k task 1, Tatoeba cmn-eng, DailyDialog here;
IWSLT'14 de-en and WMT'14 en-de/en-fr in corpus_recipes.py)."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import io
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, NoReturn, Optional

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "external"
TIMEOUT_S = 60
CHUNK = 1 << 20
PROGRESS_EVERY = 256 << 20  # bytes between download progress lines when stderr is not a terminal

MULTI30K_DIR = "multi30k-task1"
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
MULTI30K_SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
}
MULTI30K_LICENSE = (
    "non-commercial research and/or educational purposes only (Multi30K README); cite Elliott et al. 2016 (W16-3210)"
)

TATOEBA_DIR = "tatoeba-cmn-eng"
TATOEBA_URL = "https://www.manythings.org/anki/cmn-eng.zip"
TATOEBA_ZIP = "cmn-eng.zip"
TATOEBA_MEMBER = "cmn.txt"
TATOEBA_LICENSE = "CC-BY 2.0 (France); attribution: www.manythings.org/anki and tatoeba.org"

DAILYDIALOG_DIR = "dailydialog"
DAILYDIALOG_URL = "http://yanran.li/files/ijcnlp_dailydialog.zip"
DAILYDIALOG_ZIP = "ijcnlp_dailydialog.zip"
# Path under DAILYDIALOG_DIR -> sha256 of its content (uncompressed, for the .gz). The dialogue text is needed; the
# per-turn dialog-act and emotion labels are copied (and verified) when the source has them.
DAILYDIALOG_TEXT = {
    "train/dialogues_train.txt.gz": "71633bd5fdb0b09dd82215b131b56432cf7329a0fe50bc8adec168713d350d1a",
    "validation/dialogues_validation.txt": "2ad64701fe3a4449e7a6ee7cdc6c2a71c80f77b8a34f708ac0532395f499081c",
    "test/dialogues_test.txt": "3c323651cdfb09f7b529f850eddf96a638fc6cc9b43330b77956ab248484a1a8",
}
DAILYDIALOG_LABELS = {
    "train/dialogues_act_train.txt": "e910d5cfedc500d03dbedd3bcf8661ae8cf0e44d029e56a291f49a7b67042adf",
    "train/dialogues_emotion_train.txt": "5c94e57c6e6c6641f4b1386513085f9d9b934229e732a556424ca7dfae4b6c77",
    "validation/dialogues_act_validation.txt": "fbeee7a1b2927c9cb33d6fdc384bb3ea55abf040928d2de4dcea57ab4a669682",
    "validation/dialogues_emotion_validation.txt": "3d4094299a995e998bbc3492ce1755c9abc1e7f56500c840e83b12dd16580596",
    "test/dialogues_act_test.txt": "566649e92babfa528a77757b161deeee91e9c91fe0db71760063747e132d3f4c",
    "test/dialogues_emotion_test.txt": "482b7235f91a1441055a09241b2d2709bb1702f4a08d7316c27fa807cba7d3c9",
}
DAILYDIALOG_LICENSE = (
    "CC BY-NC-SA 4.0 (non-commercial, share-alike; the authors' license, which is why nmt does not bundle it);"
    " cite Li et al. 2017, DailyDialog: A Manually Labelled Multi-turn Dialogue Dataset (IJCNLP 2017, arXiv:1710.03957)"
)

# The data config (src/nmt/configs/data/<name>.yaml) that reads each corpus from paths.corpora_dir.
DATA_CONFIG = {
    "multi30k": "multi30k_de_en",
    "tatoeba_cmn": "tatoeba_eng_cmn",
    "dailydialog": "dailydialog",
    "iwslt14_de_en": "iwslt14_de_en",
    "wmt14_en_de": "wmt14_en_de",
    "wmt14_en_fr": "wmt14_en_fr",
}


class FetchError(Exception):
    """A problem the user can fix; the message is one line naming the file, the problem and the fix."""


class DownloadError(FetchError):
    """A download that failed: the URL and why (so a recipe with mirrors can name them all)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot download {url}: {reason} — check the network, or download it by hand"
            " and rerun with --from-local DIR"
        )
        self.url, self.reason = url, reason


# --- files ------------------------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def temp_beside(target: Path) -> Iterator[Path]:
    """An empty hidden temp file in target's directory, removed when the block ends."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A temp file that is renamed onto target only if the block (fill + verify) succeeds."""
    with temp_beside(target) as tmp:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it an ordinary file's mode
        os.replace(tmp, target)


def keep_existing(target: Path, verify: Callable[[Path], object]) -> bool:
    """True (and say so) if target is already there and verifies; an unverified one is to be replaced."""
    if not target.exists():
        return False
    try:
        verify(target)
    except FetchError as e:
        print(f"replacing {target}: {e}")
        return False
    print(f"kept {target} (already there and verified; --force to replace it)")
    return True


# --- sources ----------------------------------------------------------------------------------------------------


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    return str(getattr(e, "reason", "") or e or type(e).__name__)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MiB"


def copy_with_progress(src: BinaryIO, dest: BinaryIO, url: str, total: Optional[int]) -> None:
    """Copy src to dest, showing progress: a live line on a terminal, else a line every PROGRESS_EVERY bytes."""
    live, done, shown, next_line = sys.stderr.isatty(), 0, 0.0, PROGRESS_EVERY

    def status() -> str:
        of = f" of {_mib(total)} ({100 * done // total}%)" if total else ""
        return f"downloading {url}: {_mib(done)}{of}"

    for block in iter(lambda: src.read(CHUNK), b""):
        dest.write(block)
        done += len(block)
        if live and time.monotonic() - shown >= 0.5:
            print(f"\r{status()}", end="", file=sys.stderr, flush=True)
            shown = time.monotonic()
        elif not live and done >= next_line:
            print(status(), flush=True)
            next_line += PROGRESS_EVERY
    if live and shown:
        print(f"\r{status()}", file=sys.stderr, flush=True)


def download(url: str, dest: Path) -> None:
    """Stream url into dest with progress; DownloadError naming the URL (and suggesting --from-local) on failure."""
    with open(dest, "wb") as f:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                length = response.headers.get("Content-Length") if response.headers else None
                copy_with_progress(response, f, url, int(length) if length and length.isdigit() else None)
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise DownloadError(url, _reason(e)) from None


def copy_local(src: Path, dest: Path) -> None:
    if not src.is_file():
        raise FetchError(f"{src}: file not found — put the downloaded file there, or drop --from-local to download it")
    shutil.copyfile(src, dest)


def extract_member(zip_path: Path, member: str, dest: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as archive, archive.open(member) as src, open(dest, "wb") as f:
            shutil.copyfileobj(src, f, CHUNK)
    except KeyError:
        raise FetchError(f"{zip_path}: has no member {member} — download it again from {TATOEBA_URL}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise FetchError(f"{zip_path}: not a valid zip file ({e}) — download it again from {TATOEBA_URL}") from None


# --- multi30k ---------------------------------------------------------------------------------------------------


def sha256_mismatch(label: str, expected: str, actual: str, url: str) -> FetchError:
    return FetchError(
        f"{label}: sha256 mismatch (expected {expected}, got {actual}) — the file is damaged or not the"
        f" official release: download it again from {url}"
    )


def check_sha256(path: Path, expected: str, label: str, url: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise sha256_mismatch(label, expected, actual, url)


def fetch_multi30k_file(dest: Path, name: str, local_dir: Optional[Path], force: bool) -> None:
    target, url, expected = dest / name, MULTI30K_URL + name, MULTI30K_SHA256[name]
    if not force and keep_existing(target, lambda p: check_sha256(p, expected, str(p), url)):
        return
    with staged(target) as tmp:
        if local_dir is None:
            download(url, tmp)
        else:
            copy_local(local_dir / name, tmp)
        check_sha256(tmp, expected, url if local_dir is None else str(local_dir / name), url)
    print(f"fetched {target}")


def multi30k_readme() -> str:
    rows = "".join(f"| {name} | {MULTI30K_URL}{name} | `{sha}` |\n" for name, sha in MULTI30K_SHA256.items())
    return (
        "# Multi30k task 1 (EN-DE), raw\n\n"
        f"Fetched by scripts/fetch_corpus.py from {MULTI30K_URL} (each file's sha256 verified).\n\n"
        f"| file | source | sha256 |\n|---|---|---|\n{rows}\n"
        f"License: {MULTI30K_LICENSE}.\n"
    )


def fetch_multi30k(out: Path, local_dir: Optional[Path], force: bool) -> None:
    dest = out / MULTI30K_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for name in MULTI30K_SHA256:
        fetch_multi30k_file(dest, name, local_dir, force)
    (dest / "README.md").write_text(multi30k_readme(), encoding="utf-8")


# --- tatoeba cmn-eng --------------------------------------------------------------------------------------------


def check_pairs(path: Path, label: str) -> int:
    """The number of lines; FetchError naming file:line unless each has >= 2 non-empty tab-separated fields."""
    fix = f"the file is damaged or not a manythings.org export: download it again from {TATOEBA_URL}"
    count = 0
    with open(path, "rb") as f:
        for count, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise FetchError(f"{label}:{count}: invalid UTF-8 — {fix}") from None
            fields = line.split("\t")
            if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
                raise FetchError(
                    f"{label}:{count}: expected at least 2 non-empty tab-separated fields"
                    f" (english<TAB>chinese), got {line[:60]!r} — {fix}"
                )
    if count == 0:
        raise FetchError(f"{label}: empty file — {fix}")
    return count


def tatoeba_from_local(local_dir: Path, dest: Path) -> str:
    """Fill dest from local_dir's cmn.txt or cmn-eng.zip; the label to name the source by in messages."""
    text, archive = local_dir / TATOEBA_MEMBER, local_dir / TATOEBA_ZIP
    if text.is_file():
        copy_local(text, dest)
        return str(text)
    if archive.is_file():
        extract_member(archive, TATOEBA_MEMBER, dest)
        return f"{archive}:{TATOEBA_MEMBER}"
    raise FetchError(
        f"{local_dir}: has neither {TATOEBA_MEMBER} nor {TATOEBA_ZIP} — put one there (from {TATOEBA_URL}),"
        " or drop --from-local to download it"
    )


def tatoeba_from_network(dest: Path) -> str:
    with temp_beside(dest.parent / TATOEBA_ZIP) as archive:
        download(TATOEBA_URL, archive)
        extract_member(archive, TATOEBA_MEMBER, dest)
    return f"{TATOEBA_URL}:{TATOEBA_MEMBER}"


def tatoeba_readme(target: Path, pairs: int) -> str:
    return (
        "# Tatoeba EN-ZH (cmn-eng), manythings.org Anki export\n\n"
        f"Fetched by scripts/fetch_corpus.py from {TATOEBA_URL} (member {TATOEBA_MEMBER}).\n"
        "The content changes between releases, so it is checked for format, not by hash.\n\n"
        f"- {TATOEBA_MEMBER}: {pairs} lines, sha256 `{sha256_of(target)}`\n\n"
        f"License: {TATOEBA_LICENSE}.\n"
    )


def fetch_tatoeba_cmn(out: Path, local_dir: Optional[Path], force: bool) -> None:
    dest = out / TATOEBA_DIR
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / TATOEBA_MEMBER
    if force or not keep_existing(target, lambda p: check_pairs(p, str(p))):
        with staged(target) as tmp:
            label = tatoeba_from_network(tmp) if local_dir is None else tatoeba_from_local(local_dir, tmp)
            check_pairs(tmp, label)
        print(f"fetched {target}")
    pairs = check_pairs(target, str(target))
    (dest / "README.md").write_text(tatoeba_readme(target, pairs), encoding="utf-8")


# --- dailydialog ------------------------------------------------------------------------------------------------


def bad_gzip(label: str, e: BaseException) -> FetchError:
    return FetchError(
        f"{label}: not a valid gzip file ({e}) — the file is damaged: download it again from {DAILYDIALOG_URL}"
    )


def content_digest(path: Path, label: str) -> tuple[str, int]:
    """The sha256 and line count of path's content, decompressed if it is a .gz."""
    digest, lines = hashlib.sha256(), 0
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
                lines += block.count(b"\n")
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise bad_gzip(label, e) from None
    return digest.hexdigest(), lines


def check_dailydialog(path: Path, expected: str, label: str) -> int:
    """The number of lines; FetchError naming label unless path's (uncompressed) content has the expected sha256."""
    actual, lines = content_digest(path, label)
    if actual != expected:
        raise sha256_mismatch(label, expected, actual, DAILYDIALOG_URL)
    return lines


def release_name(rel: str) -> str:
    """The release's name for the file kept at rel: train/dialogues_train.txt.gz -> dialogues_train.txt."""
    return Path(rel).name.removesuffix(".gz")


def find_member(archive: zipfile.ZipFile, name: str) -> Optional[str]:
    """The member called name, in whatever folder (macOS's __MACOSX/._name debris does not match), or None."""
    return next((member for member in archive.namelist() if member.rsplit("/", 1)[-1] == name), None)


class DailyDialogZip:
    """The official ijcnlp_dailydialog.zip: each split's files are in a nested <split>.zip (or, tolerated, not)."""

    def __init__(self, path: Path, label: str) -> None:
        self.label = label
        self.outer = self._open(path, label)
        self.nested: dict[str, tuple[Optional[zipfile.ZipFile], str]] = {}

    def __enter__(self) -> DailyDialogZip:
        return self

    def __exit__(self, *exc: object) -> None:
        for nested, _ in self.nested.values():
            if nested is not None:
                nested.close()
        self.outer.close()

    @staticmethod
    def _failed(label: str, e: BaseException) -> FetchError:
        if isinstance(e, NotImplementedError):  # e.g. deflate64, which zipfile cannot read
            return FetchError(
                f"{label}: {e} — unzip it with another tool, unzip the train.zip, validation.zip and test.zip in it"
                " too, and rerun with --from-local on the folder holding train/, validation/ and test/"
            )
        return FetchError(f"{label}: not a valid zip file ({e}) — download it again from {DAILYDIALOG_URL}")

    @classmethod
    def _open(cls, file: Path | io.BytesIO, label: str) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(file)
        except zipfile.BadZipFile as e:
            raise cls._failed(label, e) from None

    def _split_zip(self, split: str) -> tuple[Optional[zipfile.ZipFile], str]:
        """The nested <split>.zip (None if there is none) and its label."""
        if split not in self.nested:
            member = find_member(self.outer, f"{split}.zip")
            if member is None:
                self.nested[split] = (None, self.label)
            else:
                label = f"{self.label}:{member}"
                data = io.BytesIO()
                self._copy(self.outer, member, data, label)
                self.nested[split] = (self._open(data, label), label)
        return self.nested[split]

    @classmethod
    def _copy(cls, archive: zipfile.ZipFile, member: str, dest: BinaryIO, label: str) -> None:
        try:
            with archive.open(member) as src:
                shutil.copyfileobj(src, dest, CHUNK)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
            raise cls._failed(label, e) from None

    def extract(self, rel: str, dest: Path) -> Optional[str]:
        """Write the content of rel's file into dest; the label naming where it came from, or None if it is absent."""
        name = release_name(rel)
        archive, label = self.outer, self.label
        member = find_member(archive, name)
        if member is None:
            nested, label = self._split_zip(Path(rel).parent.name)
            if nested is None:
                return None
            archive, member = nested, find_member(nested, name)
            if member is None:
                return None
        label = f"{label}:{member}"
        with open(dest, "wb") as f:
            self._copy(archive, member, f, label)
        return label

    def missing(self, rel: str) -> FetchError:
        return FetchError(
            f"{self.label}: has no {release_name(rel)} (nor a {Path(rel).parent.name}.zip holding it) — not the"
            f" official release: download it again from {DAILYDIALOG_URL}"
        )


class DailyDialogDir:
    """A folder laid out like the output, <split>/dialogues_<split>.txt (or .txt.gz): e.g. the split zips unzipped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def find(self, rel: str) -> Optional[Path]:
        plain = self.root / Path(rel).parent / release_name(rel)
        for path in (plain, plain.with_name(plain.name + ".gz")):
            if path.is_file():
                return path
        return None

    def extract(self, rel: str, dest: Path) -> Optional[str]:
        path = self.find(rel)
        if path is None:
            return None
        if path.suffix != ".gz":
            shutil.copyfile(path, dest)
            return str(path)
        try:
            with gzip.open(path, "rb") as src, open(dest, "wb") as f:
                shutil.copyfileobj(src, f, CHUNK)
        except (gzip.BadGzipFile, zlib.error, EOFError) as e:
            raise bad_gzip(str(path), e) from None
        return str(path)

    def missing(self, rel: str) -> FetchError:
        wanted = Path(rel).parent / release_name(rel)
        return FetchError(
            f"{self.root}: has no {wanted} (nor {wanted}.gz) — put it there (it is in {DAILYDIALOG_URL}),"
            " or drop --from-local to download it"
        )


@contextmanager
def dailydialog_source(dest: Path, local_dir: Optional[Path]) -> Iterator[DailyDialogZip | DailyDialogDir]:
    """local_dir's <split>/ files if it has any, else its ijcnlp_dailydialog.zip; without local_dir, the download."""
    if local_dir is None:
        with temp_beside(dest / DAILYDIALOG_ZIP) as archive:
            download(DAILYDIALOG_URL, archive)
            with DailyDialogZip(archive, DAILYDIALOG_URL) as source:
                yield source
        return
    layout, archive = DailyDialogDir(local_dir), local_dir / DAILYDIALOG_ZIP
    if any(layout.find(rel) for rel in DAILYDIALOG_TEXT):
        yield layout
    elif archive.is_file():
        with DailyDialogZip(archive, str(archive)) as source:
            yield source
    else:
        raise FetchError(
            f"{local_dir}: has neither {DAILYDIALOG_ZIP} nor train/dialogues_train.txt etc. — put the zip there"
            f" (from {DAILYDIALOG_URL}), or drop --from-local to download it"
        )


def fetch_dailydialog_file(source: DailyDialogZip | DailyDialogDir, target: Path, rel: str, expected: str) -> bool:
    """Fetch rel into target (gzipped if its name ends in .gz), verified; False if the source has no such file."""
    with temp_beside(target) as plain:
        label = source.extract(rel, plain)
        if label is None:
            return False
        check_dailydialog(plain, expected, label)
        with staged(target) as tmp:
            if target.suffix != ".gz":
                os.replace(plain, tmp)
            else:  # like gzip -9n: no name or time in the header, so the same text gives the same bytes
                with open(plain, "rb") as src, open(tmp, "wb") as raw:
                    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as f:
                        shutil.copyfileobj(src, f, CHUNK)
    print(f"fetched {target}")
    return True


def dailydialog_readme(rows: list[tuple[str, int, str]]) -> str:
    table = "".join(f"| {rel} | {lines} | `{sha}` |\n" for rel, lines, sha in rows)
    return (
        "# DailyDialog (Li et al., IJCNLP 2017): multi-turn English dialogues, official train/validation/test split\n\n"
        f"Fetched by scripts/fetch_corpus.py from {DAILYDIALOG_URL} (the split archives train.zip, validation.zip"
        " and test.zip in it), each file's sha256 verified (for the .gz, that of its uncompressed content).\n\n"
        "- `dialogues_<split>.txt`: one dialogue per line, space-tokenized; every turn ends with ` __eou__`.\n"
        "- `dialogues_act_<split>.txt`: a dialog-act label per turn (1 inform, 2 question, 3 directive,"
        " 4 commissive).\n"
        "- `dialogues_emotion_<split>.txt`: an emotion label per turn (0 none, 1 anger, 2 disgust, 3 fear,"
        " 4 happiness, 5 sadness, 6 surprise).\n\n"
        f"| file | lines | sha256 (uncompressed content) |\n|---|---|---|\n{table}\n"
        f"License: {DAILYDIALOG_LICENSE}.\n"
    )


def fetch_dailydialog(out: Path, local_dir: Optional[Path], force: bool) -> None:
    dest = out / DAILYDIALOG_DIR
    wanted = {**DAILYDIALOG_TEXT, **DAILYDIALOG_LABELS}
    for rel in wanted:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)

    def verified(rel: str) -> Callable[[Path], int]:
        return lambda path: check_dailydialog(path, wanted[rel], str(path))

    todo = [rel for rel in wanted if force or not keep_existing(dest / rel, verified(rel))]
    if todo:
        with dailydialog_source(dest, local_dir) as source:
            for rel in todo:
                if fetch_dailydialog_file(source, dest / rel, rel, wanted[rel]):
                    continue
                if rel in DAILYDIALOG_TEXT:
                    raise source.missing(rel)
                print(f"skipped {rel}: {source.label} has no {release_name(rel)} (optional: dialog-act/emotion labels)")
    rows = [(rel, verified(rel)(dest / rel), sha) for rel, sha in wanted.items() if (dest / rel).is_file()]
    (dest / "README.md").write_text(dailydialog_readme(rows), encoding="utf-8")


# corpus_recipes uses the helpers above through `import fetch_corpus`: run as a script, this module is that one.
if __name__ == "__main__":
    sys.modules.setdefault("fetch_corpus", sys.modules[__name__])
import corpus_recipes  # noqa: E402

FETCHERS: dict[str, Callable[[Path, Optional[Path], bool], None]] = {
    "multi30k": fetch_multi30k,
    "tatoeba_cmn": fetch_tatoeba_cmn,
    "dailydialog": fetch_dailydialog,
    **corpus_recipes.FETCHERS,
}


# --- command line -----------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"fetch_corpus: {message} (see --help)", file=sys.stderr)
        sys.exit(1)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = _Parser(description=__doc__)
    parser.add_argument("corpus", choices=list(FETCHERS), help="which corpus to fetch")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpora directory (default: %(default)s)")
    parser.add_argument(
        "--from-local",
        type=Path,
        metavar="DIR",
        help="take the files from this already-downloaded directory instead of the network (same verification)",
    )
    parser.add_argument("--force", action="store_true", help="replace files that are already there and verified")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    try:
        if args.from_local is not None and not args.from_local.is_dir():
            raise FetchError(f"{args.from_local}: not a directory — --from-local needs the folder holding the files")
        FETCHERS[args.corpus](out, args.from_local, args.force)
    except (FetchError, OSError) as e:
        message = " ".join(str(e).splitlines())
        print(f"fetch_corpus: {message}", file=sys.stderr)
        return 1
    print(f"use: nmt-train data={DATA_CONFIG[args.corpus]} paths.corpora_dir={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
