"""Money in minor units, exactly: Decimal digits are moved, never multiplied through float.

The exponent of a currency is its ISO 4217 "minor unit": JPY 0, USD 2, KWD 3. Only the
currencies that differ from 2 are listed; codes ISO 4217 gives no minor unit (metals, SDR,
test codes) are refused rather than guessed. A payment provider may disagree with ISO (Stripe
counts MGA, ISK and UGX as zero-decimal) — the ``exponent`` option of a rule overrides the
table for that reason.
"""

from __future__ import annotations

import functools
import re
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal

ISO_4217_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}
NO_MINOR_UNIT: frozenset[str] = frozenset(
    "XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX".split()
)
_CODE = re.compile(r"[A-Za-z]{3}")
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


class MoneyError(ValueError):
    """A currency or an amount that cannot be converted exactly."""


def currency_exponent(code: str) -> int:
    """The ISO 4217 minor-unit exponent of ``code`` (case-insensitive: Stripe says ``usd``)."""
    if type(code) is str:
        return _exponent_of_text(code)
    return _exponent_of(code)


@functools.lru_cache(maxsize=512)
def _exponent_of_text(code: str) -> int:
    # A payload names the same few currencies again and again: answer them from the cache
    # (the cache holds answers only; a refused code raises again each time).
    return _exponent_of(code)


def _exponent_of(code: str) -> int:
    if not isinstance(code, str) or not _CODE.fullmatch(code.strip()):
        raise MoneyError(f"{code!r} is not a three-letter currency code")
    upper = code.strip().upper()
    if upper in NO_MINOR_UNIT:
        raise MoneyError(f"currency {upper} has no minor unit")
    return ISO_4217_EXPONENTS.get(upper, 2)


def to_minor_units(amount: Decimal, exponent: int) -> int:
    """``Decimal('19.99')``, 2 → ``1999``. Refuses amounts finer than the currency allows:
    ``1.005`` USD is a bug upstream, and rounding it here would hide that."""
    if not amount.is_finite():
        raise MoneyError(f"{amount} is not a finite amount")
    # scaleb only moves the exponent; the context is wide enough never to round a digit.
    units = amount.scaleb(exponent, _EXACT)
    if units != units.to_integral_value():
        raise MoneyError(f"{amount} has more than {exponent} decimal places")
    return int(units)


def from_minor_units(units: int, exponent: int) -> Decimal:
    """``190200``, 2 → ``Decimal('1902.00')`` with exactly ``exponent`` places."""
    return Decimal(units).scaleb(-exponent, _EXACT)
