"""Signed, expiring approve/reject links (pure: itsdangerous, no I/O).

A link names one approval and one decision; its token is signed with the notification link
secret and expires with ``SYNAPSEOPS_NOTIFICATIONS_LINK_HOURS`` (or the approval's own expiry,
whichever is first). Opening a link shows a confirmation page; only the page's POST (with the
token) answers, so a mail scanner or a chat unfurler that GETs every URL approves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from synapseops.errors import ApprovalLinkInvalid

Decision = Literal["approve", "reject"]
_SALT = "synapseops.notifications.approval-link"


@dataclass(frozen=True)
class LinkClaim:
    approval_id: str
    decision: Decision


class ApprovalLinks:
    def __init__(self, secret: str, base_url: str, max_age_s: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.base_url = base_url.rstrip("/")
        self.max_age_s = max_age_s

    def token(self, approval_id: str, decision: Decision) -> str:
        return self._serializer.dumps({"a": approval_id, "d": decision})

    def url(self, approval_id: str, decision: Decision) -> str:
        token = self.token(approval_id, decision)
        return f"{self.base_url}/services/notifications/approvals/link/{token}"

    def read(self, token: str) -> LinkClaim:
        try:
            data = self._serializer.loads(token, max_age=int(self.max_age_s))
        except SignatureExpired as exc:
            raise ApprovalLinkInvalid("this link has expired") from exc
        except BadSignature as exc:
            raise ApprovalLinkInvalid("this link is not valid") from exc
        if not isinstance(data, dict) or data.get("d") not in ("approve", "reject"):
            raise ApprovalLinkInvalid("this link is not valid")
        return LinkClaim(str(data["a"]), data["d"])
