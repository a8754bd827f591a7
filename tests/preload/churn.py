"""Churns dicts, lists and strings; prints a digest that depends only on the scale argument.

usage: python3 churn.py [ROUNDS]
"""
import hashlib
import sys

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
digest = hashlib.sha256()
state = 12345


def rand():
    global state
    state = (state * 1103515245 + 12345) & 0x7FFFFFFF
    return state


live = []
for r in range(rounds):
    table = {}
    for i in range(20000):
        key = "k%d_%d" % (rand() % 5000, r)
        table.setdefault(key, []).append(str(rand()) * (1 + rand() % 4))
    words = sorted(table.keys(), key=lambda k: (len(table[k]), k))
    text = " ".join(words[:2000])
    parts = text.split(" ")
    joined = "|".join(p.upper()[::-1] for p in parts)
    nested = [{"id": i, "tags": [w for w in parts[i : i + 5]], "blob": joined[i : i + 300]} for i in range(0, len(parts), 3)]
    digest.update(joined.encode())
    digest.update(str(sum(len(v) for v in table.values())).encode())
    digest.update(repr(nested[-1]).encode())
    live.append(nested)
    if len(live) > 4:
        live.pop(0)
    del table, words, text, parts
print("rounds", rounds, "digest", digest.hexdigest())
