"""The endpoints a broker advertises to clients: each client listener's advertised host and port,
else its bound ones (a wildcard host advertised as ``localhost``)."""

from __future__ import annotations

from kbroker.config import BrokerConfig, Endpoint


def advertised_endpoints(config: BrokerConfig, bound: dict[str, tuple[str, int]]) -> list[tuple[str, str, int]]:
    """(listener name, host, port) of each client listener as advertised: ``advertised.listeners``,
    else where it is bound (``bound``: listener name -> bound host and port)."""
    advertised = {e.listener: e for e in config.advertised_listeners}
    out = []
    for endpoint in config.client_listeners:
        bound_host, bound_port = bound.get(endpoint.listener, (endpoint.host, endpoint.port))
        adv: Endpoint | None = advertised.get(endpoint.listener)
        if adv is not None:
            host, port = adv.host, adv.port or bound_port
        else:
            host = endpoint.host
            if host in ("", "0.0.0.0", "::"):
                host = "localhost"
            port = bound_port
        out.append((endpoint.listener, host, port))
    return out


def bootstrap_servers(endpoints: list[tuple[str, str, int]]) -> str:
    """``host:port,...`` of the advertised endpoints."""
    return ",".join(f"{host}:{port}" for _name, host, port in endpoints)


def listener_endpoint(endpoints: list[tuple[str, str, int]], listener: str) -> tuple[str, int]:
    """The advertised host and port of ``listener``, else of the first listener."""
    for name, host, port in endpoints:
        if name == listener:
            return host, port
    _, host, port = endpoints[0]
    return host, port
