#!/usr/bin/env python3
"""Real programs under four mallocs: glibc, mimalloc and jemalloc (Debian's libmimalloc2.0 and
libjemalloc2, via LD_PRELOAD) and libmanycore_malloc.so, in one run.

Each program runs N times per allocator (allocators interleaved within each repetition, so
machine noise spreads over all of them) under `/usr/bin/time -f "%e %M"`; the table gives the
median elapsed time and median peak RSS, time relative to glibc and RSS relative to mimalloc,
plus the median CPU time (user + sys) relative to glibc, which a loaded machine disturbs less
than elapsed time.
Goal (issue 6): no program slower than 1.1x glibc, none with peak RSS above 1.2x mimalloc.

usage: tools/bench-preload.py [--reps N] [--lib PATH] [--only NAME[,NAME]] [--markdown]
Needs: cargo (unless --lib), cc, gcc, python3, git, sort, /usr/bin/time,
       apt-get install libmimalloc2.0 libjemalloc2
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tests", "preload")
ALLOCATORS = [
    ("glibc", None),
    ("mimalloc", "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"),
    ("jemalloc", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
    ("manycore", "MANYCORE"),
]
TIME_GOAL = 1.1
RSS_GOAL = 1.2


def die(msg):
    sys.exit("bench-preload: " + msg)


def build_library():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "manycore-preload"], cwd=ROOT, check=True)
    lib = os.path.join(target, "release", "libmanycore_malloc.so")
    if not os.path.isfile(lib):
        die(f"{lib} missing after cargo build")
    return lib


def make_inputs(work):
    """Writes the inputs the programs read; returns {name: argv}."""
    # sort: 2.5 M pseudo-random lines (about 60 MB).
    lines = os.path.join(work, "lines.txt")
    x = 88172645463325252
    with open(lines, "w") as f:
        out = []
        for _ in range(2_500_000):
            x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
            x ^= x >> 7
            x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
            n = 4 + x % 37
            out.append("".join(chr(97 + (x >> (k % 58)) % 26) for k in range(n)))
        f.write("\n".join(out) + "\n")
    # gcc: a generated translation unit heavy enough for about a second of -O2.
    big_c = os.path.join(work, "big.c")
    with open(big_c, "w") as f:
        f.write("#include <string.h>\n")
        for i in range(250):
            f.write(f"struct s{i} {{ int a[{i % 7 + 1}]; char name[{8 + i % 13}]; double d; }};\n")
            f.write(f"int f{i}(struct s{i} *p, int n) {{ int t = 0;\n")
            f.write("  for (int k = 0; k < n; k++) { switch ((k * %d) & 7) {\n" % (i + 3))
            for c in range(8):
                f.write(f"    case {c}: t += p->a[k % {i % 7 + 1}] * {c + i}; break;\n")
            f.write("  } if (t > 1000) t -= (int)strlen(p->name); }\n  return t + (int)p->d; }\n")
    # C programs, compiled once without preloading.
    for name in ("threads", "forks"):
        subprocess.run(["cc", "-O2", "-w", "-pthread", "-o", os.path.join(work, name), os.path.join(SRC, name + ".c")], check=True)
    # git: a session in a fresh repository per run.
    git_sh = os.path.join(work, "git-session.sh")
    with open(git_sh, "w") as f:
        f.write(
            """set -e
d=$(mktemp -d); cd "$d"
export HOME="$d" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@x
git init -q -b main .
for i in $(seq 1 600); do printf 'line %s\\n%s\\n' "$i" "$(seq 1 $((i % 50)))" > "f$i.txt"; done
git add . && git commit -q -m one
for i in $(seq 1 600 | awk 'NR % 3 == 0'); do echo changed >> "f$i.txt"; done
git commit -q -a -m two
git log --stat >/dev/null
git gc -q
cd /; rm -rf "$d"
"""
        )
    return {
        "python-churn": [sys.executable, os.path.join(SRC, "churn.py"), "30"],
        "sort-60MB": ["env", "LC_ALL=C", "sort", "-o", "/dev/null", lines],
        "git-session": ["bash", git_sh],
        "gcc-O2": ["gcc", "-O2", "-c", "-o", "/dev/null", big_c],
        "threads-xfree": [os.path.join(work, "threads"), "2000000", "8000"],
        "fork-in-threads": [os.path.join(work, "forks"), "120"],
    }


def run_once(argv, preload, work):
    out = os.path.join(work, "time.out")
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    cmd = ["/usr/bin/time", "-f", "%e %M %U %S", "-o", out]
    if preload:
        cmd += ["env", "LD_PRELOAD=" + preload]
    r = subprocess.run(cmd + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        die(f"{' '.join(argv)} with {preload or 'glibc'} failed: {r.stderr.decode()[-2000:]}")
    with open(out) as f:
        secs, kib, user, sys_ = f.read().split()[-4:]
    return float(secs), int(kib), float(user) + float(sys_)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--lib", help="libmanycore_malloc.so to use (default: build it)")
    ap.add_argument("--only", help="comma-separated program names")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    a = ap.parse_args()
    if a.reps < 1:
        die(f"--reps {a.reps}: need at least 1")
    for tool in ("cc", "gcc", "python3", "git", "sort", "/usr/bin/time"):
        if not shutil.which(tool):
            die(f"{tool} not found (Debian: apt-get install gcc python3 git coreutils time)")
    lib = a.lib or build_library()
    if not os.path.isfile(lib):
        die(f"--lib {lib}: no such file")
    allocs = []
    for name, path in ALLOCATORS:
        path = lib if path == "MANYCORE" else path
        if path and not os.path.isfile(path):
            die(f"{name}: {path} missing (apt-get install libmimalloc2.0 libjemalloc2)")
        allocs.append((name, path))
    with tempfile.TemporaryDirectory(prefix="bench-preload-") as work:
        programs = make_inputs(work)
        if a.only:
            wanted = a.only.split(",")
            unknown = [w for w in wanted if w not in programs]
            if unknown:
                die(f"--only: unknown program(s) {unknown}; known: {list(programs)}")
            programs = {k: v for k, v in programs.items() if k in wanted}
        results = {}
        for prog, argv in programs.items():
            samples = {n: [] for n, _ in allocs}
            for _ in range(a.reps):
                for name, path in allocs:
                    samples[name].append(run_once(argv, path, work))
            results[prog] = {
                n: tuple(statistics.median(s[i] for s in v) for i in range(3)) for n, v in samples.items()
            }
            print(f"# {prog} done", file=sys.stderr)
    names = [n for n, _ in allocs]
    header = (
        ["program"]
        + [f"{n} s" for n in names]
        + ["manycore/glibc time", "manycore/glibc CPU"]
        + [f"{n} MiB" for n in names]
        + ["manycore/mimalloc RSS"]
    )
    rows = []
    missed = []
    for prog, r in results.items():
        t_ratio = r["manycore"][0] / r["glibc"][0] if r["glibc"][0] > 0 else float("inf")
        m_ratio = r["manycore"][1] / r["mimalloc"][1]
        c_ratio = r["manycore"][2] / r["glibc"][2] if r["glibc"][2] > 0 else float("inf")
        if t_ratio > TIME_GOAL:
            missed.append(f"{prog}: time {t_ratio:.2f}x glibc (goal <= {TIME_GOAL})")
        if m_ratio > RSS_GOAL:
            missed.append(f"{prog}: peak RSS {m_ratio:.2f}x mimalloc (goal <= {RSS_GOAL})")
        rows.append(
            [prog]
            + [f"{r[n][0]:.2f}" for n in names]
            + [f"{t_ratio:.2f}", f"{c_ratio:.2f}"]
            + [f"{r[n][1] / 1024:.1f}" for n in names]
            + [f"{m_ratio:.2f}"]
        )
    if a.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
        for row in rows:
            print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
    print(f"\nmedians of {a.reps} runs; CPU = user + sys of the program and its children; goals: time <= {TIME_GOAL}x glibc, peak RSS <= {RSS_GOAL}x mimalloc")
    print("goals missed: " + ("; ".join(missed) if missed else "none"))


if __name__ == "__main__":
    main()
