"""Model families; importing this package registers every model (one name per family)."""

from lightnets.models import (  # noqa: F401
    arch,
    efficientnet,
    mixnet,
    mnasnet,
    mobilefacenet,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    shufflenet_v1,
    shufflenet_v2,
    squeezenet,
    vgnet,
    xception,
)
