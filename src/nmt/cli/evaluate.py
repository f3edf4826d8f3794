"""nmt-eval: translate a test set with a checkpoint; print sacreBLEU and chrF with signatures; save outputs.

A memory-LSTM checkpoint is scored on whole dialogue sessions, its memory carried and then reset at every turn."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from nmt.cli import command_line, compose_config, reports_errors
from nmt.config import DataConfig
from nmt.cpu_kernels import use_cpu_kernels
from nmt.data import PreparedData, encode_corpus, make_normalizer, read_lines, read_splits
from nmt.data.dataset import dialogue_pairs
from nmt.decoding import translate_texts
from nmt.decoding.search import check_search
from nmt.errors import UserError
from nmt.evaluation import corpus_scores, evaluate_dialogue, is_degenerate, memory_value_lines
from nmt.training.checkpoint import load_for_inference, resolve_checkpoint
from nmt.training.device import resolve_device

# evaluate_dialogue's texts and ids: they go to the .hyp files, not the JSON.
_TEXT_KEYS = ("sources", "hypotheses", "references", "source_ids", "hypothesis_ids")


def _log(message: str) -> None:
    print(f"nmt-eval: {message}", file=sys.stderr)


def _data_config(cfg, run_cfg):
    """The checkpoint's data config, validated; split must name one of its held-out splits."""
    if cfg.split not in ("dev", "test"):
        raise UserError(f"split={cfg.split}: choose dev or test")
    return OmegaConf.merge(OmegaConf.structured(DataConfig), run_cfg["data"])


def _bleu_tokenize(run_cfg) -> str:
    """The checkpoint's data.bleu_tokenize; DataConfig's default for checkpoints from before it existed."""
    return run_cfg["data"].get("bleu_tokenize", DataConfig.bleu_tokenize)


def _test_set(cfg, run_cfg) -> tuple[list[str], list[str], str]:
    """(sources, references, name): explicit src=/ref= files, or a split of the checkpoint's data config (for
    dialogue data, every (turn, reply) pair of its sessions)."""
    if cfg.src or cfg.ref:
        if not (cfg.src and cfg.ref):
            raise UserError("give both src= and ref= (or neither, to use the checkpoint's data config)")
        sources, references = read_lines(cfg.src), read_lines(cfg.ref)
        if len(sources) != len(references):
            raise UserError(f"{cfg.src} has {len(sources)} lines but {cfg.ref} has {len(references)} — align them")
        norm = make_normalizer(run_cfg["data"])
        return [norm(s) for s in sources], [norm(r) for r in references], Path(cfg.src).name
    data_cfg = _data_config(cfg, run_cfg)
    split = read_splits(data_cfg, log=_log)[cfg.split]
    if data_cfg.format == "dialogue":
        examples = dialogue_pairs(split)[0]
    else:
        # The pairs the trainer scored: prepare_data drops those with an empty side.
        examples = [ex for ex in split if ex.src and ex.tgt]
    return [ex.src for ex in examples], [ex.tgt for ex in examples], f"{data_cfg.name}.{cfg.split}"


def _dialogue_split(cfg, run_cfg, tokenizer) -> tuple[PreparedData, str]:
    """A PreparedData holding only split cfg.split of the checkpoint's dialogue data, encoded with the checkpoint's
    own tokenizer (its ids are the ones the model knows), and the split's name."""
    data_cfg = _data_config(cfg, run_cfg)
    if data_cfg.format != "dialogue":
        raise UserError(
            f"{cfg.ckpt}: a memory-LSTM trained on data.format={data_cfg.format} — evaluate it on src= ref= files"
        )
    examples, offsets = dialogue_pairs(read_splits(data_cfg, log=_log)[cfg.split])
    if not examples:
        raise UserError(f"{data_cfg.name}.{cfg.split}: no dialogue of two or more turns to evaluate on")
    corpus = encode_corpus(examples, tokenizer, cfg.paths.cache_dir)
    data = PreparedData(tokenizer, {cfg.split: corpus}, {cfg.split: examples}, stats={}, sessions={cfg.split: offsets})
    return data, f"{data_cfg.name}.{cfg.split}"


def _outputs(cfg, path: Path, name: str) -> Path:
    """The stem of the output files: <out>/<name>.beam<k> (out: default <run>/eval; for an export directory, eval/
    beside it)."""
    out_dir = Path(cfg.out) if cfg.out else (path if path.is_dir() else path.parent).parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{name}.beam{cfg.beam_size}"


def _write_lines(path: str, lines: list[str]) -> None:
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def evaluate_sessions(cfg, path: Path, model, tokenizer, run_cfg, device) -> dict:
    """A memory-LSTM on whole sessions of a split: scores with the memory carried, then with it reset at every
    turn (the difference is what the memory is worth); returns the record it writes as JSON."""
    data, name = _dialogue_split(cfg, run_cfg, tokenizer)
    n_sessions, n_replies = len(data.sessions[cfg.split]) - 1, len(data.texts[cfg.split])
    _log(f"{path} on {name} ({n_sessions} sessions, {n_replies} replies, beam {cfg.beam_size})")
    max_tokens = run_cfg["trainer"]["max_tokens"]  # the training batches' budget fits the sessions' widest turns
    args = (model, data, cfg.split, cfg, max_tokens, device, None, _bleu_tokenize(run_cfg))
    carried, reset = evaluate_dialogue(*args), evaluate_dialogue(*args, reset_memory=True)
    degenerate = [sum(map(is_degenerate, m["hypotheses"])) for m in (carried, reset)]
    print(carried["bleu_line"])
    print(carried["chrf_line"])
    for line in memory_value_lines(carried, reset):
        print(line)
    print(
        f"degenerate replies (no letter or digit, or one word repeated): {degenerate[0]} of {n_replies} with the"
        f" memory carried, {degenerate[1]} with it reset"
    )

    stem = _outputs(cfg, path, name)
    _write_lines(f"{stem}.hyp", carried["hypotheses"])
    _write_lines(f"{stem}.reset.hyp", reset["hypotheses"])
    record = {"checkpoint": str(path), "test_set": name, "sessions": n_sessions, "sentences": n_replies}
    record.update(beam_size=cfg.beam_size, degenerate=degenerate[0])
    record.update({k: v for k, v in carried.items() if k not in _TEXT_KEYS})
    record["memory_reset"] = {"degenerate": degenerate[1], **{k: v for k, v in reset.items() if k not in _TEXT_KEYS}}
    Path(f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    _log(f"wrote {stem}.hyp, {stem}.reset.hyp (memory reset at every turn) and {stem}.json")
    return record


def evaluate(cfg) -> dict:
    """Decode and score as an EvalConfig says; returns the record it writes as JSON."""
    check_search(cfg)
    path = resolve_checkpoint(cfg.ckpt, "best.pt")
    device = resolve_device(cfg.device)
    model, tokenizer, run_cfg = load_for_inference(path, device)
    use_cpu_kernels(model, cfg.kernels, device)
    if run_cfg["model"]["name"] == "memory_lstm":
        if not (cfg.src or cfg.ref):
            return evaluate_sessions(cfg, path, model, tokenizer, run_cfg, device)
        _log("src=/ref= lines are unrelated pairs: each source is read from an empty memory")
    sources, references, name = _test_set(cfg, run_cfg)
    _log(f"{path} on {name} ({len(sources)} sentences, beam {cfg.beam_size})")
    hypotheses = [nbest[0][0] for nbest in translate_texts(model, tokenizer, sources, cfg, device)]
    scores = corpus_scores(hypotheses, references, _bleu_tokenize(run_cfg))
    print(scores["bleu_line"])
    print(scores["chrf_line"])

    stem = _outputs(cfg, path, name)
    _write_lines(f"{stem}.hyp", hypotheses)
    record = {"checkpoint": str(path), "test_set": name, "sentences": len(sources), "beam_size": cfg.beam_size}
    record.update(scores)
    Path(f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    _log(f"wrote {stem}.hyp and {stem}.json")
    return record


@reports_errors("nmt-eval")
def main(argv: list[str] | None = None) -> None:
    evaluate(compose_config("eval", command_line("nmt-eval", __doc__, sys.argv[1:] if argv is None else argv, "eval")))


if __name__ == "__main__":
    main()
