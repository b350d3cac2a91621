"""The reference agent fleet: the seven agent services and fault injection on one gRPC server."""

from agents._fleet import SERVICE_NAMES, Fleet, FleetConfig, serve_fleet, start_fleet

__all__ = [
    # Configuration.
    "FleetConfig",
    # Running the fleet.
    "Fleet",
    "serve_fleet",
    "start_fleet",
    # What it serves.
    "SERVICE_NAMES",
]
