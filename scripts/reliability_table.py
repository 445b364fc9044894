#!/usr/bin/env python3
"""The README's reliability table, from real runs: every fault-injection test of the suite run
--repeats times (each run injects the faults its row names into the real `lmsoftmax` binary
and checks the message, the checkpoints and the resume), then every fuzz target for
--fuzz-seconds (scripts/fuzz.sh). Prints a Markdown table; exits 1 when anything failed.

    python3 scripts/reliability_table.py --repeats 3 --fuzz-seconds 60
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (package, test binary, test path, what one run injects, injections per run or None when the
# test prints "N kills")
CASES = [
    ("lmsoftmax", "cli", "resume::killed_at_random_moments_then_resumed_gives_the_same_metrics",
     "SIGKILL at random moments of a 3-epoch run (training, evaluation, writes), resumed each time", None),
    ("lmsoftmax", "cli", "faults::killed_while_writing_each_file_of_an_epoch_then_resumed_gives_the_same_metrics",
     "SIGKILL while writing each of an epoch's 7 files (metrics, margins, figure, 3 checkpoints)", 7),
    ("lmsoftmax", "cli", "resume::killed_while_writing_a_checkpoint_then_resumed_gives_the_same_metrics",
     "SIGKILL inside the checkpoint writes of epochs 1 and 2", 2),
    ("lmsoftmax", "cli", "faults::killed_during_evaluation_then_resumed_gives_the_same_metrics",
     "SIGKILL during evaluation", 1),
    ("lmsoftmax", "cli", "reliability::ctrl_c_abandons_the_epoch_says_how_to_resume_and_the_resume_finishes",
     "SIGINT (Ctrl-C) mid-epoch", 1),
    ("lmsoftmax", "cli", "resume::a_full_disk_is_a_clear_error_and_the_run_resumes_from_the_intact_checkpoint",
     "disk full (file-size limit) while writing an epoch", 1),
    ("lmsoftmax", "cli", "faults::a_folder_the_user_may_not_write_is_a_clear_error_and_nothing_is_touched",
     "read-only run folder (resume into it, new run below it), as an unprivileged user", 2),
    ("lmsoftmax", "cli", "faults::dataset_files_removed_or_truncated_under_a_running_training",
     "every training image removed, then truncated, under a running training", 2),
    ("lmsoftmax", "cli", "faults::an_unreadable_dataset_folder_is_reported_as_unreadable_once",
     "dataset folder or files the user may not read (info and train)", 4),
    ("lmsoftmax", "cli", "a_diverging_run_stops_with_the_epoch_and_batch",
     "a diverging run (non-finite loss)", 1),
    ("lmsoftmax", "cli", "reliability::a_second_run_into_a_folder_in_use_is_refused_with_the_holders_pid",
     "a second process into a folder in use, then after the holder was SIGKILLed", 2),
    ("lmsoftmax", "cli", "corrupt_checkpoint_and_bad_options_are_clear_errors",
     "corrupt, truncated and foreign checkpoints; bad options", 1),
    ("lmsoftmax", "cli", "reliability::resume_with_other_data_or_options_names_every_difference",
     "resume with other data or options", 1),
    ("lmsoftmax", "cli", "reliability::bad_output_names_and_empty_splits_fail_before_training",
     "output names outside the folder or over run files; empty splits", 1),
    ("lmsoftmax-data", "data", "bad_images::",
     "images that fail to read or decode (every way), with and without --skip-bad-images", 1),
]


def cargo_test(package, binary, test, extra_env=None):
    exact = [] if test.endswith("::") else ["--exact"]
    cmd = ["cargo", "test", "--locked", "-q", "-p", package, "--test", binary, test, "--",
           "--nocapture", "--test-threads=1", *exact]
    env = dict(**__import__("os").environ, **(extra_env or {}))
    start = time.time()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    out = res.stdout + res.stderr
    ran = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", out)
    if ran is None or int(ran.group(1)) + int(ran.group(2)) == 0:
        sys.exit(f"no test matched {package} {binary} {test}:\n{out[-2000:]}")
    return res.returncode == 0, out, time.time() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each fault-injection test")
    ap.add_argument("--fuzz-seconds", type=float, default=60, help="seconds per fuzz target")
    args = ap.parse_args()
    # build once, so that the first timed run is not a compile
    subprocess.run(["cargo", "test", "--locked", "-q", "-p", "lmsoftmax", "-p", "lmsoftmax-data",
                    "--no-run"], cwd=ROOT, check=True)
    failed = False
    print("| what was tried | runs | faults injected | survived (clear message, intact checkpoint, identical resume) |")
    print("|---|---:|---:|---:|")
    for package, binary, test, what, per_run in CASES:
        passed, injected = 0, 0
        for _ in range(args.repeats):
            ok, out, _ = cargo_test(package, binary, test)
            kills = re.search(r"(\d+) kills", out)
            n = int(kills.group(1)) if per_run is None and kills else (per_run or 0)
            injected += n
            passed += ok
            if not ok:
                failed = True
                print(f"FAILED: {test}\n{out[-3000:]}", file=sys.stderr)
        print(f"| {what} | {args.repeats} | {injected} | {passed}/{args.repeats} runs |", flush=True)
    fuzz = subprocess.run([str(ROOT / "scripts/fuzz.sh"), str(args.fuzz_seconds)], cwd=ROOT,
                          capture_output=True, text=True)
    for line in fuzz.stdout.splitlines():
        m = re.match(r"\| (\S+) \| (\d+) \| (\d+) \| ([\d.]+) \|", line)
        if m:
            target, corpus, cases, secs = m.groups()
            print(f"| fuzz target `{target}`: {int(cases):,} mutated or random inputs in {float(secs):.0f} s "
                  f"after its {corpus}-file regression corpus | 1 | {int(cases):,} | "
                  f"{'all' if fuzz.returncode == 0 else 'NOT all'} (an error or a valid value, no panic) |")
    if fuzz.returncode != 0:
        failed = True
        print(fuzz.stdout + fuzz.stderr, file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
