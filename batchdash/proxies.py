"""The client's address, also behind reverse proxies: for the login lockout and the audit log.

Behind a proxy every request comes from the proxy's address, so a lockout per address would
lock an account for everyone after one attacker's failures, and the audit log would name the
proxy. With TRUSTED_PROXY_COUNT proxies in front, each appends the address it received the
request from to X-Forwarded-For, so the client is the entry that many places from the right.
Entries further left are whatever the client sent, and are never believed.

django-axes reads this through its own AXES_CLIENT_IP_CALLABLE setting. Its AXES_IPWARE_*
settings would do the same, but only with django-ipware installed, which this project does
not need for one header.
"""

import ipaddress

from django.conf import settings


def client_address(request) -> str:
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < count:
        # Fewer hops than proxies: the request did not come through them all; trust only the socket.
        return remote
    candidate = forwarded[-count]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return remote  # not an address: the proxy was not configured as TRUSTED_PROXY_COUNT says
    return candidate
