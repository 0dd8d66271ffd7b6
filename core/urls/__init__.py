"""URL validation for downloads: which URLs may be fetched, which addresses dialed.

`UrlPolicy` is the one place that decides (see `core.urls.policy` for the rules and
`core.urls.addresses` for the forbidden ranges). A refusal is a `UrlRefusedError`, a
PERMANENT `DownloadError` whose `rule` names the rule that was broken.
"""

from core.urls.addresses import FORBIDDEN_RANGES, ForbiddenRange, embedded_ipv4, forbidden_range_of
from core.urls.errors import RefusalRule, UrlRefusedError
from core.urls.hosts import NormalisedHost, normalise_host
from core.urls.policy import (
    DEFAULT_MAX_URL_LENGTH,
    Resolver,
    UrlPolicy,
    ValidatedUrl,
    system_resolver,
    url_for_logs,
)

__all__ = [
    "DEFAULT_MAX_URL_LENGTH",
    "FORBIDDEN_RANGES",
    "ForbiddenRange",
    "NormalisedHost",
    "RefusalRule",
    "Resolver",
    "UrlPolicy",
    "UrlRefusedError",
    "ValidatedUrl",
    "embedded_ipv4",
    "forbidden_range_of",
    "normalise_host",
    "system_resolver",
    "url_for_logs",
]
