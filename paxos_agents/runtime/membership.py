"""The membership an agent runs, and the changes to it: `MembershipDesk`.

An agent starts with its spec's membership (the manifest's: version 0),
or with the versioned record its store keeps (members.py: a change made
while it ran, or before it restarted). Two steering frames change it
live, from the supervisor's pipe or an admin frame (clients.py):

- MEMBERS (`set_membership`): new proposers or learners. A MEMBERS that
  carries a `version` is refused unless it is newer than the one in
  force (an admin frame must carry one); the supervisor's carry none and
  are taken in the order sent (one writer, one ordered pipe), and are not
  kept. A versioned record is saved in the store before it takes effect
  or is answered, and a restarted agent runs it. A name the record
  retired is never welcomed as a peer (greeting.py), and peers no longer
  members are refused at the handshake.
- RECONFIG (`reconfigure`): propose the next configuration's acceptors
  (the alpha approach: core/configs.py), forwarded to the leader if this
  proposer does not lead.

Either returns None, or the one line why it was refused, for the channel
that asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..core.settings import Membership
from .admission import AdmissionRefused
from .members import MembersRecord
from .records import event
from .storage import Storage, StorageError

if TYPE_CHECKING:
    from ..core.node import Node
    from .selfview import Traffic
    from .transport import Transport

log = logging.getLogger("paxos_agents.agent")


class MembershipDesk:
    """The membership one agent runs (`version`, `record`) and its changes."""

    def __init__(self, name: str, storage: Storage, traffic: "Traffic") -> None:
        """Reads the stored record (`AdmissionRefused` if it no longer makes
        `name` a member); `attach` the node and the transport before a change."""
        self.name = name
        self._storage = storage
        self._traffic = traffic
        stored = stored_record(name, storage)
        #: The version of the membership in force (0: the spec's).
        self.version = stored.version if stored is not None else 0
        #: The membership record in force (None: the spec's, version 0).
        self.record: MembersRecord | None = stored
        self._node: "Node | None" = None
        self._transport: "Transport | None" = None

    def attach(self, node: "Node", transport: "Transport") -> None:
        """The node and the endpoint the membership steers; the stored record's
        retired names and addresses go to the endpoint now."""
        self._node, self._transport = node, transport
        if self.record is not None:
            transport.retired = self.record.retired
            transport.net.place(self.record.addresses)

    def set_membership(self, body: dict) -> str | None:
        """A MEMBERS (`paxosctl apply`, or an admin frame): new proposers or
        learners, live. Returns None, or the one line why it was refused.

        Peers that are no longer members are refused at the handshake from
        now on; the node stops sending to them (`Node.set_membership`). A
        body whose `version` is not newer than the one in force (`self.version`)
        is refused (an older record must not undo a newer one); a versioned body is a
        `MembersRecord` (its retired names, its members' addresses), saved
        in the store before it takes effect or is answered, and run at the
        next start. A body that changes this agent's roles, retires it or
        is malformed is logged, counted in `malformed` and refused.
        """
        assert self._node is not None and self._transport is not None, "attach first"
        version = body.get("version") if isinstance(body, dict) else None
        if version is not None and (type(version) is not int or version <= self.version):
            why = (f"membership version {version!r:.40} is not newer than this agent's "
                   f"{self.version}")
            log.warning("ignored a membership change: %s", why, extra=event("membership_refused"))
            return why
        stored: MembersRecord | None = None
        try:
            if version is not None:
                stored = MembersRecord.from_json(body)
                if self.name in stored.retired:
                    raise ValueError(f"it retires {self.name}, this agent")
                membership = stored.membership
            else:
                membership = Membership(tuple(body["proposers"]), tuple(body["acceptors"]),
                                        tuple(body["learners"]))
            if membership.roles(self.name) != self._node.roles:
                raise ValueError(f"{self.name}'s roles cannot change while it runs")
        except (KeyError, TypeError, ValueError) as e:
            self._traffic.malformed += 1
            log.error("ignored a membership change: %s", e, extra=event("membership_refused"))
            return f"membership change refused: {e}"
        if stored is not None:
            # Durable before it is in force or answered: a restart runs it (StorageError stops us).
            self._storage.save_members(stored.to_json())
            self.version = stored.version
            self.record = stored
            self._transport.retired = stored.retired
            self._transport.net.place(stored.addresses)
        self._node.set_membership(membership)
        self._transport.members = (frozenset(membership.proposers)
                                  | frozenset(membership.acceptors)
                                  | frozenset(membership.learners))
        log.info("membership now: proposers %s; learners %s%s",
                 ", ".join(membership.proposers), ", ".join(membership.learners),
                 f" (version {version})" if version is not None else "",
                 extra=event("membership_changed"))
        return None

    def reconfigure(self, body: dict) -> str | None:
        """A RECONFIG (`paxosctl scale`, `replace`, or an admin frame):
        propose the next configuration's acceptors (`Node.propose_config`;
        forwarded to the leader if this proposer does not lead). The
        outcome shows in heartbeats (`ConfigReport`); a refusal (a change
        already pending, not a proposer, a bad list) is returned, one
        line, for the channel that asked (RECONFIG_REFUSED on the pipe)."""
        assert self._node is not None, "attach first"
        try:
            acceptors = body["acceptors"]
            if not isinstance(acceptors, list):
                raise ValueError(f"acceptors: expected a list, got {acceptors!r:.60}")
            command = self._node.propose_config(acceptors)
        except (KeyError, TypeError, ValueError) as e:  # ConfigError is a ValueError
            log.warning("configuration change refused: %s", e)
            return str(e)
        log.info("proposed the next configuration: acceptors %s (%s)",
                 ", ".join(acceptors), command.request_id.replace("\x00", ""))
        return None


def stored_record(name: str, storage: Storage) -> MembersRecord | None:
    """The membership record `storage` keeps (None: none, the spec's applies).
    AdmissionRefused (exit 78) if it no longer makes `name` a member: a
    change removed or retired it, and starting it would only be refused."""
    body = storage.stored_members()
    if body is None:
        return None
    try:
        record = MembersRecord.from_json(body)
    except ValueError as e:
        raise StorageError(f"the stored membership record is corrupt: {e}") from None
    if name not in record.names:
        how = "retired" if name in record.retired else "removed"
        raise AdmissionRefused(
            f"{name} was {how} by membership version {record.version} (kept in its store): it "
            f"is no longer a member; remove its unit or StatefulSet (its files stay)")
    return record
