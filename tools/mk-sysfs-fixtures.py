#!/usr/bin/env python3
"""Writes the recorded sysfs fixtures under tests/fixtures/sysfs/ (run from the repo root).

Each fixture is a small directory tree standing for /sys, with only the files manycore reads.
The machines are described here in plain data so the expected models in
tests/tests/sysfs_fixtures.rs can be checked against this one source.
"""
import os
import shutil

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "sysfs")


def cpulist(cpus):
    cpus = sorted(cpus)
    out, i = [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(out)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")


def machine(name, cpus, present, nodes, distances):
    """cpus: {os: dict(package, core_first_sibling, siblings, caches=[(level,type,size,shared)])}
    nodes: {id: (cpus, mem_kb)}; distances: rows in node-id order or None."""
    base = os.path.join(ROOT, name)
    shutil.rmtree(base, ignore_errors=True)
    cdir = os.path.join(base, "devices/system/cpu")
    write(os.path.join(cdir, "online"), cpulist(cpus.keys()))
    write(os.path.join(cdir, "present"), cpulist(present))
    write(os.path.join(cdir, "possible"), cpulist(present))
    for cpu in present:
        d = os.path.join(cdir, f"cpu{cpu}")
        os.makedirs(d, exist_ok=True)
        if cpu not in cpus:
            write(os.path.join(d, "online"), "0")
            continue
        c = cpus[cpu]
        t = os.path.join(d, "topology")
        write(os.path.join(t, "physical_package_id"), str(c["package"]))
        write(os.path.join(t, "die_id"), "0")
        write(os.path.join(t, "core_id"), str(c["core_id"]))
        write(os.path.join(t, "thread_siblings_list"), cpulist(c["siblings"]))
        write(os.path.join(t, "core_cpus_list"), cpulist(c["siblings"]))
        for k, (level, typ, size, shared) in enumerate(c["caches"]):
            i = os.path.join(d, "cache", f"index{k}")
            write(os.path.join(i, "level"), str(level))
            write(os.path.join(i, "type"), typ)
            write(os.path.join(i, "size"), size)
            write(os.path.join(i, "coherency_line_size"), "64")
            write(os.path.join(i, "ways_of_associativity"), "8")
            write(os.path.join(i, "shared_cpu_list"), cpulist(shared))
    ndir = os.path.join(base, "devices/system/node")
    write(os.path.join(ndir, "online"), cpulist(nodes.keys()))
    write(os.path.join(ndir, "possible"), cpulist(nodes.keys()))
    for n, (ncpus, mem_kb) in nodes.items():
        d = os.path.join(ndir, f"node{n}")
        write(os.path.join(d, "cpulist"), cpulist(ncpus))
        write(os.path.join(d, "meminfo"),
              f"Node {n} MemTotal:       {mem_kb} kB\nNode {n} MemFree:        {mem_kb // 2} kB")
        if distances is not None:
            write(os.path.join(d, "distance"), " ".join(str(v) for v in distances[sorted(nodes).index(n)]))


def two_socket_four_node():
    # 2 packages x 2 nodes x 4 cores x 2 threads; Intel-style numbering: the SMT sibling of
    # CPU n is n + 16. L3 per node (sub-NUMA clustering), L2 and L1 per core.
    cpus = {}
    nodes = {n: ([], 64 * 1024 * 1024) for n in range(4)}
    for pkg in range(2):
        for node_in_pkg in range(2):
            node = pkg * 2 + node_in_pkg
            first = node * 4
            node_cpus = [first + k for k in range(4)] + [first + 16 + k for k in range(4)]
            for k in range(4):
                a, b = first + k, first + 16 + k
                for cpu in (a, b):
                    cpus[cpu] = dict(package=pkg, core_id=node_in_pkg * 4 + k, siblings=[a, b], caches=[
                        (1, "Data", "48K", [a, b]), (1, "Instruction", "32K", [a, b]),
                        (2, "Unified", "2048K", [a, b]), (3, "Unified", "30720K", node_cpus)])
            nodes[node] = (node_cpus, 64 * 1024 * 1024)
    dist = [[10, 11, 21, 21], [11, 10, 21, 21], [21, 21, 10, 11], [21, 21, 11, 10]]
    machine("two-socket-four-node", cpus, range(32), nodes, dist)


def memoryless_node():
    # Node 0: CPUs 0-3 with memory; node 1: CPUs 4-7 without memory; node 2: memory only (CXL).
    cpus = {}
    for cpu in range(8):
        llc = list(range(0, 4)) if cpu < 4 else list(range(4, 8))
        cpus[cpu] = dict(package=0, core_id=cpu, siblings=[cpu], caches=[
            (1, "Data", "32K", [cpu]), (2, "Unified", "1024K", [cpu]), (3, "Unified", "16384K", llc)])
    nodes = {0: (range(0, 4), 16 * 1024 * 1024), 1: ([*range(4, 8)], 0), 2: ([], 128 * 1024 * 1024)}
    dist = [[10, 12, 20], [12, 10, 20], [20, 20, 10]]
    machine("memoryless-node", cpus, range(8), nodes, dist)


def offline_noncontiguous():
    # Present CPUs 0-3 and 8-11 (a hole at 4-7); CPUs 2 and 9 offline. One node, no distance file.
    present = [0, 1, 2, 3, 8, 9, 10, 11]
    online = [0, 1, 3, 8, 10, 11]
    cpus = {}
    for cpu in online:
        pkg = 0 if cpu < 8 else 1
        cpus[cpu] = dict(package=pkg, core_id=cpu % 8, siblings=[cpu], caches=[(2, "Unified", "512K", [cpu])])
    nodes = {0: (online, 8 * 1024 * 1024)}
    machine("offline-noncontiguous", cpus, present, nodes, None)
    # Drop the node distance file to exercise the derived-distance path.


if __name__ == "__main__":
    two_socket_four_node()
    memoryless_node()
    offline_noncontiguous()
    print("fixtures written under", os.path.normpath(ROOT))
