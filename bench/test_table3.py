#!/usr/bin/env python3
"""Checks of bench/table3.py's run logic against a stand-in qtrain (this file, run as a program):
the adapter learning rate is chosen on the valid split and only the chosen run is scored on the
test split, the qlora row alone trains with gradient checkpointing, and a partial table is on disk
after every row. Stdlib only, no GPU. Run by tests/scripts/bench_table.sh."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

# The stand-in's perplexities: valid by learning rate (2e-3 is best), test = valid + 0.5, so a row
# scored on the wrong split shows. Peak memory 1 GiB with --grad-checkpoint, else 2.
VALID = {"0.0002": 8.0, "0.0003": 7.0, "0.0005": 7.5, "0.001": 6.5, "0.002": 6.0, "0.004": 8.0, "0.008": 9.5}
DEFAULT_SWEEP = ("0.001", "0.002", "0.004", "0.008")  # table3.py's --lora-lr-sweep default


def fake_qtrain(argv):
    with open(os.environ["FAKE_QTRAIN_LOG"], "a") as f:
        f.write(json.dumps(argv) + "\n")
    cmd, args = argv[0], argv[1:]
    opt = {args[i]: args[i + 1] if i + 1 < len(args) else "" for i in range(len(args)) if args[i].startswith("--")}

    def ppl(lr, split):
        return VALID.get(f"{float(lr):g}", 9.0) + (0.5 if split == "test" else 0.0)

    if cmd == "train":
        out = opt["--out"]
        if os.path.basename(out) == os.environ.get("FAKE_QTRAIN_KILL_AT"):
            os.kill(os.getppid(), 9)  # table3.py dies mid-run, as at a device call's time limit
            return 1
        for d in ("adapter", "model"):
            os.makedirs(os.path.join(out, d), exist_ok=True)
        json.dump({"trainable_params": 10, "total_params": 100, "lr": opt["--lr"]},
                  open(os.path.join(out, "run.json"), "w"))
        with open(os.path.join(out, "metrics.jsonl"), "w") as m:
            m.write(json.dumps({"step": 1, "loss": 2.0, "elapsed_s": 2.0, "tokens": 4096,
                                "gpu_peak_gib": 1.0 if "--grad-checkpoint" in args else 2.0}) + "\n")
            if "--eval-data" in opt:
                m.write(json.dumps({"kind": "eval", "eval_ppl": ppl(opt["--lr"], opt["--eval-split"])}) + "\n")
    elif cmd == "eval":  # the run's rate from run.json beside the adapter or model (none: a merged model, collapsed)
        run = os.path.join(os.path.dirname(opt.get("--adapter") or opt["--model"]), "run.json")
        lr = json.load(open(run))["lr"] if os.path.exists(run) else None
        print(json.dumps({"ppl": ppl(lr, opt["--split"]) if lr else 1e6}))
    elif cmd == "generate":
        print("[generate] prompt 128 tokens (128 run) | prefill 1.50 ms (0.012 ms/token) | 64 new tokens, decode 2.000 ms/token | stop: length")
    elif cmd == "export":
        os.makedirs(opt["--out"], exist_ok=True)
    return 0


class Table3Run(unittest.TestCase):
    def run_table3(self, *extra, rows="full,int8-lora,nf4-lora,qlora", kill_at="", rc=0):
        tmp = tempfile.mkdtemp()
        self.tmp, self.log = tmp, os.path.join(tmp, "calls.jsonl")
        stub = os.path.join(tmp, "qtrain")
        with open(stub, "w") as f:
            f.write(f"#!/bin/sh\nexec {sys.executable} {os.path.abspath(__file__)} --fake-qtrain \"$@\"\n")
        os.chmod(stub, 0o755)
        env = dict(os.environ, FAKE_QTRAIN_LOG=self.log, FAKE_QTRAIN_KILL_AT=kill_at)
        p = subprocess.run([sys.executable, os.path.join(HERE, "table3.py"), "--qtrain", stub, "--model", "m.gguf",
                            "--data", "d", "--device", "cpu", "--tokens", "8192", "--rows", rows, "--work",
                            os.path.join(tmp, "w"), "--out-dir", os.path.join(tmp, "out"), "--label", "t"] + list(extra),
                           capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(p.returncode, rc, p.stdout + p.stderr)
        def text(*path):
            with open(os.path.join(tmp, *path)) as f:
                return f.read()
        self.calls = [json.loads(line) for line in text("calls.jsonl").splitlines()]
        self.doc = json.loads(text("out", "table3-t-cpu.json"))
        self.md = text("out", "table3-t-cpu.md")

    def trains(self, name):
        return [c for c in self.calls if c[0] == "train" and os.path.basename(c[c.index("--out") + 1]) == name]

    def test_sweep_picks_the_best_valid_rate_and_scores_it_on_test(self):
        self.run_table3()
        self.assertEqual(self.doc["lr"]["adapters"], 2e-3)
        self.assertEqual(self.doc["adapter_lr_sweep_valid_ppl"], {k: VALID[k] for k in DEFAULT_SWEEP})
        self.assertFalse(self.doc["adapter_lr_at_sweep_edge"])
        ql = self.doc["rows"]["qlora"]
        self.assertEqual(ql["valid_ppl"], 6.0)
        self.assertEqual(ql["ppl"], 6.5)  # the test split, through qtrain eval on the chosen adapter
        self.assertEqual(self.trains("qlora"), [], "the chosen sweep run is the qlora row; no retraining")
        for lr in DEFAULT_SWEEP:  # every sweep run evaluates on valid, never on test
            (c,) = self.trains(f"qlora-lr{lr}")
            self.assertEqual(c[c.index("--eval-split") + 1], "valid")
            self.assertIn("--grad-checkpoint", c)
        for m in ("int8-lora", "nf4-lora"):
            (c,) = self.trains(m)
            self.assertEqual(float(c[c.index("--lr") + 1]), 2e-3, m)
            self.assertNotIn("--grad-checkpoint", c, m)
            self.assertEqual(self.doc["rows"][m]["ppl"], 6.5, m)
        (c,) = self.trains("full")
        self.assertNotIn("--grad-checkpoint", c)
        self.assertEqual(ql["peak_gib"], 1.0)
        self.assertAlmostEqual(ql["latency_ms"], 1.5 + 64 * 2.0)
        gens = [c for c in self.calls if c[0] == "generate"]
        self.assertTrue(gens and all(c[c.index("--warmup") + 1] == "1" for c in gens), "latency is timed after a warmup")
        self.assertAlmostEqual(self.doc["summary"]["qlora_memory_over_full"], 0.5)
        self.assertNotIn("incomplete", self.doc)
        self.assertIn("gradient checkpointing", self.md)
        self.assertIn("adapter learning rate 0.002", self.md)

    def test_bitnet_rate_swept_on_valid_and_used_by_the_qat_phase(self):
        self.run_table3("--lora-lr-sweep", "1e-3", "--bitnet-lr-sweep", "2e-4,5e-4,1e-3,2e-3,4e-3",
                        rows="qlora,bitnet,qlora-bitnet,bitnet-lora")
        self.assertEqual(self.doc["lr"]["bitnet"], 2e-3)
        self.assertEqual(self.doc["bitnet_lr_sweep_valid_ppl"], {k: VALID[k] for k in ("0.0002", "0.0005", "0.001", "0.002", "0.004")})
        self.assertFalse(self.doc["bitnet_lr_at_sweep_edge"])
        bn = self.doc["rows"]["bitnet"]
        self.assertEqual((bn["valid_ppl"], bn["ppl"]), (6.0, 6.5))  # test split through qtrain eval of the chosen model
        self.assertEqual(self.trains("bitnet"), [], "the chosen sweep run is the bitnet row; no retraining")
        for lr in ("0.0002", "0.0005", "0.001", "0.002", "0.004"):
            (c,) = self.trains(f"bitnet-lr{lr}")
            self.assertEqual(c[c.index("--eval-split") + 1], "valid")
            self.assertEqual(c[c.index("--method") + 1], "bitnet")
        (c,) = self.trains("qlora-bitnet-qat")
        self.assertEqual(float(c[c.index("--lr") + 1]), 2e-3)
        (c,) = self.trains("bitnet-lora")
        self.assertEqual(float(c[c.index("--lr") + 1]), 1e-3)  # the adapter rate
        self.assertIn("BitNet QAT learning rate 0.002, used by", self.md)  # not at the sweep's edge

    def test_qat_phase_length_is_its_share_of_the_budget(self):
        self.run_table3("--tokens", "65536", "--lora-lr-sweep", "", "--bitnet-lr-sweep", "", rows="qlora,qlora-bitnet")
        self.assertEqual((self.doc["steps"], self.doc["qat_steps"], self.doc["qat_share"]), (16, 8, 0.5))  # the default
        (c,) = self.trains("qlora-bitnet-qat")
        self.assertEqual((c[c.index("--steps") + 1], c[c.index("--bitnet-warmup") + 1]), ("8", "4"))
        self.assertIn("then 8 BitNet QAT steps (0.5 of the budget)", self.md)
        self.assertEqual(self.doc["rows"]["qlora-bitnet QAT"]["phases"]["qat_steps"], 8)
        self.run_table3("--tokens", "65536", "--qat-share", "0.25", "--lora-lr-sweep", "", "--bitnet-lr-sweep", "",
                        rows="qlora,qlora-bitnet")
        (c,) = self.trains("qlora-bitnet-qat")
        self.assertEqual((c[c.index("--steps") + 1], c[c.index("--bitnet-warmup") + 1]), ("4", "2"))

    def test_bad_qat_share_is_refused_before_any_run(self):
        tmp = tempfile.mkdtemp()
        p = subprocess.run([sys.executable, os.path.join(HERE, "table3.py"), "--qtrain", "/nonexistent", "--model", "m",
                            "--data", "d", "--qat-share", "0", "--work", tmp, "--out-dir", tmp],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("--qat-share 0", p.stderr)

    def test_best_rate_at_the_edge_is_flagged(self):
        self.run_table3("--lora-lr-sweep", "3e-4,1e-3", "--bitnet-lr-sweep", "5e-4,1e-3", rows="qlora,bitnet")
        self.assertEqual(self.doc["lr"]["adapters"], 1e-3)
        self.assertTrue(self.doc["adapter_lr_at_sweep_edge"])
        self.assertEqual(self.doc["lr"]["bitnet"], 1e-3)
        self.assertTrue(self.doc["bitnet_lr_at_sweep_edge"])
        self.assertIn("BitNet QAT learning rate 0.001 (the sweep's edge", self.md)

    def test_bitnet_only_table_names_no_adapter_setting(self):
        self.run_table3("--bitnet-lr-sweep", "1e-3,2e-3,4e-3", rows="bitnet")
        self.assertEqual(list(self.doc["rows"]), ["bitnet"])
        self.assertNotIn("adapter learning rate", self.md)
        self.assertNotIn("gradient checkpointing", self.md)
        self.assertIn("BitNet QAT learning rate 0.002", self.md)

    def test_bitnet_without_sweep_trains_at_the_measured_rate(self):
        self.run_table3("--bitnet-lr-sweep", "", rows="bitnet")
        (c,) = self.trains("bitnet")
        self.assertEqual(float(c[c.index("--lr") + 1]), 4e-3)
        self.assertIsNone(self.doc["bitnet_lr_sweep_valid_ppl"])

    def test_no_sweep_and_no_gc(self):
        self.run_table3("--lora-lr-sweep", "", "--lora-lr", "2e-3", "--no-qlora-gc", rows="qlora")
        (c,) = self.trains("qlora")
        self.assertEqual(float(c[c.index("--lr") + 1]), 2e-3)
        self.assertNotIn("--grad-checkpoint", c)
        self.assertIsNone(self.doc["adapter_lr_sweep_valid_ppl"])
        self.assertEqual(self.doc["rows"]["qlora"]["ppl"], 6.5)
        self.assertNotIn("gradient checkpointing", self.md)

    def test_labels_of_nearby_points_are_lowered(self):
        sys.path.insert(0, HERE)
        try:
            import table3
        finally:
            sys.path.pop(0)
        pts = [("full", 4.55, 5.75), ("int8-lora", 2.50, 5.75), ("nf4-lora", 2.45, 5.85), ("qlora", 0.45, 5.84),
               ("bitnet", 4.31, 19.3), ("naive", 0.45, 2.6e7), ("bitnet-lora", 2.44, 17.1)]
        # nf4-lora sits on int8-lora; bitnet-lora is near them in memory but half a decade away in perplexity
        self.assertEqual(table3.label_rows(pts), [0, 0, 1, 0, 0, 0, 0])
        self.assertEqual(table3.label_rows([]), [])
        self.assertEqual(table3.label_rows([("a", 1.0, 5.0), ("b", 1.0, 5.0), ("c", 1.0, 5.0)]), [0, 1, 2])

    def test_partial_table_written_after_each_row(self):
        self.run_table3(kill_at="nf4-lora", rc=-9)
        self.assertEqual(sorted(self.doc["rows"]), ["full", "int8-lora"])
        self.assertIn("incomplete", self.doc)
        self.assertIn("**Incomplete**", self.md)

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--fake-qtrain":
        sys.exit(fake_qtrain(sys.argv[2:]))
    sys.path.insert(0, HERE)
    unittest.main()
