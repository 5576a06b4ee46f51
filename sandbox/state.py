"""Everything the sandbox remembers, built fresh per app (tests get isolated instances)."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox import hubspot, salesforce
from sandbox.chat import SlackWorkspace
from sandbox.crm import CrmStore
from sandbox.erp import OrderBook
from sandbox.faults import FaultBook
from sandbox.finance import FinanceSystem
from sandbox.recorder import Recorder
from sandbox.smtp import Mailbox

TARGETS = frozenset({"erp", "finance", "salesforce", "hubspot", "slack", "teams"})
# Faults can also be set on the SMTP server, which is not an HTTP target.
FAULT_TARGETS = TARGETS | {"smtp"}


@dataclass
class SandboxState:
    recorder: Recorder
    faults: FaultBook
    finance: FinanceSystem
    erp: OrderBook
    salesforce: CrmStore
    hubspot: CrmStore
    slack: SlackWorkspace
    mailbox: Mailbox

    @classmethod
    def fresh(cls) -> SandboxState:
        faults = FaultBook(FAULT_TARGETS)
        return cls(
            recorder=Recorder(),
            faults=faults,
            finance=FinanceSystem(),
            erp=OrderBook(),
            salesforce=salesforce.new_store(),
            hubspot=hubspot.new_store(),
            slack=SlackWorkspace(),
            mailbox=Mailbox(faults),
        )

    def reset(self) -> None:
        """Back to a just-started sandbox: no faults, records, orders, ledger or mail."""
        self.faults.clear()
        self.recorder.clear()
        self.finance.clear()
        self.finance.rules = type(self.finance.rules)()
        self.erp.clear()
        self.salesforce.clear()
        self.hubspot.clear()
        self.slack.reset()
        self.mailbox.clear()
