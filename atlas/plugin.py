"""Everything a plugin author needs, in one import: ``from atlas.plugin import ...``.

The hook marker and the register callables' types, the registration records, a Protocol for
each kind of factory, the value types factories return, helpers and the errors to raise.
Nothing here loads the registry, so a plugin importing it cannot form an import cycle.
"""

from __future__ import annotations

from .contracts import (
    Dataset,
    DatasetLoader,
    DatasetSource,
    ModelLoader,
    ModelLookup,
    ModelSource,
    ObjectiveFactory,
    Option,
    Parameterization,
    ParamFactory,
    RegularizerFactory,
)
from .datasets import DatasetError
from .engine.objectives import Objective
from .engine.params import ImageParam
from .engine.regularizers import Penalty
from .errors import AtlasError, ModelError, PluginError, WeightsError, unknown
from .hookspecs import (
    RegisterDatasets,
    RegisterModels,
    RegisterObjectives,
    RegisterParameterizations,
    RegisterRegularizers,
    hookimpl,
)
from .models.adapter import InputSpec, ModelAdapter
from .models.sources import unknown_name
from .models.tokens import TokenGrid
from .models.weights import file_digest

__all__ = [
    "AtlasError",
    "Dataset",
    "DatasetError",
    "DatasetLoader",
    "DatasetSource",
    "ImageParam",
    "InputSpec",
    "ModelAdapter",
    "ModelError",
    "ModelLoader",
    "ModelLookup",
    "ModelSource",
    "Objective",
    "ObjectiveFactory",
    "Option",
    "ParamFactory",
    "Parameterization",
    "Penalty",
    "PluginError",
    "RegisterDatasets",
    "RegisterModels",
    "RegisterObjectives",
    "RegisterParameterizations",
    "RegisterRegularizers",
    "RegularizerFactory",
    "TokenGrid",
    "WeightsError",
    "file_digest",
    "hookimpl",
    "unknown",
    "unknown_name",
]
