"""Device models and mappings: real products' decoded fields → a sensor kind's native fields.

Public surface: ``DeviceModel``, ``ModelCatalog``, ``builtin_models``, ``load_model_file``,
``to_reading`` and ``MappingError``.
"""

from devices.mapping import MappingError, to_reading
from devices.models import DeviceModel, ModelCatalog, builtin_models, load_model_file

__all__ = [
    "DeviceModel",
    "MappingError",
    "ModelCatalog",
    "builtin_models",
    "load_model_file",
    "to_reading",
]
