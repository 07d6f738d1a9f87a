"""ACLs, port groups and address sets (tpctl acl|pg|as): docs/acl.md. Rules carry `hits`, the packets their
flows matched, summed over the agents' reports (as `tpctl acl show`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from .common import ERRORS, Run, location, many, no_content, one
from .schemas import Name, _In, _Out

routes = APIRouter(tags=["acls"], responses=ERRORS)
_ON = {"switches": "ls", "port-groups": "pg"}


class AddressSetIn(_In):
    name: str = Name
    addresses: list[str] = Field(default_factory=list, description="IPv4 addresses or networks (CIDR)")


class PortGroupIn(_In):
    name: str = Name
    ports: list[str] = Field(default_factory=list, description="existing switch ports as SWITCH/PORT")


class MembersIn(_In):
    add: list[str] = Field(default_factory=list, description="members to add")
    remove: list[str] = Field(default_factory=list, description="members to remove")


class AclIn(_In):
    name: str = Name
    direction: str = Field(description="in (what a port sends) or out (what a port receives)")
    priority: int = Field(description="0-32767, the highest matching rule decides")
    action: str = Field(description="allow, allow-related, drop or reject")
    src: str | None = Field(None, description="IP, CIDR, $ADDRESS_SET or @PORT_GROUP")
    dst: str | None = Field(None, description="IP, CIDR, $ADDRESS_SET or @PORT_GROUP")
    proto: str | None = Field(None, description="tcp, udp, icmp or 0-255")
    sport: str | None = Field(None, description="N or LO-HI (needs proto tcp or udp)")
    dport: str | None = Field(None, description="N or LO-HI (needs proto tcp or udp)")


class AddressSetOut(_Out):
    name: str
    addresses: list[str]


class PortGroupOut(_Out):
    name: str
    ports: list[str]


class AclOut(_Out):
    name: str
    direction: str
    priority: int
    action: str
    hits: int = Field(description="packets matched, summed over the hosts' last reports")


def _svc(c: Any) -> Any:
    from tuplenet.control.acls import Acls

    return Acls(c.core)


def _with_hits(rules: list, hits: dict[str, int]) -> list[dict]:
    return [{**r.to_json(), "hits": hits.get(r.key, 0)} for r in sorted(rules, key=lambda r: r.name)]


# ---- address sets and port groups ---------------------------------------------------------------------------

@routes.get("/address-sets", response_model=list[AddressSetOut], summary="list address sets (as show)")
async def list_address_sets(run: Run) -> JSONResponse:
    return many(run, await run(lambda c: _svc(c).list_address_sets()))


@routes.post("/address-sets", status_code=201, response_model=AddressSetOut, summary="add an address set (as add)")
async def add_address_set(body: AddressSetIn, run: Run) -> JSONResponse:
    s = await run(lambda c: _svc(c).add_address_set(body.name, body.addresses))
    return one(s, 201, location("address-sets", s.name))


@routes.get("/address-sets/{name}", response_model=AddressSetOut, summary="one address set (as show NAME)")
async def get_address_set(name: str, run: Run) -> JSONResponse:
    return one(await run(lambda c: _svc(c).get_address_set(name)))


@routes.post("/address-sets/{name}/addresses", response_model=AddressSetOut,
             summary="add/remove addresses of an address set (as addr-add|addr-del)")
async def change_address_set(name: str, body: MembersIn, run: Run) -> JSONResponse:
    return one(await run(lambda c: _svc(c).change_address_set(name, body.add, body.remove)))


@routes.delete("/address-sets/{name}", status_code=204, summary="delete an address set (as del)")
async def delete_address_set(name: str, run: Run) -> Response:
    await run(lambda c: _svc(c).delete_address_set(name))
    return no_content()


@routes.get("/port-groups", response_model=list[PortGroupOut], summary="list port groups (pg show)")
async def list_port_groups(run: Run) -> JSONResponse:
    return many(run, await run(lambda c: _svc(c).list_port_groups()))


@routes.post("/port-groups", status_code=201, response_model=PortGroupOut, summary="add a port group (pg add)")
async def add_port_group(body: PortGroupIn, run: Run) -> JSONResponse:
    g = await run(lambda c: _svc(c).add_port_group(body.name, body.ports))
    return one(g, 201, location("port-groups", g.name))


@routes.get("/port-groups/{name}", response_model=PortGroupOut, summary="one port group (pg show NAME)")
async def get_port_group(name: str, run: Run) -> JSONResponse:
    return one(await run(lambda c: _svc(c).get_port_group(name)))


@routes.post("/port-groups/{name}/ports", response_model=PortGroupOut,
             summary="add/remove ports of a port group (pg port-add|port-del)")
async def change_port_group(name: str, body: MembersIn, run: Run) -> JSONResponse:
    return one(await run(lambda c: _svc(c).change_port_group(name, body.add, body.remove)))


@routes.delete("/port-groups/{name}", status_code=204, summary="delete a port group and its rules (pg del)")
async def delete_port_group(name: str, run: Run) -> Response:
    await run(lambda c: _svc(c).delete_port_group(name))
    return no_content()


# ---- rules ----------------------------------------------------------------------------------------------------

def _list(where: str):  # type: ignore[no-untyped-def]
    async def list_acls(parent: str, run: Run) -> JSONResponse:
        def read(c: Any) -> list[dict]:
            svc = _svc(c)
            return _with_hits(svc.list_acls(_ON[where], parent), svc.hits())
        return JSONResponse(await run(read))
    return list_acls


def _add(where: str):  # type: ignore[no-untyped-def]
    async def add_acl(parent: str, body: AclIn, run: Run) -> JSONResponse:
        fields = {k: str(v) for k, v in body.model_dump().items() if k != "name" and v is not None}
        acl = await run(lambda c: _svc(c).add_acl(_ON[where], parent, body.name, fields))
        return JSONResponse({**acl.to_json(), "hits": 0}, status_code=201,
                            headers={"Location": location(where, parent, "acls", acl.name)})
    return add_acl


def _get(where: str):  # type: ignore[no-untyped-def]
    async def get_acl(parent: str, acl: str, run: Run) -> JSONResponse:
        def read(c: Any) -> dict:
            svc = _svc(c)
            return _with_hits([svc.get_acl(_ON[where], parent, acl)], svc.hits())[0]
        return JSONResponse(await run(read))
    return get_acl


def _delete(where: str):  # type: ignore[no-untyped-def]
    async def delete_acl(parent: str, acl: str, run: Run) -> Response:
        await run(lambda c: _svc(c).delete_acl(_ON[where], parent, acl))
        return no_content()
    return delete_acl


for _where, _noun in (("switches", "switch"), ("port-groups", "port group")):
    _base = f"/{_where}/{{parent}}/acls"
    _op = _where.replace("-", "_")
    routes.add_api_route(_base, _list(_where), methods=["GET"], response_model=list[AclOut],
                         summary=f"list a {_noun}'s ACL rules with hits (acl show)", operation_id=f"list_{_op}_acls")
    routes.add_api_route(_base, _add(_where), methods=["POST"], status_code=201, response_model=AclOut,
                         summary=f"add an ACL rule to a {_noun} (acl add)", operation_id=f"add_{_op}_acl")
    routes.add_api_route(_base + "/{acl}", _get(_where), methods=["GET"], response_model=AclOut,
                         summary=f"one ACL rule of a {_noun} (acl show NAME)", operation_id=f"get_{_op}_acl")
    routes.add_api_route(_base + "/{acl}", _delete(_where), methods=["DELETE"], status_code=204,
                         summary=f"delete a {_noun}'s ACL rule (acl del)", operation_id=f"delete_{_op}_acl")
