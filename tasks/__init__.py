"""fab-vps: Fabric-driven deploys of Docker Compose stacks on a VPS. The fab tasks live here, one module per
thing users do; the layers under them in core/."""
__version__ = "0.5.0"
