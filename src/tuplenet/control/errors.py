"""Errors of management operations; each message is one line, 0.3's wording where 0.3 had one."""

from __future__ import annotations


class ControlError(Exception):
    """An operation was refused and nothing was written."""


class InvalidArgument(ControlError):
    """Bad input (name, IP, MAC, CIDR, ...)."""


class NotFound(ControlError):
    """The object (or its parent) does not exist."""


class AlreadyExists(ControlError):
    """An object of that name already exists."""


class Conflict(ControlError):
    """The change collides with existing data (port id, id space) or lost too many races."""


class NotEmpty(ControlError):
    """A delete without -r on an object that still has children."""


class VersionMismatch(ControlError):
    """The tree was written by a newer controller whose layout we may not understand."""
