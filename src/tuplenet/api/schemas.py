"""Request and response shapes. Only shape is checked here (fields, types); values (names, IPs, MACs,
CIDRs) are validated by tuplenet.control, the same code tpctl runs, so the rules live in one place."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


Name = Field(description="object name: no '/', ',' or control characters; surrounding spaces trimmed")
RequestedChassisText = ("chassis the VM port is requested on (it binds there, even taken from a live chassis; peers "
                        "reach it there before the claim): a CMS that knows the host sets it")


# ---- requests ----------------------------------------------------------------------------------------------

class SwitchIn(_In):
    name: str = Name


class MirrorIn(_In):
    name: str = Name
    port: str = Field(description="the mirrored switch port as SWITCH/PORT")
    target: str = Field(description="local:<ovs port> | erspan:<ip>[:<session>] | geneve:<ip>[:<vni>]")
    direction: str = Field("both", description="in (what the VM sends), out (what it receives) or both")


class SwitchPortIn(_In):
    """A switch port with a given `ip`, or with the first free address of `subnet` (IPAM) when `ip` is absent."""

    name: str = Name
    ip: str | None = Field(None, description="port IP; required unless subnet is given")
    mac: str | None = Field(None, description="defaults to f2:01:<ip bytes>")
    peer: str | None = Field(None, description="peer router port (set by router links)")
    chassis: str | None = Field(None, description="chassis the port is bound to (normally set by the agent)")
    requested_chassis: str | None = Field(None, description=RequestedChassisText)
    subnet: str | None = Field(None, description="allocate the first free IP of this CIDR instead of `ip`")
    gateway: str | None = Field(None, description="with subnet: address never allocated (default: first host)")


class RequestedChassisIn(_In):
    """Where an existing port is requested: a chassis name moves the port there, null clears it."""

    requested_chassis: str | None = Field(description=RequestedChassisText + "; null clears it")


class PatchPortIn(_In):
    name: str = Name
    chassis: str
    peer_bridge: str = Field(description="OVS bridge on the chassis the switch is bridged to")


class RouterIn(_In):
    name: str = Name
    chassis: str | None = Field(None, description="pin the router to this chassis (centralised)")


class LinkIn(_In):
    switch: str
    cidr: str = Field(description="router address on the switch, e.g. 10.0.0.1/24")
    mac: str | None = None


class RouterPortIn(_In):
    name: str = Name
    cidr: str
    mac: str | None = None
    peer: str | None = None


class StaticRouteIn(_In):
    name: str = Name
    cidr: str = Field(description="destination, e.g. 0.0.0.0/0")
    next_hop: str
    outport: str = Field(description="router port the route leaves by")


class NatIn(_In):
    name: str = Name
    cidr: str = Field(description="internal address or network")
    xlate_type: str = Field(description="snat or dnat")
    xlate_ip: str


# ---- responses (documentation: handlers return the dicts directly, as tpctl --json prints them) ------------

class Switch(_Out):
    name: str
    id: int


class MirrorOut(_Out):
    name: str
    port: str
    switch: str
    lsp: str
    direction: str
    target: str


class Router(_Out):
    name: str
    id: int
    chassis: str | None = None


class SwitchPort(_Out):
    switch: str
    name: str
    ip: str
    mac: str
    peer: str | None = None
    chassis: str | None = None
    requested_chassis: str | None = None
    ready: str | None = Field(None, description="reads only: true (every flow installed on its chassis), false or "
                              "unknown (no report from that chassis); absent for router-facing and patch ports")


class RouterPort(_Out):
    router: str
    name: str
    ip: str
    prefix: int
    mac: str
    peer: str | None = None


class StaticRoute(_Out):
    router: str
    name: str
    ip: str
    prefix: int
    next_hop: str
    outport: str


class Nat(_Out):
    router: str
    name: str
    ip: str
    prefix: int
    xlate_type: str
    xlate_ip: str


class ChassisOut(_Out):
    name: str
    ip: str
    tick: int
    live: bool = Field(description="its agent holds a liveness key right now")


class Link(BaseModel):
    switch_port: SwitchPort
    router_port: RouterPort


class Deleted(BaseModel):
    deleted: list[str]


class Problems(BaseModel):
    problems: list[str] = Field(description="empty when everything looks good")


class DeviceIds(BaseModel):
    device_ids: list[int]


class BooksChanged(BaseModel):
    books_changed: int


class IdMember(BaseModel):
    id: int
    ip: str


class IdMembers(BaseModel):
    members: list[IdMember]


class ImportOut(BaseModel):
    created: int
    replaced: int
    ids_assigned: int
    batches: int
    present: int = Field(description="with resume: records an earlier run (or anyone) had already written")
    resumed: bool


class Abandoned(BaseModel):
    abandoned: str = Field(description="the interrupted import whose marker was removed")


class ErrorOut(BaseModel):
    error: str = Field(description="one line")
    kind: str = Field(description="e.g. invalid_argument, not_found, already_exists, not_empty, conflict")
