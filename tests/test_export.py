"""Checkpoint averaging and safetensors export: averages are the elementwise mean, exports reload bit-identical
through nmt-eval and nmt-translate, damaged or mismatched inputs are one-line errors naming the file."""

from __future__ import annotations

import functools
import json
import os
import shutil

import pytest
import safetensors
import torch

from nmt.cli import average as average_cli
from nmt.cli import evaluate, translate
from nmt.cli import export as export_cli
from nmt.config import SearchConfig
from nmt.decoding import translate_texts
from nmt.training.average import average_checkpoints, newest_checkpoints
from nmt.training.checkpoint import (
    EXPORT_INDEX,
    load_checkpoint,
    load_for_inference,
    resolve_checkpoint,
    save_checkpoint,
)
from nmt.training.export import aliases, export_safetensors
from nmt.training.trainer import Trainer
from tests.conftest import compose_config, refused, tiny_model

CPU = torch.device("cpu")
# An evaluation every step, the last two kept as step-<N>.pt for nmt-average.
FAST = ("trainer.max_steps=4", "trainer.max_tokens=1024", "trainer.eval_every=1", "trainer.keep_checkpoints=2")
MODELS = ("lstm_attn", "transformer")  # the transformer shares one matrix for source, target and output
SENTENCES = ["a b c", "d e f g h", "q r s t"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{model name: run directory} of a few training steps each on the toy corpus."""
    tmp = tmp_path_factory.mktemp("export")
    found = {}
    for name in MODELS:
        overrides = ["data=toy", *tiny_model(name), f"paths.log_dir={tmp}/outputs", "trainer.progress_bar=false", *FAST]
        found[name] = tmp / name
        Trainer(compose_config("train", overrides), found[name]).fit()
    return found


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """{model name: (its best.pt, its export in shards of at most `limit` bytes, limit)}, the limit below the size
    of the largest tensors so that those get shards of their own."""
    tmp = tmp_path_factory.mktemp("exported")
    found = {}
    for name, run in runs.items():
        best = run / "checkpoints" / "best.pt"
        limit = max(t.nbytes for t in load_checkpoint(best)["model"].values()) * 3 // 4
        export_safetensors(best, tmp / name, limit)
        found[name] = (best, tmp / name, limit)
    return found


def _perturbed(best, tmp_path, count: int) -> list:
    """`count` copies of a checkpoint with seeded noise on every weight (tied weights stay tied)."""
    model, tokenizer, config = load_for_inference(best, CPU)
    paths = []
    for seed in range(count):
        torch.manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        paths.append(tmp_path / f"step-{seed}.pt")
        save_checkpoint(paths[-1], {"model": model.state_dict(), "config": config, "tokenizer": tokenizer.state()})
    return paths


# -- averaging ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_averaged_weights_are_the_elementwise_mean(name, runs, tmp_path):
    paths = _perturbed(runs[name] / "checkpoints" / "best.pt", tmp_path, 3)
    inputs = [load_checkpoint(p)["model"] for p in paths]
    averaged = average_checkpoints(paths)
    assert "train_state" not in averaged and averaged["averaged"] == [str(p) for p in paths]
    assert averaged["model"].keys() == inputs[0].keys()
    for key, tensor in averaged["model"].items():
        values = [state[key] for state in inputs]
        assert tensor.dtype == values[0].dtype
        assert torch.equal(tensor, (sum(v.double() for v in values) / 3).to(tensor.dtype)), key
        torch.testing.assert_close(tensor, torch.stack(values).mean(0))
    assert aliases(averaged["model"]) == aliases(inputs[0])  # tied weights stay one tensor
    save_checkpoint(tmp_path / "avg.pt", averaged)
    load_for_inference(tmp_path / "avg.pt", CPU)


def test_a_training_checkpoint_averages_to_weights_only(runs):
    checkpoints = runs["lstm_attn"] / "checkpoints"
    averaged = average_checkpoints([checkpoints / "last.pt", checkpoints / "best.pt"])
    assert "train_state" in load_checkpoint(checkpoints / "last.pt") and "train_state" not in averaged


def _other_dropout(ckpt):
    ckpt["config"]["model"]["dropout"] = 0.5


def _other_vocabulary(ckpt):
    ckpt["tokenizer"]["src_model"] += b"x"


def _missing_tensor(ckpt):
    del ckpt["model"]["output.bias"]


def _other_shape(ckpt):
    ckpt["model"]["output.bias"] = torch.zeros(3)


@pytest.mark.parametrize(
    ("tamper", "needle"),
    [
        (_other_dropout, "model config differs from"),
        (_other_vocabulary, "vocabulary differs from"),
        (_missing_tensor, "has no tensor output.bias"),
        (_other_shape, "tensor output.bias is (3,)"),
    ],
)
def test_mismatched_checkpoints_arerefused(tamper, needle, runs, tmp_path):
    best = runs["lstm_attn"] / "checkpoints" / "best.pt"
    ckpt = load_checkpoint(best)
    tamper(ckpt)
    save_checkpoint(tmp_path / "other.pt", ckpt)
    refused(lambda: average_checkpoints([best, tmp_path / "other.pt"]), tmp_path / "other.pt", needle, str(best))


def test_another_architecture_isrefused(runs):
    lstm, transformer = (runs[name] / "checkpoints" / "best.pt" for name in MODELS)
    refused(lambda: average_checkpoints([lstm, transformer]), transformer, "model config differs from")


def test_the_last_k_are_the_newest_matching_files(tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for step in (1, 2, 3, 10):
        (checkpoints / f"step-{step}.pt").write_bytes(b"")
        os.utime(checkpoints / f"step-{step}.pt", (1000 + step, 1000 + step))
    (checkpoints / "best.pt").write_bytes(b"")
    newest = newest_checkpoints(tmp_path / "run", 2, "step-*.pt")
    assert [p.name for p in newest] == ["step-10.pt", "step-3.pt"]
    assert len(newest_checkpoints(checkpoints)) == 4, "step-*.pt by default: not best.pt"
    assert len(newest_checkpoints(checkpoints, None, "*.pt")) == 5
    assert [p.name for p in newest_checkpoints(checkpoints, None, "step-*.pt", [checkpoints / "step-10.pt"])] == [
        "step-3.pt",
        "step-2.pt",
        "step-1.pt",
    ]
    refused(lambda: newest_checkpoints(checkpoints, 6, "*.pt"), checkpoints, "last=6, but 5 checkpoints match")
    refused(lambda: newest_checkpoints(checkpoints, 1, "epoch-*.pt"), checkpoints, "no checkpoint matches")


def test_nmt_average_from_a_run_and_from_named_files(runs, tmp_path, capsys):
    run = runs["transformer"]
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*.pt")) == ["step-0000003.pt", "step-0000004.pt"]
    average_cli.main([f"ckpt={run}", f"out={tmp_path}/avg.pt"])
    assert "averaged 2 checkpoints" in capsys.readouterr().err
    assert len(load_checkpoint(tmp_path / "avg.pt")["averaged"]) == 2
    inputs = f"inputs=[{run}/checkpoints/best.pt,{run}]"  # a run directory stands for its best.pt
    average_cli.main([inputs, f"out={tmp_path}/avg.pt", "force=true"])
    best = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    averaged = load_checkpoint(tmp_path / "avg.pt")["model"]
    assert all(torch.equal(averaged[key], best[key]) for key in best)  # the mean of one checkpoint twice


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["out=x.pt"], "name the checkpoints either with inputs="),
        (["ckpt=RUN", "last=3", "out=x.pt"], "last=3, but 2 checkpoints match"),
        (["ckpt=RUN", "out=EXISTING"], "exists — choose another out= or pass force=true"),
    ],
)
def test_nmt_average_bad_input_is_one_line(args, needle, runs, tmp_path, capsys):
    (tmp_path / "existing.pt").write_bytes(b"keep")
    args = [a.replace("RUN", str(runs["lstm_attn"])).replace("EXISTING", str(tmp_path / "existing.pt")) for a in args]
    with pytest.raises(SystemExit) as info:
        average_cli.main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "existing.pt").read_bytes() == b"keep"


# -- export ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_shards_keep_within_the_limit_unless_one_tensor_exceeds_it(name, exported):
    _, export, limit = exported[name]
    index = json.loads((export / EXPORT_INDEX).read_text())
    shards = sorted(export.glob("model-*.safetensors"))
    assert len(shards) > 2 and sorted(index["sha256"]) == sorted([*(s.name for s in shards), "config.json"])
    counts = {shard.name: len(safetensors.safe_open(shard, "pt").keys()) for shard in shards}
    assert any(n > 1 for n in counts.values()), counts
    oversized = [shard for shard in shards if shard.stat().st_size > limit]
    assert oversized and all(counts[shard.name] == 1 for shard in oversized)
    assert bool(index["aliases"]) == (name == "transformer")  # shared storage saved once


@pytest.mark.parametrize("name", MODELS)
def test_an_export_reloads_bit_identical_and_translates_the_same(name, exported):
    best, export, _ = exported[name]
    assert resolve_checkpoint(export, "best.pt") == export
    original, tokenizer, config = load_for_inference(best, CPU)
    reloaded, tokenizer2, config2 = load_for_inference(export, CPU)
    assert config2 == config and tokenizer2.state() == tokenizer.state() and tokenizer2.specials == tokenizer.specials
    theirs = reloaded.state_dict()
    for key, tensor in original.state_dict().items():
        assert theirs[key].dtype == tensor.dtype and torch.equal(theirs[key], tensor), key
    assert aliases(theirs) == aliases(original.state_dict())
    search = SearchConfig(beam_size=3, nbest=2)
    assert translate_texts(reloaded, tokenizer2, SENTENCES, search, CPU) == translate_texts(
        original, tokenizer, SENTENCES, search, CPU
    )
    assert load_checkpoint(export)["dev"] == load_checkpoint(best)["dev"]


def test_nmt_eval_and_nmt_translate_take_the_export_dir(exported, tmp_path, capsys):
    best, export, _ = exported["transformer"]
    (tmp_path / "src.txt").write_text("a b c\nd e f g\n")
    (tmp_path / "ref.txt").write_text("c b a\ng f e d\n")
    outputs = {}
    for ckpt in (best, export):
        capsys.readouterr()
        evaluate.main([f"ckpt={ckpt}", f"src={tmp_path}/src.txt", f"ref={tmp_path}/ref.txt", f"out={tmp_path}"])
        scores = capsys.readouterr().out
        hypotheses = (tmp_path / "src.txt.beam5.hyp").read_text()
        translate.main([f"ckpt={ckpt}", "beam_size=3", "nbest=2", "a b c"])
        outputs[ckpt] = (scores, hypotheses, capsys.readouterr().out)
    assert outputs[export] == outputs[best] and outputs[best][0].startswith("BLEU|")


def test_nmt_export_writes_a_directory_translate_reads(runs, tmp_path, capsys):
    export_cli.main([f"ckpt={runs['lstm_attn']}", f"out={tmp_path}/exported", "max_shard_mb=0.005"])
    assert "shards (max_shard_mb=0.005)" in capsys.readouterr().err
    assert len(list((tmp_path / "exported").glob("*.safetensors"))) > 1
    translate.main([f"ckpt={tmp_path}/exported", "a b c"])
    assert f"using {tmp_path}/exported" in capsys.readouterr().err


def _flip_shard(export):
    shard = sorted(export.glob("model-*.safetensors"))[1]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1  # one bit of a weight: the file still parses, only the hash tells
    shard.write_bytes(bytes(data))
    return shard, "sha256 differs"


def _delete_shard(export):
    shard = sorted(export.glob("model-*.safetensors"))[0]
    shard.unlink()
    return shard, "missing from the export"


def _edit_config(export):
    config = json.loads((export / "config.json").read_text())
    config["config"]["model"]["dropout"] = 0.5
    (export / "config.json").write_text(json.dumps(config))
    return export / "config.json", "sha256 differs"


def _escape_the_directory(export):
    index = json.loads((export / EXPORT_INDEX).read_text())
    shard = next(iter(index["weight_map"].values()))
    index["sha256"]["../outside.safetensors"] = index["sha256"].pop(shard)
    index["weight_map"] = {key: "../outside.safetensors" for key in index["weight_map"]}
    (export / EXPORT_INDEX).write_text(json.dumps(index))
    return export / EXPORT_INDEX, "outside the export"


def _no_json(export):
    (export / EXPORT_INDEX).write_text("{not json")
    return export / EXPORT_INDEX, "no JSON object"


@pytest.mark.parametrize("damage", [_flip_shard, _delete_shard, _edit_config, _escape_the_directory, _no_json])
def test_a_damaged_export_is_refused_in_one_line_naming_the_file(damage, exported, tmp_path, capsys):
    export = tmp_path / "copy"
    shutil.copytree(exported["transformer"][1], export)
    file, needle = damage(export)
    refused(lambda: load_for_inference(export, CPU), file, needle)
    with pytest.raises(SystemExit) as info:
        translate.main([f"ckpt={export}", "a b c"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1 and str(file) in err, err


def test_export_replaces_only_an_earlier_export_and_only_when_forced(exported, tmp_path):
    best, _, _ = exported["lstm_attn"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    for force in (False, True):
        refused(functools.partial(export_safetensors, best, busy, 10**6, force), busy, "not an nmt export")
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    export_safetensors(best, tmp_path / "empty", 5000)  # an empty directory is fine
    refused(lambda: export_safetensors(best, tmp_path / "empty", 10**6), tmp_path / "empty", "pass force=true")
    shards = export_safetensors(best, tmp_path / "empty", 10**6, force=True)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == sorted(
        [*(s.name for s in shards), "config.json", EXPORT_INDEX]
    )  # no shard of the earlier export left behind
    assert len(shards) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]  # no temporaries
    load_for_inference(tmp_path / "empty", CPU)
