#!/usr/bin/env python3
"""Disjoint LinUCB (Li et al. 2010, algorithm 1) in plain numpy, on a stream
exported by `bandit-quality --export DIR`: the reference nba's bandits are
compared with, on the same rows and paid by the same draws.

Each action keeps A = I + sum x x^T (its inverse by Sherman-Morrison) and
b = sum r x; the candidate with the largest theta.x + alpha*sqrt(x.A^-1.x)
is chosen (ties at random), pays u < p and is learned at once.

Usage: numpy_linucb.py PREFIX [--alphas 0.1,0.25,0.5,1] [--seed 0]
Prints one JSON object: {"alpha": {"mean_reward": ..., "mean_realised": ...}, ...}.
"""
import argparse
import json

import numpy as np


def run(x, p, u, alpha, seed):
    n, d = x.shape
    k = p.shape[1]
    a_inv = np.repeat(np.eye(d)[None, :, :], k, axis=0)
    b = np.zeros((k, d))
    rng = np.random.default_rng(seed)
    expected = realised = 0.0
    for t in range(n):
        xt = x[t]
        cand = np.flatnonzero(~np.isnan(p[t]))
        inv = a_inv[cand]
        theta = np.einsum("kij,kj->ki", inv, b[cand])
        ax = inv @ xt
        score = theta @ xt + alpha * np.sqrt(np.maximum(ax @ xt, 0.0))
        best = np.flatnonzero(score == score.max())
        a = cand[rng.choice(best)]
        r = 1.0 if u[t, a] < p[t, a] else 0.0
        expected += p[t, a]
        realised += r
        # Sherman-Morrison: (A + x x^T)^-1
        v = a_inv[a] @ xt
        a_inv[a] -= np.outer(v, v) / (1.0 + xt @ v)
        b[a] += r * xt
    return expected / n, realised / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prefix")
    ap.add_argument("--alphas", default="0.05,0.1,0.25,0.5,1,2")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with open(args.prefix + ".json") as f:
        meta = json.load(f)
    n, d, k = meta["rows"], meta["dim"], meta["actions"]
    x = np.fromfile(args.prefix + ".x", dtype="<f8").reshape(n, d)
    p = np.fromfile(args.prefix + ".p", dtype="<f4").reshape(n, k).astype(np.float64)
    u = np.fromfile(args.prefix + ".u", dtype="<f4").reshape(n, k).astype(np.float64)
    out = {}
    for alpha in [float(s) for s in args.alphas.split(",")]:
        e, r = run(x, p, u, alpha, args.seed)
        out[repr(alpha)] = {"mean_reward": e, "mean_realised": r}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
