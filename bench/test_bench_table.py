#!/usr/bin/env python3
"""Checks of bench/bench_table.py (fastest anchor, JSON rows, markdown, merge) with made-up
numbers, and of bench/train_vs_hf.py's row commands (--dry-run logic); stdlib only, no GPU.
Run by tests/scripts/bench_table.sh:  python3 bench/test_bench_table.py"""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_table as bt  # noqa: E402
import train_vs_hf as tvh  # noqa: E402


def stand_in(d, name, script):
    """An executable shell script named name in d: a stand-in for a tool the bench runs."""
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, 0o755)
    return path


def result(name="llama7b-qlora-r64", table="peft7b", q_tok=13000.0, anchors=None, errors=(), **kw):
    r = dict(name=name, config="llama-7b qlora r64 bs 4x2048 ckpt", table=table, method="QLoRA (NF4 + DQ)",
             qtrain=dict(tok_s=q_tok, peak_gib=11.5, alloc_peak_gib=10.5, trainable_params=159907840,
                         total_params=6898323456, setup_s=21.0),
             anchors=anchors if anchors is not None else {
                 "HF+peft+bnb": dict(tok_s=4000.0, peak_gib=16.5, torch_max_alloc_gib=13.0,
                                     trainable_params=159907840, total_params=6898323456, setup_s=30.0),
                 "Unsloth": dict(tok_s=6500.0, peak_gib=9.0, torch_max_alloc_gib=7.5,
                                 trainable_params=159907840, total_params=6898323456, setup_s=40.0)},
             anchor_errors=list(errors))
    r.update(kw)
    return r


class FastestAnchor(unittest.TestCase):
    def test_picks_highest_tok_s_that_ran(self):
        label, nums = bt.fastest_anchor({"HF+peft+bnb": {"tok_s": 4000.0}, "Unsloth": {"tok_s": 6500.0},
                                         "HF+peft+bnb+Liger": {"tok_s": None}})
        self.assertEqual(label, "Unsloth")
        self.assertEqual(nums["tok_s"], 6500.0)

    def test_none_ran(self):
        self.assertEqual(bt.fastest_anchor({}), (None, None))
        self.assertEqual(bt.fastest_anchor({"HF+peft": {"tok_s": None}}), (None, None))

    def test_baseline_is_the_hf_anchor_not_the_fastest(self):
        self.assertEqual(bt.baseline_anchor({"Unsloth": {}, "HF+peft+bnb": {}})[0], "HF+peft+bnb")


class JsonRows(unittest.TestCase):
    def test_tok_and_memory_rows(self):
        tok, mem = bt.json_rows(result())
        self.assertEqual(tok["metric"], "tok/s")
        self.assertEqual(tok["fastest_anchor"], "Unsloth")
        self.assertAlmostEqual(tok["ratio_fastest"], 13000.0 / 6500.0)
        self.assertEqual(tok["baseline_anchor"], "HF+peft+bnb")
        self.assertEqual(tok["anchor"], 4000.0)  # `qtrain report --bench` plots qtrain against "anchor"
        self.assertAlmostEqual(tok["ratio"], 3.25)
        self.assertEqual(tok["anchor_unsloth"], 6500.0)
        self.assertEqual(tok["trainable_params"], 159907840)
        self.assertEqual(mem["metric"], "peak GPU mem GiB (nvidia-smi)")
        self.assertEqual(mem["fastest_anchor"], "Unsloth")
        self.assertAlmostEqual(mem["ratio_fastest"], 11.5 / 9.0)
        self.assertEqual(mem["qtrain_allocator_peak_gib"], 10.5)
        for r in (tok, mem):  # the keys report.py's is_comparison needs
            self.assertTrue(all(k in r for k in ("config", "metric", "qtrain", "anchor")))

    def test_failed_anchor_is_recorded_and_not_fastest(self):
        res = result(anchors={"HF+peft+bnb": dict(tok_s=4000.0, peak_gib=16.5)},
                     errors=[{"anchor": "unsloth", "error": "ImportError: no module named xformers"}])
        tok, _ = bt.json_rows(res)
        self.assertEqual(tok["fastest_anchor"], "HF+peft+bnb")
        self.assertEqual(tok["anchor_errors"], [{"anchor": "unsloth", "error": "ImportError: no module named xformers"}])

    def test_qtrain_failed(self):
        res = result(error="RuntimeError: qtrain exited 1: boom")
        res["qtrain"] = {}
        tok, mem = bt.json_rows(res)
        self.assertIsNone(tok["qtrain"])
        self.assertIsNone(tok["ratio"])
        self.assertEqual(tok["error"], "RuntimeError: qtrain exited 1: boom")


class Markdown(unittest.TestCase):
    def doc(self):
        skipped = dict(name="llama7b-hqq2-r64", config="c", table="peft7b", method="HQQ 2-bit + LoRA",
                       skipped="qtrain's HQQ solver is slow", anchors={}, anchor_errors=[])
        ia3 = result(name="llama7b-qia3", method="IA3 (NF4 base)",
                     anchors={"HF+peft+bnb": dict(tok_s=5448.9, peak_gib=18.43, trainable_params=1179648,
                                                  total_params=6739595264)},
                     anchors_not_run={"unsloth": "Unsloth's recipe is LoRA/QLoRA"},
                     errors=[{"anchor": "liger", "error": "a | pipe"}])
        return bt.document([result(), ia3, skipped], device="NVIDIA-H200", date="2026-12-05",
                           table_titles={"peft7b": "LLaMA-7B shape"}, versions={"peft": "0.21.2"})

    def test_table(self):
        md = bt.markdown(self.doc())
        lines = md.splitlines()
        self.assertIn("## LLaMA-7B shape", lines)
        row = next(l for l in lines if l.startswith("| QLoRA"))
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        self.assertEqual(cells[1], "159.91M (2.318%) / 159.91M (2.318%)")
        self.assertEqual(cells[2], "13,000")
        self.assertEqual(cells[3], "4,000 (HF+peft+bnb)")
        self.assertEqual(cells[4], "3.25×")
        self.assertEqual(cells[5], "6,500 (Unsloth)")
        self.assertEqual(cells[6], "2×")
        self.assertEqual(cells[7], "11.5 / 16.5 / 9")
        ia3 = next(l for l in lines if l.startswith("| IA3"))
        self.assertIn("liger failed: a \\| pipe", ia3)  # a '|' in an error does not break the table
        self.assertEqual(ia3.count(" | "), 8)
        hqq = next(l for l in lines if l.startswith("| HQQ 2-bit"))
        self.assertIn("not run: qtrain's HQQ solver is slow", hqq)
        self.assertIn("No unsloth anchor for IA3 (NF4 base): Unsloth's recipe is LoRA/QLoRA.", lines)
        self.assertIn("Anchor software: peft 0.21.2", md)

    def test_every_anchor_and_reuse_in_notes(self):
        three = result(name="llama7b-qlora-plan", method="QLoRA plan", anchors={
            "HF+peft+bnb": dict(tok_s=4000.0, peak_gib=16.5, reused_from="llama7b-qlora"),
            "HF+peft+bnb+Liger": dict(tok_s=4500.0, peak_gib=15.0, reused_from="llama7b-qlora"),
            "Unsloth": dict(tok_s=6500.0, peak_gib=9.0, reused_from="llama7b-qlora")})
        md = bt.markdown(bt.document([three], device="d", date="x"))
        row = next(l for l in md.splitlines() if l.startswith("| QLoRA plan"))
        self.assertIn("also HF+peft+bnb+Liger 4,500 tok/s", row)  # neither baseline nor fastest, still shown
        self.assertIn("anchors as measured for llama7b-qlora in this run", row)
        self.assertNotIn("anchors as measured", bt.markdown(self.doc()))

    def test_skipped_rows_are_not_json_rows(self):
        doc = self.doc()
        self.assertEqual(len(doc["rows"]), 4)  # two results x (tok/s, memory); the skipped one has none
        self.assertEqual(len(doc["results"]), 3)


class Merge(unittest.TestCase):
    def test_later_wins_order_kept(self):
        a = bt.document([result(name="r1", q_tok=1.0), result(name="r2", q_tok=2.0)], device="d", date="x",
                        versions={"peft": "1"}, table_titles={"peft7b": "A"})
        b = bt.document([result(name="r2", q_tok=20.0), result(name="r3", q_tok=3.0)], device="d", date="y",
                        versions={"unsloth": "2"}, table_titles={"peft_smol": "B"})
        m = bt.merge([a, b])
        self.assertEqual([r["name"] for r in m["results"]], ["r1", "r2", "r3"])
        self.assertEqual(m["results"][1]["qtrain"]["tok_s"], 20.0)
        self.assertEqual(m["versions"], {"peft": "1", "unsloth": "2"})
        self.assertEqual(m["table_titles"], {"peft7b": "A", "peft_smol": "B"})
        self.assertEqual(m["date"], "y")
        self.assertEqual(len(m["rows"]), 6)

    def test_write_and_render(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "peft_family_x.json")
            bt.write(bt.document([result()], device="d", date="x"), p)
            with open(p) as f:
                self.assertEqual(json.load(f)["results"][0]["name"], "llama7b-qlora-r64")
            with open(os.path.join(d, "peft_family_x.md")) as f:
                self.assertTrue(f.read().startswith("# "))


class RowCommands(unittest.TestCase):
    class Args:
        skip_anchor = False
        liger = True
        unsloth = True

    def cmd(self, name):
        return tvh.qtrain_cmd("qtrain", "/m", "/s.bin", tvh.ROWS[name], 6, "/o")

    def test_method_flags(self):
        c = self.cmd("llama7b-qlora-loftq-r64")
        self.assertIn("--loftq-iters", c)
        self.assertEqual(c[c.index("--lora-alpha") + 1], "64")  # LoftQ: scale 1
        c = self.cmd("llama7b-hqq2-r64")
        self.assertEqual(c[c.index("--method") + 1], "hqq-lora")
        self.assertEqual(c[c.index("--hqq-bits") + 1], "2")
        c = self.cmd("llama7b-qia3")
        self.assertEqual(c[c.index("--adapter-type") + 1], "ia3")
        self.assertNotIn("--target", c)  # peft's IA3 modules on both sides
        c = self.cmd("llama7b-lora-r64")
        self.assertEqual((c[c.index("--method") + 1], c[c.index("--lora-r") + 1]), ("lora", "64"))
        self.assertIn("--grad-checkpoint", c)

    def test_anchor_specs_match_the_qtrain_side(self):
        s = tvh.anchor_spec(tvh.ROWS["llama7b-qdora-r64"], 6, 2, 32000)
        self.assertEqual((s["base"], s["adapter"], s["r"], s["alpha"], s["ckpt"]), ("nf4", "dora", 64, 128, True))
        s = tvh.anchor_spec(tvh.ROWS["smol-hqq4"], 6, 2, 49152)
        self.assertEqual((s["base"], s["hqq_bits"]), ("hqq", 4))
        self.assertTrue(tvh.anchor_spec(tvh.ROWS["smol-qlora-loftq"], 6, 2, 49152)["loftq"])
        self.assertEqual(tvh.anchor_spec(tvh.ROWS["llama7b-lora-r64"], 6, 2, 32000)["base"], "bf16")
        # The activation-plan row: qtrain without --grad-checkpoint, its anchors with checkpointing.
        plan = tvh.ROWS["llama7b-qlora-plan"]
        self.assertTrue(tvh.anchor_spec(plan, 6, 2, 32000)["ckpt"])
        self.assertNotIn("--grad-checkpoint", tvh.qtrain_cmd("q", "m", "s", plan, 6, "o"))
        self.assertIn("--grad-checkpoint", tvh.qtrain_cmd("q", "m", "s", tvh.ROWS["llama7b-qlora"], 6, "o"))
        # The budget row: qtrain's plan within a budget, checkpoints offloaded; the anchors as the GC row's.
        c = tvh.qtrain_cmd("q", "m", "s", tvh.ROWS["llama7b-qlora-budget"], 6, "o")
        self.assertEqual(c[c.index("--memory-budget") + 1], "14.5")
        self.assertIn("--offload-checkpoints", c)
        self.assertNotIn("--grad-checkpoint", c)
        self.assertEqual(tvh.anchor_spec(tvh.ROWS["llama7b-qlora-budget"], 6, 2, 32000),
                         tvh.anchor_spec(tvh.ROWS["llama7b-qlora"], 6, 2, 32000))
        self.assertIn("within 14.5 GiB, checkpoints offloaded; anchors ckpt", tvh.describe(tvh.ROWS["llama7b-qlora-budget"]))

    def test_which_anchors(self):
        keys = lambda n: [k for k, _ in tvh.anchors_for(tvh.ROWS[n], self.Args)[0]]
        self.assertEqual(keys("llama7b-qlora-r64"), ["hf", "liger", "unsloth"])
        self.assertEqual(keys("llama7b-qdora-r64"), ["hf", "liger"])
        self.assertEqual(keys("gpt2m-lora"), ["hf"])
        self.assertIn("unsloth", tvh.anchors_for(tvh.ROWS["gpt2m-lora"], self.Args)[1])
        labels = dict(tvh.anchors_for(tvh.ROWS["llama7b-qlora-r64"], self.Args)[0])
        self.assertEqual(labels["hf"], "HF+peft+bnb")
        self.assertEqual(dict(tvh.anchors_for(tvh.ROWS["smol-hqq2"], self.Args)[0])["hf"], "HF+peft+hqq")

    def test_llmc_anchors_gpt2_full_only(self):
        class WithLlmc(self.Args):
            llmc = "/bin/train_gpt2cu"
        keys = lambda n: [k for k, _ in tvh.anchors_for(tvh.ROWS[n], WithLlmc)[0]]
        self.assertEqual(keys("gpt2m-full"), ["hf", "llmc"])
        self.assertEqual(dict(tvh.anchors_for(tvh.ROWS["gpt2m-full"], WithLlmc)[0])["hf"], "HF")  # no peft in it
        self.assertEqual(dict(tvh.anchors_for(tvh.ROWS["gpt2m-full"], WithLlmc)[0])["llmc"], "llm.c")

        class CudnnBuild(WithLlmc):
            llmc_label = "llm.c+cuDNN"
        self.assertEqual(dict(tvh.anchors_for(tvh.ROWS["gpt2m-full"], CudnnBuild)[0])["llmc"], "llm.c+cuDNN")
        self.assertEqual(bt.baseline_anchor({"llm.c": {"tok_s": 2.0}, "HF": {"tok_s": 1.0}})[0], "HF")
        self.assertEqual(keys("gpt2m-lora"), ["hf"])  # llm.c has no adapters
        self.assertNotIn("llmc", keys("smol-lora"))
        self.assertNotIn("llmc", [k for k, _ in tvh.anchors_for(tvh.ROWS["gpt2m-full"], self.Args)[0]])

    def test_llmc_log_parsed(self):
        # A stand-in for train_gpt2cu printing its step lines: the median after warmup is the tok/s.
        with tempfile.TemporaryDirectory() as d:
            fake = stand_in(d, "train_gpt2cu", "echo 'num_parameters: 354871296 => bytes: 709742592'\n"
                            "for t in 50000.0 100000.0 110000.0 120000.0; do\n"
                            "  echo \"step    1/4 | loss 11.0 (+nanz)| norm 1.0 (+nanz)| lr 1e-4 | 70.00 ms | 40.0% bf16 MFU | $t tok/s\"\n"
                            "done\n")
            nums, err = tvh.run_llmc(fake, "/s.bin", tvh.ROWS["gpt2m-full"], 4, 1, d, 30)
            self.assertIsNone(err)
            self.assertEqual(nums["tok_s"], 110000.0)
            self.assertEqual(nums["trainable_params"], 354871296)
            cmd = tvh.llmc_cmd(fake, "/s.bin", tvh.ROWS["gpt2m-full"], 4, d)  # what the run and --dry-run show
            self.assertEqual((cmd[cmd.index("-e") + 1], cmd[cmd.index("-b") + 1], cmd[cmd.index("-t") + 1]),
                             ("d24", "8", "1024"))
            nums, err = tvh.run_llmc(fake, "/s.bin", tvh.ROWS["gpt2m-full"], 4, 4, d, 30)
            self.assertIsNone(nums)  # no step after warmup: an error, not a number
            self.assertIn("4 step lines", err)

    def test_qtrain_row_parsed_and_its_checkpoint_dropped(self):
        # A stand-in qtrain writing what `train --out` does: tok/s is the median after warmup; the checkpoint,
        # adapter and model go unless --keep-outputs (a full fine-tune's are gigabytes in --work).
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out")
            fake = stand_in(d, "qtrain", "mkdir -p $1/checkpoint $1/adapter\necho x > $1/checkpoint/state.bin\n"
                            "for s in 1 2 3 4; do echo \"{\\\"step\\\": $s, \\\"tokens_per_s\\\": $((s * 100))}\"; "
                            "done > $1/metrics.jsonl\necho '{\"trainable_params\": 7, \"total_params\": 9, \"setup_s\": 1.5}' "
                            "> $1/run.json\n")
            for keep in (False, True):
                q = tvh.run_qtrain([fake, out], out, os.path.join(d, "log"), 1, 30, keep=keep)
                self.assertEqual((q["tok_s"], q["trainable_params"], q["setup_s"]), (300.0, 7, 1.5))
                self.assertEqual(os.path.exists(os.path.join(out, "checkpoint")), keep)
                self.assertTrue(os.path.exists(os.path.join(out, "metrics.jsonl")))

    def test_anchor_cache_key(self):
        spec = tvh.anchor_spec(tvh.ROWS["llama7b-qlora"], 8, 3, 32000)
        plan = tvh.anchor_spec(tvh.ROWS["llama7b-qlora-plan"], 8, 3, 32000)
        self.assertEqual(spec, plan)  # the plan row's anchors are the GC row's: measured once
        p = lambda s, k="hf": tvh.anchor_cache_path("/w", "run", k, "/m", s)
        self.assertNotEqual(p(spec), tvh.anchor_cache_path("/w", "another run", "hf", "/m", spec))
        self.assertEqual(p(spec), p(plan))
        self.assertNotEqual(p(spec), p(dict(spec, steps=9)))
        self.assertNotEqual(p(spec), p(spec, "unsloth"))
        self.assertNotEqual(p(spec), p(tvh.anchor_spec(tvh.ROWS["llama7b-qlora-b1"], 8, 3, 32000)))

    def test_a_spec_is_measured_once_per_run(self):
        # main() over the GC row and the plan row (same anchor specs): each anchor runs once, the plan row
        # reuses it; a second invocation with the same --run-id reuses too, another run measures again.
        calls = []
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "m", "llama-7b"))
            with open(os.path.join(d, "m", "llama-7b", "config.json"), "w") as f:
                json.dump({"vocab_size": 32000}, f)
            saved = (tvh.run_anchor, tvh.run_qtrain, tvh.write_shard, tvh.gpu_name, sys.argv)
            tvh.run_anchor = lambda key, *a, **k: (calls.append(key) or dict(tok_s=100.0 + len(calls)), None, {"peft": "x"})
            tvh.run_qtrain = lambda *a, **k: dict(tok_s=500.0)
            tvh.write_shard = lambda *a, **k: None
            tvh.gpu_name = lambda: "gpu"
            try:
                def run(rows, run_id=None):
                    sys.argv = ["train_vs_hf.py", "--qtrain", "q", "--models", os.path.join(d, "m"), "--out", d,
                                "--work", os.path.join(d, "w"), "--liger", "--unsloth", "--rows", rows] + \
                               (["--run-id", run_id] if run_id else [])
                    with contextlib.redirect_stdout(io.StringIO()):  # its printed table
                        tvh.main()
                    with open(os.path.join(d, f"train_vs_hf_gpu_{tvh.datetime.date.today().isoformat()}.json")) as f:
                        return {r["name"]: r for r in json.load(f)["results"]}
                res = run("llama7b-qlora,llama7b-qlora-plan", "r1")
                self.assertEqual(calls, ["hf", "liger", "unsloth"])
                self.assertEqual(res["llama7b-qlora-plan"]["anchors"]["Unsloth"]["reused_from"], "llama7b-qlora")
                self.assertNotIn("reused_from", res["llama7b-qlora"]["anchors"]["Unsloth"])
                run("llama7b-qlora-budget", "r1")  # a later call of the same run
                self.assertEqual(len(calls), 3)
                run("llama7b-qlora-budget")  # a run of its own
                self.assertEqual(len(calls), 6)
            finally:
                tvh.run_anchor, tvh.run_qtrain, tvh.write_shard, tvh.gpu_name, sys.argv = saved

    def test_tables_name_known_rows(self):
        for t in tvh.TABLES.values():
            self.assertEqual(len(t["rows"]), 7)
            for n in t["rows"]:
                self.assertIn(n, tvh.ROWS)

    def test_budget(self):
        b = tvh.Budget(100, reserve_s=10, min_s=20)
        self.assertAlmostEqual(b.timeout(), 90, delta=1)
        self.assertIsNone(b.timeout(min_s=95))
        self.assertEqual(tvh.Budget(0).timeout(), tvh.Budget(0).cap)


if __name__ == "__main__":
    unittest.main(verbosity=1)
