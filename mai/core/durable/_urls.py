"""Store URLs as they may be shown: the one place where a store URL's password is redacted.

A store URL can carry a password (``postgresql://user:PASSWORD@host/db``, or a ``password=``
query parameter). Everything pymai prints, logs, raises, names a thread after or records in a
trace shows :func:`redact_url` of the URL instead, and text that may quote the URL or the
password (a driver's error message) goes through :func:`redact_text` first.

Both functions never raise: they work on text, not on a parsed URL, so a malformed URL (a bad
port, an unencoded ``@`` or ``/`` in the password) is redacted as well as a valid one.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

#: What a redacted password is replaced with.
MASK = "***"

# The patterns are compiled on first use (by ``re``'s cache), not when the runtime is imported.
#: ``password=value`` in a query string (value up to ``&`` or ``#``).
_QUERY_PATTERN = r"(?i)((?:^|[?&;])[a-z_]*password=)([^&#;]*)"
#: ``password=value`` in a libpq keyword/value string (``host=db password='it''s'``).
_KEYWORD_PATTERN = r"(?i)(\b[a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)"


def _split_authority(url: str) -> tuple[str, str, str, str] | None:
    """Split ``url`` into (``scheme://``, user, password, rest) when it has ``user:password@``.

    The user information ends at the last ``@`` before the query, so a password holding an
    unencoded ``@`` or ``/`` is still taken whole (over-redacting an odd path is harmless).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or rest.startswith("/"):
        return None
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    at = head.rfind("@")
    if at < 0:
        return None
    user, colon, password = head[:at].partition(":")
    if not colon:
        return None
    return scheme + sep, user, password, rest[at:]


def redact_url(url: str) -> str:
    """Return ``url`` with its password (if any) replaced by ``***``, ready to be shown.

    The user name, host, port, path and other query parameters are kept; the password in the
    user information (``scheme://user:PASSWORD@host``) and every ``...password=`` query
    parameter are masked. A string that is not a URL (a libpq ``key=value`` connection string)
    has its ``password=`` values masked. Never raises.

    Example::

        mai.redact_url("postgresql://app:s3cret@db:5432/mai?sslmode=require")
        # -> 'postgresql://app:***@db:5432/mai?sslmode=require'

    Args:
        url: A store URL, as given to :class:`mai.Runtime` or ``mai --store``.

    Returns:
        The URL without any secret in it.
    """
    if "://" not in url:
        return re.sub(_KEYWORD_PATTERN, lambda m: m.group(1) + MASK, url)
    parts = _split_authority(url)
    if parts is not None:
        scheme, user, _, rest = parts
        url = f"{scheme}{user}:{MASK}{rest}"
    head, q, tail = url.partition("?")
    if q:
        url = head + q + re.sub(_QUERY_PATTERN, lambda m: m.group(1) + MASK, tail)
    return url


def url_secrets(url: str) -> list[str]:
    """The secrets ``url`` carries, as they may appear in text: raw and percent-decoded.

    Longest first, so that replacing them in order never leaves part of one behind.
    """
    found: set[str] = set()
    parts = _split_authority(url)
    if parts is not None and parts[2]:
        found.add(parts[2])
    if "://" in url:
        found.update(m.group(2) for m in re.finditer(_QUERY_PATTERN, url.partition("?")[2]))
    else:
        found.update(m.group(2).strip("'") for m in re.finditer(_KEYWORD_PATTERN, url))
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def redact_text(text: str, url: str) -> str:
    """Return ``text`` with every appearance of ``url``'s password replaced by ``***``.

    For text that may quote the URL or the password itself, such as a database driver's error
    message or a third-party store's exception: the URL is replaced by its redacted form, then
    any remaining occurrence of the password (as written in the URL, or percent-decoded) is
    masked. Never raises.

    Args:
        text: The text to clean.
        url: The store URL whose secrets must not appear.

    Returns:
        ``text`` without the secrets.
    """
    secrets = url_secrets(url)
    if not secrets or not text:
        return text
    text = text.replace(url, redact_url(url))
    for secret in secrets:  # any case: a message may have lower-cased the URL
        text = re.sub(re.escape(secret), MASK, text, flags=re.IGNORECASE)
    return text
