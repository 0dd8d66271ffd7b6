"""The token refresher actor: keeps every scope's token in the TokenCache fresh ahead of need.

refresher  TokenRefresherActor: the schedule loop, refresh requests, failure reports
schedule   when a cached token is due for replacement
scope      one scope's refresh state and statistics
"""

from actors.token_refresher.refresher import (
    DEFAULT_EXTRA_LEAD,
    REFRESH_RETRY,
    ExpiringTokenSource,
    ScopeRefreshStats,
    TokenRefresherActor,
    TokenRefreshError,
    ask_for_fresh_token,
)

__all__ = [
    "DEFAULT_EXTRA_LEAD",
    "REFRESH_RETRY",
    "ExpiringTokenSource",
    "ScopeRefreshStats",
    "TokenRefreshError",
    "TokenRefresherActor",
    "ask_for_fresh_token",
]
