"""Mail the notifications e-mail channel sent, read from moto's SES (the test runtime's, in this process)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from tests.support.waiting import wait_until

ACCOUNT, REGION = "123456789012", "us-east-1"


@dataclass(frozen=True)
class SentMail:
    to: list[str]
    subject: str
    text: str

    def link_token(self) -> str:
        """The ``token`` of the one signed link (``funnel.platform.account_tokens.link``) the mail carries."""
        [token] = [value for word in self.text.split() if "token=" in word
                   for value in parse_qs(urlparse(word).query).get("token", [])]
        return token


def sent_to(address: str) -> list[SentMail]:
    """Every simple (not raw) message SES sent to ``address``, oldest first."""
    from moto.ses.models import ses_backends

    found = []
    for message in ses_backends[ACCOUNT][REGION].sent_messages:
        # a simple message's destinations are {"ToAddresses": [...]}; a raw one's (campaign mail) a plain list
        if not hasattr(message, "body") or not isinstance(message.destinations, dict):
            continue
        to = list(message.destinations.get("ToAddresses", []))
        if address.lower() in (a.lower() for a in to):
            found.append(SentMail(to=to, subject=str(message.subject), text=str(message.body)))
    return found


def wait_for_mail(address: str, subject_contains: str = "", count: int = 1, timeout: float = 30.0) -> SentMail:
    """The ``count``-th mail to ``address`` whose subject contains ``subject_contains``, once SES has it."""
    mails = wait_until(lambda: [m for m in sent_to(address) if subject_contains in m.subject],
                       lambda found: len(found) >= count, timeout, f"no mail {count} to {address}", interval=0.05)
    return mails[count - 1]
