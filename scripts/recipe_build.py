"""Building a corpus_recipes.Recipe: its archives read (local or downloaded, each address in turn), the members it
names streamed out and cleaned, line-aligned .gz splits written and renamed into place together, and its README."""

from __future__ import annotations

import gzip
import io
import re
import shutil
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO, Optional

import fetch_files
from corpus_recipes import SPLITS, Archive, Part, Recipe
from fetch_files import FetchError

MAX_LINE_BYTES = 100_000  # nmt's corpus reader (nmt.data.corpus.MAX_LINE_BYTES) refuses longer lines
GZIP_LEVEL = 6
PROGRESS_PAIRS = 1_000_000  # a progress line every this many pairs read from a part
# Whole-line talk metadata in train.tags: dropped, except that the text of title and description is kept (fairseq).
IWSLT_METADATA = re.compile(rb"<(url|keywords|speaker|talkid|title|description|reviewer|translator)\b[^>]*>(.*)</\1>")
IWSLT_DOC = re.compile(rb"</?doc\b[^>]*>")
IWSLT_KEPT_TAGS = (b"title", b"description")


@dataclass
class Report:
    """What a build read and wrote, for the README."""

    sources: list[tuple[str, str, str]] = field(default_factory=list)  # archive file, where from, sha256
    parts: list[tuple[str, Part, Counter]] = field(default_factory=list)  # split, part, counts
    lines: dict[str, int] = field(default_factory=dict)  # output file name -> lines
    train_pairs: int = 0  # kept training pairs so far, for the every-n-th valid rule


# --- reading archives -------------------------------------------------------------------------------------------


def damaged(label: str, problem: str, url: str) -> FetchError:
    return FetchError(
        f"{label}: {problem} — the file is damaged or not the published one: download it again from {url}"
    )


def extract(path: Path, label: str, wanted: set[str], work: Path, url: str) -> dict[str, Path]:
    """Copy the wanted members (by file name, in any folder) out of a tar archive in one pass; name -> copy."""
    files: dict[str, Path] = {}
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted and name not in files:
                    src = archive.extractfile(member)
                    with open(work / name, "wb") as f:
                        shutil.copyfileobj(src, f, fetch_files.CHUNK)
                    files[name] = work / name
                    if len(files) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise damaged(label, f"not a valid tar archive ({e or type(e).__name__})", url) from None
    missing = sorted(wanted - files.keys())
    if missing:
        raise damaged(label, f"has no member {', '.join(missing)}", url)
    return files


def is_tar(path: Path) -> bool:
    """Whether path starts like a (possibly compressed) tar archive: an HTML error page does not."""
    try:
        with tarfile.open(path, "r|*") as archive:
            return archive.next() is not None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError):
        return False


def lines(path: Path, label: str, url: str) -> Iterator[bytes]:
    """Each line of a member (decompressed if its name ends in .gz), stripped; lines end at b"\\n" only."""
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as f:
            for raw in f:
                yield raw.strip()
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise damaged(label, f"not a valid gzip file ({e})", url) from None


def untagged(text: Iterable[bytes]) -> Iterator[bytes]:
    """IWSLT train.tags: the sentences, without the talk metadata lines; title and description keep their text."""
    for line in text:
        metadata = IWSLT_METADATA.fullmatch(line)
        if metadata is not None:
            if metadata.group(1) in IWSLT_KEPT_TAGS:
                yield metadata.group(2).strip()
        elif IWSLT_DOC.fullmatch(line) is None:
            yield line


SEG = re.compile(rb"<seg\b[^>]*?\bid\s*=\s*\"?([^\"\s>]*)\"?[^>]*>(.*?)</seg>")


def segments(text: Iterable[bytes], label: str, url: str) -> Iterator[tuple[bytes, bytes]]:
    """(id, text) of each <seg id=...>text</seg> line of an IWSLT .xml or WMT .sgm file."""
    for number, line in enumerate(text, start=1):
        if b"<seg" in line:
            seg = SEG.search(line)
            if seg is None:
                raise damaged(f"{label}:{number}", "a <seg> without an id or not closed on its line", url)
            yield seg.group(1), seg.group(2).strip()


def aligned(src: Iterator, tgt: Iterator, labels: tuple[str, str], what: str, url: str) -> Iterator[tuple]:
    """The items of src and tgt side by side; FetchError naming both files if one runs out first."""
    for number, (s, t) in enumerate(zip_longest(src, tgt), start=1):
        if s is None or t is None:
            rest = 1 + sum(1 for _ in (src if t is None else tgt))
            counts = (number - 1 + rest, number - 1) if t is None else (number - 1, number - 1 + rest)
            raise FetchError(
                f"{labels[0]} has {counts[0]} {what} but {labels[1]} has {counts[1]} — the two sides must be"
                f" line-aligned: the archive is damaged or not the published one: download it again from {url}"
            )
        yield s, t


def pairs_of(part: Part, files: dict[str, Path], labels: tuple[str, str], url: str) -> Iterator[tuple[bytes, bytes]]:
    src, tgt = lines(files[part.src], labels[0], url), lines(files[part.tgt], labels[1], url)
    if part.kind == "lines":
        yield from aligned(src, tgt, labels, "lines", url)
    elif part.kind == "tags":
        yield from aligned(untagged(src), untagged(tgt), labels, "sentence lines (metadata lines left out)", url)
    else:
        for number, (s, t) in enumerate(
            aligned(segments(src, labels[0], url), segments(tgt, labels[1], url), labels, "<seg> lines", url), 1
        ):
            if s[0] != t[0]:
                raise FetchError(
                    f"{labels[0]}: <seg> {number} has id {s[0].decode(errors='replace')} but {labels[1]}'s has id"
                    f" {t[0].decode(errors='replace')} — the two sides must be aligned: the archive is damaged or not"
                    f" the published one: download it again from {url}"
                )
            yield s[1], t[1]


def unusable(pair: tuple[bytes, bytes]) -> Optional[str]:
    """Why nmt could not use a training pair (the README counts each reason), or None."""
    if not pair[0] or not pair[1]:
        return "empty side"
    if max(map(len, pair)) > MAX_LINE_BYTES:
        return f"line over {MAX_LINE_BYTES:,} bytes"
    try:
        pair[0].decode("utf-8"), pair[1].decode("utf-8")
    except UnicodeDecodeError:
        return "invalid UTF-8"
    return None


# --- writing ----------------------------------------------------------------------------------------------------


@contextmanager
def gz_staged(target: Path) -> Iterator[BinaryIO]:
    """A buffered gzip stream into a temp file renamed onto target if the block succeeds (gzip -n: no name, no time)."""
    with fetch_files.staged(target) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=0) as packed:
            with io.BufferedWriter(packed, fetch_files.CHUNK) as f:
                yield f


class PairWriter:
    def __init__(self, stack: ExitStack, paths: tuple[Path, Path]) -> None:
        self.paths = paths
        self.files = [stack.enter_context(gz_staged(path)) for path in paths]
        self.count = 0

    def write(self, pair: tuple[bytes, bytes]) -> None:
        self.files[0].write(pair[0] + b"\n")
        self.files[1].write(pair[1] + b"\n")
        self.count += 1


def count_lines(path: Path) -> int:
    try:
        with gzip.open(path, "rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(fetch_files.CHUNK), b""))
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise FetchError(f"{path}: not a valid gzip file ({e})") from None


def check_outputs(outputs: dict[str, tuple[Path, Path]]) -> dict[str, int]:
    """Lines per output file; FetchError unless every file is there, readable, non-empty and aligned with its pair."""
    counts = {}
    for src, tgt in outputs.values():
        for path in (src, tgt):
            if not path.is_file():
                raise FetchError(f"{path}: file not found")
            counts[path.name] = count_lines(path)
        if counts[src.name] != counts[tgt.name] or not counts[src.name]:
            raise FetchError(f"{src} has {counts[src.name]} lines and {tgt} {counts[tgt.name]}: not a finished corpus")
    return counts


def kept(outputs: dict[str, tuple[Path, Path]]) -> bool:
    """True (and say so) if the corpus is already there and verifies; a damaged or partial one is to be rebuilt."""
    paths = [path for pair in outputs.values() for path in pair]
    if not any(path.exists() for path in paths):
        return False
    try:
        check_outputs(outputs)
    except FetchError as e:
        print(f"rebuilding {paths[0].parent}: {e}")
        return False
    for path in paths:
        print(f"kept {path} (already there and verified; --force to replace it)")
    return True


# --- sources ----------------------------------------------------------------------------------------------------


def find_local(recipe: Recipe, local_dir: Path) -> dict[Archive, Path]:
    """Each archive's file in local_dir, by its published name; one FetchError naming every one that is missing."""
    found, missing = {}, []
    for archive in recipe.archives():
        path = next((local_dir / name for name in archive.names if (local_dir / name).is_file()), None)
        if path is None:
            missing.append(archive)
        else:
            found[archive] = path
    if missing:
        names = ", ".join(" or ".join(archive.names) for archive in missing)
        urls = ", ".join(archive.urls[0] for archive in missing)
        raise FetchError(
            f"{local_dir}: has no {names} — put {'them' if len(missing) > 1 else 'it'} there (from {urls}),"
            " or drop --from-local to download"
        )
    return found


def download_archive(archive: Archive, downloads: Path) -> tuple[Path, str]:
    """The archive downloaded into downloads/ (or already there from an earlier run), trying each address in turn."""
    for url in archive.urls:
        target = downloads / url.rsplit("/", 1)[-1]
        if target.is_file():
            print(f"reusing {target} (downloaded earlier; delete it to download it again)")
            return target, url
    downloads.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in archive.urls:
        target = downloads / url.rsplit("/", 1)[-1]
        try:
            with fetch_files.staged(target) as tmp:
                fetch_files.download(url, tmp)
                if not is_tar(tmp):
                    raise fetch_files.DownloadError(url, "got something that is not a tar archive (an error page?)")
        except fetch_files.DownloadError as e:
            failures.append(e)
            continue
        print(f"downloaded {target}")
        return target, url
    if len(failures) == 1:
        raise failures[0]
    tried = "; ".join(f"{e.url}: {e.reason}" for e in failures)
    raise FetchError(
        f"cannot download {archive.names[0]} ({tried}) — check the network, or download it by hand and rerun"
        " with --from-local DIR"
    )


# --- building ---------------------------------------------------------------------------------------------------


def write_part(recipe: Recipe, split: str, part: Part, pairs: Iterator, writers: dict, report: Report, label: str):
    counts: Counter = Counter()
    for number, pair in enumerate(pairs, start=1):
        counts["read"] += 1
        if number % PROGRESS_PAIRS == 0:
            print(f"{split}: {part.src} + {part.tgt}: {number:,} pairs read so far", flush=True)
        if split == "train":
            reason = unusable(pair)
            if reason is not None:
                counts[f"dropped ({reason})"] += 1
                continue
            report.train_pairs += 1
            if recipe.valid_every and report.train_pairs % recipe.valid_every == 0:
                writers["valid"].write(pair)
                counts["to valid"] += 1
                continue
        else:
            try:
                pair[0].decode("utf-8"), pair[1].decode("utf-8")
            except UnicodeDecodeError:
                raise FetchError(
                    f"{label}: pair {number} is not valid UTF-8 — the file is damaged or not the published one"
                ) from None
        writers[split].write(pair)
        counts[f"to {split}"] += 1
    summary = ", ".join(f"{n:,} {what}" for what, n in counts.items())
    print(f"{split}: {part.src} + {part.tgt}: {summary}")
    report.parts.append((split, part, counts))


def build(recipe: Recipe, dest: Path, local: Optional[dict[Archive, Path]]) -> Report:
    """Write the corpus from its archives (local files, else downloads into dest/downloads); all outputs or none."""
    report = Report()
    outputs = recipe.outputs(dest)
    with ExitStack() as stack:
        writers = {split: PairWriter(stack, paths) for split, paths in outputs.items()}
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=dest, prefix=".extract-")))
        for archive in recipe.archives():
            if local is not None:
                path, url, origin = local[archive], archive.urls[0], str(local[archive])
            else:
                path, url = download_archive(archive, dest / "downloads")
                origin = url
            label = origin
            try:
                jobs = [(split, part) for split in SPLITS for part in recipe.parts(split) if part.archive == archive]
                files = extract(path, label, {name for _, part in jobs for name in (part.src, part.tgt)}, work, url)
                for split, part in jobs:
                    labels = (f"{label}:{part.src}", f"{label}:{part.tgt}")
                    write_part(recipe, split, part, pairs_of(part, files, labels, url), writers, report, labels[0])
            except FetchError:
                if local is None:
                    path.unlink(missing_ok=True)  # a damaged download: the next run fetches it again
                raise
            for copy in files.values():
                copy.unlink()
            report.sources.append((path.name, origin, fetch_files.sha256_of(path)))
        for split, writer in writers.items():
            if writer.count == 0:
                raise FetchError(
                    f"{writer.paths[0]}: the {split} split came out empty — the archives are not the published ones:"
                    f" download them again ({', '.join(archive.urls[0] for archive in recipe.archives())})"
                )
            report.lines[writer.paths[0].name] = report.lines[writer.paths[1].name] = writer.count
    return report


def readme(recipe: Recipe, report: Report) -> str:
    sources = "".join(f"| {name} | {origin} | `{sha}` |\n" for name, origin, sha in report.sources)
    parts = "".join(
        f"| {split} | {part.src} + {part.tgt} | {', '.join(f'{n:,} {what}' for what, n in counts.items())} |\n"
        for split, part, counts in report.parts
    )
    outputs = "".join(f"| {name} | {n:,} |\n" for name, n in report.lines.items())
    addresses = "".join(f"- {' or '.join(archive.urls)}\n" for archive in recipe.archives())
    return (
        f"# {recipe.title}\n\n"
        f"Prepared by scripts/fetch_corpus.py {recipe.key} from these archives (published at, in order of"
        f" preference):\n\n{addresses}\n"
        "No checksum is published for them: each was checked by structure (every member there, the two sides of each"
        " part aligned, no split empty). The sha256 of the files read:\n\n"
        f"| archive | read from | sha256 |\n|---|---|---|\n{sources}\n"
        f"## Splits\n\n{recipe.rules}\n"
        f"| split | members (source + target) | pairs |\n|---|---|---|\n{parts}\n"
        f"| file | lines |\n|---|---|\n{outputs}\n"
        "Each file is UTF-8, one sentence per line, gzipped; the two files of a split are line-aligned.\n\n"
        f"License: {recipe.license}.\n"
    )


def fetch(recipe: Recipe, out: Path, local_dir: Optional[Path], force: bool) -> None:
    dest = out / recipe.directory
    dest.mkdir(parents=True, exist_ok=True)
    if not force and kept(recipe.outputs(dest)):
        return
    local = None if local_dir is None else find_local(recipe, local_dir)
    report = build(recipe, dest, local)
    for paths in recipe.outputs(dest).values():
        for path in paths:
            print(f"wrote {path}")
    (dest / "README.md").write_text(readme(recipe, report), encoding="utf-8")
    if local is None:
        shutil.rmtree(dest / "downloads", ignore_errors=True)
