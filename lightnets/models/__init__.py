"""Model families; importing this package registers every model (one import line per family)."""
from lightnets.models import efficientnet, mixnet, mnasnet  # noqa: F401
from lightnets.models import mobilenet_v1, mobilenet_v2, mobilenet_v3  # noqa: F401
from lightnets.models import vgnet  # noqa: F401
from lightnets.models import mobilefacenet, squeezenet, xception  # noqa: F401
from lightnets.models import shufflenet_v1, shufflenet_v2  # noqa: F401
