#!/usr/bin/env bash
# Every qtrain command in README.md's code blocks uses subcommands and flags that the binary's
# own --help lists (`qtrain data shard` and the like: the nested subcommand's help), and every
# configs/*.json preset parses as `qtrain train --config` (its keys are train's flags). A
# renamed or dropped flag then fails here, not on a user's first copy-paste.
# Usage: readme_flags.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; src=$2
python3 - "$qtrain" "$src" <<'PY'
import json, os, re, subprocess, sys
qtrain, src = sys.argv[1], sys.argv[2]
readme = open(os.path.join(src, "README.md")).read()
helps = {}


def help_of(cmd):
    if cmd not in helps:
        p = subprocess.run([qtrain, *cmd, "--help"], capture_output=True, text=True)
        helps[cmd] = (p.returncode, p.stdout + p.stderr)
    return helps[cmd]


def subcommands(text):  # the "Subcommands:" section of a --help
    part = text.split("Subcommands:", 1)
    return set(re.findall(r"^  ([a-z][a-z0-9-]*)\s", part[1], re.M)) if len(part) == 2 else set()


bad, seen = [], 0
for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S):
    for line in re.sub(r"\\\n", " ", block).split("\n"):
        line = re.sub(r"\s#.*$", "", line)
        for m in re.finditer(r"(?:\./build/qtrain|(?<![\w/-])qtrain)((?:\s+[^|;&<>]*)?)", line):
            words = m.group(1).split()
            if not words or words[0].startswith("-"):
                continue
            cmd = ()
            while words and not words[0].startswith("-") and words[0] in subcommands(help_of(cmd)[1] if cmd else
                                                                                      help_of(())[1]):
                cmd += (words.pop(0),)
            if not cmd:
                bad.append(f"unknown subcommand in: {line.strip()}")
                continue
            seen += 1
            rc, text = help_of(cmd)
            known = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", text))
            for w in words:
                flag = w.split("=", 1)[0]
                if re.fullmatch(r"--[a-z0-9][a-z0-9-]*", flag) and flag not in known:
                    bad.append(f"qtrain {' '.join(cmd)}: no flag {flag} (README: {line.strip()[:100]})")
for name in sorted(os.listdir(os.path.join(src, "configs"))):
    if not name.endswith(".json"):
        continue
    cfg = os.path.join(src, "configs", name)
    keys = json.load(open(cfg))
    sub = ["eval"] if name.endswith("-eval.json") else ["generate"] if "generate" in name else ["train"]
    p = subprocess.run([qtrain, *sub, "--config", cfg, "--help"], capture_output=True, text=True)
    if p.returncode != 0:
        bad.append(f"configs/{name}: `qtrain {sub[0]} --config` refuses it: {(p.stderr or p.stdout).strip()[:200]}")
if seen < 10:
    bad.append(f"only {seen} qtrain commands found in README.md: the block parsing is broken")
for b in bad:
    print("FAIL", b)
print(f"{'ok' if not bad else 'FAIL'}   {seen} README commands and the configs/ presets checked against --help")
sys.exit(1 if bad else 0)
PY
