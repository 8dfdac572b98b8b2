"""One quick check that the Hugging Face hub answers, before anything is loaded from it.

Unreachable, ``huggingface_hub`` retries each request with back-off (eleven retries, about 30 s,
before a transformers loader gives up), so a run started offline would print screens of retry
lines and then fail anyway. Every component that loads a hub name calls :func:`require_hub`
first: with ``HF_HUB_OFFLINE`` set it does nothing (the libraries read the local hub cache at
once); otherwise it asks the endpoint once per process, with a short timeout, and an unreachable
hub is refused in one line.
"""

from __future__ import annotations

import functools
import urllib.error
import urllib.request

from collapse_bench.errors import ConfigError

#: Seconds the probe waits for the hub to answer.
TIMEOUT_S = 5.0


@functools.cache
def _unreachable(endpoint: str) -> str | None:
    """Why ``endpoint`` does not answer an HTTP request, or ``None`` when it answers (any status)."""
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=TIMEOUT_S).close()
    except urllib.error.HTTPError:  # an answer, whatever its status: the hub is there
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason) or type(exc).__name__
    return None


def require_hub(what: str) -> None:
    """Refuse, in one line and at once, to load ``what`` (a hub name) when the hub is unreachable.

    Nothing is checked when ``HF_HUB_OFFLINE`` is set: then the local hub cache answers.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return
    reason = _unreachable(constants.ENDPOINT)
    if reason is not None:
        raise ConfigError(
            f"{what} is a Hugging Face hub name, but the hub ({constants.ENDPOINT}) is unreachable: {reason}",
            "set HF_HUB_OFFLINE=1 to load it from the local hub cache, give a local path instead, "
            "or connect to the network",
        )
