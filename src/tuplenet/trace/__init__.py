"""Offline packet tracing: a pure interpreter of the agent's own flows (no OVS, no etcd).

`packet` builds and decodes packets, `compiled` indexes one chassis's flows, `interp` walks them the way
OVS does, `fabric` follows tunnels from chassis to chassis, `report` renders the result (text, JSON).
`tpctl trace --simulate` (cli/trace.py) feeds it the etcd model; the live trace reuses `report`.
"""
