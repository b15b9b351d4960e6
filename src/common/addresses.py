"""The one canonical form of an email address: how every service finds, counts and compares
an account's address.

``canonical(text)`` is applied wherever an address comes in (register, login, verify, account
deletion, the per-account login limit, the operator's commands), and the auth database compares
the result byte for byte (``utf8mb4_bin``): two spellings are one account exactly when their
canonical forms are equal, and the limits count exactly what the database matches.

The form, in order:

1. surrounding whitespace is dropped (what a form or a copy-paste adds);
2. Unicode NFKC: full-width, ligature and other compatibility spellings become the plain
   characters they stand for (``ｄｅｖ`` is ``dev``), so they cannot pose as another account;
3. refused: control, format (zero-width, soft hyphen, bidirectional), private-use, unassigned
   and surrogate characters, and any space inside: invisible differences are not allowed;
4. the local part is lower-cased (Unicode ``lower``; ``Dev`` is ``dev``) and the domain is
   mapped by IDNA (UTS #46, as ``email_validator`` does) and lower-cased. Not ``casefold``:
   casefolding turns ``ß`` into ``ss``, which IDNA 2008 treats as another domain, so the email
   would go to someone else's mailbox;
5. refused: a label (the local part, each domain label) that mixes scripts other than as
   Unicode's "highly restrictive" level (UTS #39) allows: one script, plus the common
   characters (digits, punctuation), or Latin with Han and Japanese kana, or Latin with Han
   and Hangul, or Latin with Han and Bopomofo. A Cyrillic ``е`` inside a Latin word is refused;
   an all-Cyrillic or all-Greek label is fine.

Accents are kept (``exämple.com`` is a domain of its own, not ``example.com``); the binary
comparison keeps them apart.
"""

import unicodedata

from confusable_homoglyphs import categories
from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # RFC 5321's limit on a forward path, and the auth column's width
# Unicode general categories refused anywhere in an address.
_REFUSED = {"Cc": "a control character", "Cf": "an invisible formatting character",
            "Co": "a private-use character", "Cn": "an unassigned character",
            "Cs": "a surrogate", "Zs": "a space", "Zl": "a line separator",
            "Zp": "a paragraph separator"}
_NEUTRAL = {"COMMON", "INHERITED"}
# UTS #39 "highly restrictive": the script sets a single label may mix.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
)


class InvalidAddress(ValueError):
    """The text is not an address this service accepts; the message says why."""


def canonical(text) -> str:
    """The canonical form of the address ``text``; raises InvalidAddress with a reason."""
    if not isinstance(text, str):
        raise InvalidAddress("invalid email: the address must be a string")
    address = unicodedata.normalize("NFKC", text.strip())
    if not address:
        raise InvalidAddress("invalid email: the address is empty")
    if len(address) > MAX_LENGTH:
        raise InvalidAddress(f"invalid email: the address is longer than {MAX_LENGTH} "
                             "characters")
    for char in address:
        reason = _REFUSED.get(unicodedata.category(char))
        if reason:
            raise InvalidAddress(f"invalid email: the address contains {reason} "
                                 f"(U+{ord(char):04X})")
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"invalid email: {exc}") from None
    local = unicodedata.normalize("NFKC", checked.local_part.lower())
    domain = unicodedata.normalize("NFKC", checked.domain.lower())
    for label in (local, *domain.split(".")):
        _single_script(label)
    result = f"{local}@{domain}"
    if len(result) > MAX_LENGTH:
        raise InvalidAddress(f"invalid email: the address is longer than {MAX_LENGTH} "
                             "characters")
    return result


def _single_script(label: str) -> None:
    """Raise InvalidAddress when ``label`` mixes scripts in a way look-alikes use."""
    scripts = {categories.aliases_categories(char)[0] for char in label} - _NEUTRAL
    if len(scripts) <= 1 or any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        return
    raise InvalidAddress(f"invalid email: the address mixes the "
                         f"{' and '.join(sorted(scripts)).lower()} alphabets in '{label}': "
                         "write each part in one alphabet")


def try_canonical(text) -> str | None:
    """``canonical(text)``, or None when it is not an acceptable address."""
    try:
        return canonical(text)
    except InvalidAddress:
        return None
