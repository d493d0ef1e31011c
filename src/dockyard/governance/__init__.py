"""Identity, permissions and the audit log: used by every service, using none of them."""

from dockyard.governance.audit import Actor, record_event

__all__ = ["Actor", "record_event"]
