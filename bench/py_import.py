"""CPython, the peer of bench/registry.c and bench/cold.c.

Run by modhost-bench as `python3 -I py_import.py MODE FIXTURES [P]`; prints
one figure (ns per import) on stdout.  One process per sample: an extension
module, once imported, cannot be unloaded.

  cached     `import pkgA.subB.mod_N` statements of the 1,000 fixture
             modules, all already in sys.modules (1,000 per call).
  cached-os  `import os`, already imported (the figure CPython users quote).
  cold P [shared]
             import each of the 1,000 fixture modules once, from a
             sys.path of P entries (P-1 decoys, then tree/); "shared":
             the decoys of decoy-shared/.
"""
import importlib
import os
import sys
import time


def names(fixtures):
    with open(os.path.join(fixtures, "names.txt")) as f:
        return [n for n in f.read().split() if n]


def path(fixtures, p, decoys="decoy"):
    return ([os.path.join(fixtures, decoys, "d%02d" % i)
             for i in range(p - 1)] + [os.path.join(fixtures, "tree")])


def best_of(fn, per_call, calls=200):
    """Median ns per import over several batches of calls."""
    fn()
    samples = []
    for _ in range(9):
        t = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - t) / (calls * per_call))
    samples.sort()
    return samples[len(samples) // 2]


def main():
    mode, fixtures = sys.argv[1], sys.argv[2]
    mods = names(fixtures)
    if mode == "cached":
        sys.path[:0] = path(fixtures, 1)
        for n in mods:
            importlib.import_module(n)
        src = "def f():\n" + "".join("    import %s\n" % n for n in mods)
        env = {}
        exec(compile(src, "<bench>", "exec"), env)
        print(best_of(env["f"], len(mods), 20))
    elif mode == "cached-os":
        src = "def f():\n" + "    import os\n" * 1000
        env = {}
        exec(compile(src, "<bench>", "exec"), env)
        print(best_of(env["f"], 1000, 20))
    elif mode == "cold":
        decoys = "decoy-shared" if sys.argv[4:5] == ["shared"] else "decoy"
        sys.path[:0] = path(fixtures, int(sys.argv[3]), decoys)
        importlib.invalidate_caches()
        t = time.perf_counter_ns()
        for n in mods:
            importlib.import_module(n)
        print((time.perf_counter_ns() - t) / len(mods))
    else:
        sys.exit("py_import.py: unknown mode " + mode)


main()
