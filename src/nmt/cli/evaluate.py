"""nmt-eval: translate a test set with a checkpoint; print sacreBLEU and chrF with signatures; save outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from nmt.cli import compose_config, reports_errors
from nmt.config import DataConfig
from nmt.data import make_normalizer, read_lines, read_splits
from nmt.decoding import translate_texts
from nmt.errors import UserError
from nmt.evaluation import corpus_scores
from nmt.training.checkpoint import load_for_inference, resolve_checkpoint
from nmt.training.trainer import resolve_device


def _test_set(cfg, run_cfg) -> tuple[list[str], list[str], str]:
    """(sources, references, name): explicit src=/ref= files, or a split of the checkpoint's data config."""
    if cfg.src or cfg.ref:
        if not (cfg.src and cfg.ref):
            raise UserError("give both src= and ref= (or neither, to use the checkpoint's data config)")
        sources, references = read_lines(cfg.src), read_lines(cfg.ref)
        if len(sources) != len(references):
            raise UserError(f"{cfg.src} has {len(sources)} lines but {cfg.ref} has {len(references)} — align them")
        norm = make_normalizer(run_cfg["data"])
        return [norm(s) for s in sources], [norm(r) for r in references], Path(cfg.src).name
    if cfg.split not in ("dev", "test"):
        raise UserError(f"split={cfg.split}: choose dev or test")
    data_cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), run_cfg["data"])
    # The pairs the trainer scored: prepare_data drops those with an empty side.
    examples = [ex for ex in read_splits(data_cfg)[cfg.split] if ex.src and ex.tgt]
    return [ex.src for ex in examples], [ex.tgt for ex in examples], f"{data_cfg.name}.{cfg.split}"


def evaluate(cfg) -> dict:
    """Decode and score as an EvalConfig says; returns the record it writes as JSON."""
    path = resolve_checkpoint(cfg.ckpt, "best.pt")
    device = resolve_device(cfg.device)
    model, tokenizer, run_cfg = load_for_inference(path, device)
    sources, references, name = _test_set(cfg, run_cfg)
    print(f"nmt-eval: {path} on {name} ({len(sources)} sentences, beam {cfg.beam_size})", file=sys.stderr)
    hypotheses = [nbest[0][0] for nbest in translate_texts(model, tokenizer, sources, cfg, device)]
    scores = corpus_scores(hypotheses, references)
    print(scores["bleu_line"])
    print(scores["chrf_line"])

    out_dir = Path(cfg.out) if cfg.out else path.parent.parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{name}.beam{cfg.beam_size}"
    Path(f"{stem}.hyp").write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    record = {"checkpoint": str(path), "test_set": name, "sentences": len(sources), "beam_size": cfg.beam_size}
    record.update(scores)
    Path(f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"nmt-eval: wrote {stem}.hyp and {stem}.json", file=sys.stderr)
    return record


@reports_errors("nmt-eval")
def main(argv: list[str] | None = None) -> None:
    evaluate(compose_config("eval", sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
