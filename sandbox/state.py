"""Everything the sandbox remembers, built fresh per app (tests get isolated instances)."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.chat import SlackWorkspace
from sandbox.crm import CrmStore
from sandbox.crm_ids import hubspot_id, salesforce_id
from sandbox.erp import OrderBook
from sandbox.faults import FaultBook
from sandbox.finance import FinanceSystem
from sandbox.github_events import GitHubEvents
from sandbox.hubspot_events import WebhookPusher
from sandbox.identity import Identities
from sandbox.limits import LimitBook
from sandbox.recorder import Recorder
from sandbox.salesforce_query import QueryCursors
from sandbox.smtp import Mailbox
from sandbox.teams import TeamsChannels

TARGETS = frozenset({"erp", "finance", "salesforce", "hubspot", "slack", "teams", "github"})
# Faults can also be set on the SMTP server, which is not an HTTP target.
FAULT_TARGETS = TARGETS | {"smtp"}


@dataclass
class SandboxState:
    recorder: Recorder
    faults: FaultBook
    limits: LimitBook
    finance: FinanceSystem
    erp: OrderBook
    salesforce: CrmStore
    salesforce_identities: Identities
    salesforce_queries: QueryCursors
    hubspot: CrmStore
    hubspot_identities: Identities
    hubspot_webhooks: WebhookPusher
    github: GitHubEvents
    slack: SlackWorkspace
    teams: TeamsChannels
    mailbox: Mailbox

    @classmethod
    def fresh(cls) -> SandboxState:
        faults = FaultBook(FAULT_TARGETS)
        hubspot = CrmStore(hubspot_id)
        return cls(
            recorder=Recorder(),
            faults=faults,
            limits=LimitBook(),
            finance=FinanceSystem(),
            erp=OrderBook(),
            salesforce=CrmStore(salesforce_id),
            salesforce_identities=Identities("salesforce"),
            salesforce_queries=QueryCursors(),
            hubspot=hubspot,
            hubspot_identities=Identities("hubspot"),
            hubspot_webhooks=WebhookPusher(hubspot),
            github=GitHubEvents(),
            slack=SlackWorkspace(),
            teams=TeamsChannels(),
            mailbox=Mailbox(faults),
        )

    def reset(self) -> None:
        """Back to a just-started sandbox: no faults, records, orders, ledger, mail or limits."""
        self.faults.clear()
        self.recorder.clear()
        self.limits.reset()
        self.finance.clear()
        self.finance.rules = type(self.finance.rules)()
        self.erp.clear()
        self.salesforce.clear()
        self.salesforce_identities.reset()
        self.salesforce_queries.clear()
        self.hubspot.clear()
        self.hubspot_identities.reset()
        self.hubspot_webhooks.configure(None)
        self.github.reset()
        self.slack.reset()
        self.teams.reset()
        self.mailbox.clear()
