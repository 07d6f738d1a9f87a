"""Table numbers, registers and flags of the pipeline: the one place they are defined.

The layout follows TupleNet 0.3 (reference §3.7–§3.8) so traces and operators' habits carry over.
"""

# Physical → logical
CLASSIFY = 0
# Logical switch ingress
LS_IN_START = 1
LS_IN_HOOK = 2
THIRD_PARTY = 201  # flows of other software live here; ours only add the pass-through at priority 0
LS_IN_ARP_CTL = 3
LS_IN_ARP = 4
LS_IN_LOOKUP = 6
LS_IN_OUTPUT = 7
# Logical switch egress
LS_OUT_START = 20
LS_OUT_LOOPBACK = 21
LS_OUT_PORT = 22
LS_OUT_TO_ROUTER = 23
# Logical router ingress
LR_IN_START = 30
LR_IN_ICMP = 31
LR_IN_TTL = 32
LR_IN_UNSNAT = 33
LR_IN_DNAT = 35
LR_IN_ROUTE = 37
LR_IN_ECMP = 38
# Logical router egress
LR_OUT_START = 50
LR_OUT_UNDNAT = 51
LR_OUT_SNAT = 53
LR_OUT_NEXTHOP = 55
LR_OUT_TO_SWITCH = 57
LS_MAC_BIND = 59  # (switch, IP) → MAC: resolves a router's next hop once the packet is in the switch
# Shared
TO_CHASSIS = 93  # chassis (by tunnel IP in reg9) → its tunnel ofport; the only flows that know ofports
OUTPUT = 94
ARP_RESPOND = 96
EMBED = 97
EXTRACT = 98
FROM_TUNNEL = 99
DROP = 101

# Registers
R_SRC_PORT = "reg0"      # source port id (16 bit)
R_DST_PORT = "reg1"      # destination port id, 0 = unknown
R_NEXT_HOP = "reg2"      # IP to resolve (next hop or destination)
R_OUT_LRP_IP = "reg3"    # IP of the egress router port
R_OFPORT = "reg4"        # output ofport (0xffff = none)
R_DECIDED = "reg5"       # 1 once the output is decided
R_NEXT_LR = "reg6"       # router id on the LS → LR hand-off
R_NEXT_LRP = "reg7"      # router port id on the LS → LR hand-off
R_SCRATCH = "reg8"       # scratch (IP swap in the ICMP responder)
R_CHASSIS = "reg9"       # destination chassis, as its tunnel IP
R_FLAGS = "reg10"        # flags below; bits 8–15 trace sequence; 16–31 trace command id

F_LOOPBACK = 0x1  # the packet may leave through the port it came in on
F_TRACE = 0x2
F_REDIRECT = 0x4
F_NAT = 0x8

OFPORT_NONE = 0xFFFF

# Userdata opcodes of controller() actions (first 4 bytes of the userdata)
OP_TTL_EXCEEDED = 0x10
