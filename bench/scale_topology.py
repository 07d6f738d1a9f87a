"""Synthetic topologies at the issue's scale, shared by the agent benchmarks."""

from __future__ import annotations

import argparse

from tuplenet.model import LR, LRP, LS, LSP, LSR, Chassis


def add_scale_args(ap: argparse.ArgumentParser) -> None:
    """The issue's scale, shared by every benchmark that builds this topology."""
    ap.add_argument("--chassis", type=int, default=2000)
    ap.add_argument("--ports", type=int, default=20000)
    ap.add_argument("--switches", type=int, default=200)
    ap.add_argument("--routers", type=int, default=20)


def mac(ip: str) -> str:
    return "f2:01:" + ":".join(f"{int(x):02x}" for x in ip.split("."))


def build(n_chassis: int = 2000, n_ls: int = 200, n_lr: int = 20, n_ports: int = 20000,
          local: str = "hv1", local_ports: int = 50) -> list:
    """Entities: chassis hv1..hvN; LS i = 10.<i//250>.<i%250>.0/24 under router i % n_lr; ports spread
    round-robin over chassis (the first `local_ports` on `local`)."""
    out: list = [Chassis(f"hv{i + 1}", f"172.16.{(i + 2) // 250}.{(i + 2) % 250 + 1}", 1) for i in range(n_chassis)]
    for r in range(n_lr):
        out.append(LR(f"lr{r}", n_ls + r + 1))
        out.append(LSR(f"lr{r}", "default", "0.0.0.0", 0, f"10.250.{r}.254", f"lr{r}_to_ls{r}"))
    per_ls = n_ports // n_ls
    count = 0
    for i in range(n_ls):
        ls = f"ls{i}"
        net = f"10.{i // 250}.{i % 250}"
        out.append(LS(ls, i + 1))
        r = i % n_lr
        gw = f"{net}.1"
        out.append(LRP(f"lr{r}", f"lr{r}_to_{ls}", gw, 24, mac(gw), f"{ls}_to_lr{r}"))
        out.append(LSP(ls, f"{ls}_to_lr{r}", gw, mac(gw), f"lr{r}_to_{ls}"))
        for j in range(per_ls):
            ip = f"{net}.{j + 2}"
            chassis = local if count < local_ports else f"hv{count % n_chassis + 1}"
            out.append(LSP(ls, f"p{i}-{j}", ip, mac(ip), None, chassis))
            count += 1
    return out
