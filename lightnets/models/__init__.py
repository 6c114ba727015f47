"""Model families; importing this package registers every model (one import line per family)."""
from lightnets.models import efficientnet, mixnet, mnasnet  # noqa: F401
from lightnets.models import vgnet  # noqa: F401
