"""Table numbers, registers and flags by the names the pipeline modules use. All of them come from the
stage registry (`stages.py`), the one place the layout is declared."""

from .stages import REGISTERS, table

# Physical → logical
CLASSIFY = table("classify")
# Logical switch ingress
LS_IN_START = table("ls_in_start")
LS_IN_HOOK = table("ls_in_hook")
THIRD_PARTY = table("third_party")  # flows of other software live here; ours only add the pass-through
LS_IN_ARP_CTL = table("ls_in_arp_ctl")
LS_IN_ACL = table("ls_in_acl")
LS_IN_ACL_EVAL = table("ls_in_acl_eval")
LS_IN_LB = table("ls_in_lb")
LS_IN_QOS = table("ls_in_qos")
LS_IN_MIRROR = table("ls_in_mirror")
LS_IN_ARP = table("ls_in_arp")
LS_IN_LOOKUP = table("ls_in_lookup")
LS_IN_OUTPUT = table("ls_in_output")
LS_IN_ONDEMAND = table("ls_in_ondemand")  # unknown destination -> the agent (on-demand hosts)
# Logical switch egress
LS_OUT_START = table("ls_out_start")
LS_OUT_LOOPBACK = table("ls_out_loopback")
LS_OUT_ACL = table("ls_out_acl")
LS_OUT_ACL_EVAL = table("ls_out_acl_eval")
ACL_DENY = table("acl_deny")
ACL_REJECT = table("acl_reject")
LS_OUT_MIRROR = table("ls_out_mirror")
LS_OUT_PORT = table("ls_out_port")
LS_OUT_TO_ROUTER = table("ls_out_to_router")
# Logical router ingress
LR_IN_START = table("lr_in_start")
LR_IN_ICMP = table("lr_in_icmp")
LR_IN_TTL = table("lr_in_ttl")
LR_IN_UNSNAT = table("lr_in_unsnat")
LR_IN_UNSNAT_CT = table("lr_in_unsnat_ct")
LR_IN_LB = table("lr_in_lb")
LR_IN_DNAT = table("lr_in_dnat")
LR_IN_DNAT_CT = table("lr_in_dnat_ct")
LR_IN_ROUTE = table("lr_in_route")
LR_IN_ECMP = table("lr_in_ecmp")
# Logical router egress
LR_OUT_START = table("lr_out_start")
LR_OUT_UNDNAT = table("lr_out_undnat")
LR_OUT_UNDNAT_CT = table("lr_out_undnat_ct")
LR_OUT_SNAT = table("lr_out_snat")
LR_OUT_SNAT_CT = table("lr_out_snat_ct")
LR_OUT_NEXTHOP = table("lr_out_nexthop")
LR_OUT_TO_SWITCH = table("lr_out_to_switch")
LS_MAC_BIND = table("ls_mac_bind")  # (switch, IP) → MAC: resolves a router's next hop once in the switch
# Shared
TO_CHASSIS = table("to_chassis")  # chassis (tunnel IP in reg9) → its tunnel ofport; the only flows that know ofports
OUTPUT = table("output")
ARP_RESPOND = table("arp_respond")
EMBED = table("embed")
EXTRACT = table("extract")
FROM_TUNNEL = table("from_tunnel")
DROP = table("drop")

# Registers
R_SRC_PORT = REGISTERS["src_port"]
R_DST_PORT = REGISTERS["dst_port"]
R_NEXT_HOP = REGISTERS["next_hop"]
R_OUT_LRP_IP = REGISTERS["out_lrp_ip"]
R_OFPORT = REGISTERS["ofport"]
R_DECIDED = REGISTERS["decided"]
R_NEXT_LR = REGISTERS["next_lr"]
R_NEXT_LRP = REGISTERS["next_lrp"]
R_SCRATCH = REGISTERS["scratch"]
R_CHASSIS = REGISTERS["chassis"]
R_FLAGS = REGISTERS["flags"]

F_LOOPBACK = 0x1  # the packet may leave through the port it came in on
F_TRACE = 0x2
F_REDIRECT = 0x4
F_NAT = 0x8

OFPORT_NONE = 0xFFFF

# Userdata opcodes of controller() actions (first 4 bytes of the userdata); 0.3's numbers where 0.3 had them
# (reference §3.10). Handlers register in pinctrl.PacketIns.register (the opcode registry).
OP_ARP_LEARN = 0x1  # ARP frame: learn the sender's binding (edges)
OP_ARP_GENERATE = 0x2  # IP frame: send an ARP request for its next hop (edges)
OP_TRACE = 0x3  # live trace point (paused: the handler reports and resumes)
OP_UNKNOWN_DST = 0x4  # L2 lookup miss on an on-demand host: compute the destination's flows (ondemand.py)
OP_TTL_EXCEEDED = 0x10
OP_LB_HEALTH = 0x11  # TCP to the health-check monitor address: a probe reply (healthcheck.py, on the OpenFlow thread)
