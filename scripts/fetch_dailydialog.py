"""DailyDialog for fetch_corpus.py: the official zip (its split zips nested inside) or an unpacked folder in,
each file verified by the sha256 of its content, out as <out>/dailydialog/<split>/ files with a README."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Optional

import fetch_files
from fetch_files import CHUNK, FetchError, keep_existing, sha256_mismatch, staged, temp_beside

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
            fetch_files.download(DAILYDIALOG_URL, archive)
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
