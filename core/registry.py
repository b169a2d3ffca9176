"""The mmengine registries of sganon.

There is ONE model registry, ``MODELS``: a child of mmengine's root ``MODELS`` in the scope
``sganon`` (a parent registry takes one child per scope). Detectors, surface embedders,
generators, discriminators and losses all register there; their *kind* is derived from the
interface they implement (see :mod:`sganon.core.interfaces`), not from the registry.

>>> from sganon.core.registry import MODELS
>>> MODELS.scope
'sganon'
"""

from __future__ import annotations

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

SCOPE = "sganon"


class PluginRegistry(Registry):
    """A registry whose lazy import step loads sganon's plugins.

    mmengine calls :meth:`import_from_location` before the first look-up (``get``,
    ``build``); instead of a fixed list of modules, the plugins named in the
    ``sganon.plugins`` entry-point group are loaded, so a config naming a plugin's class
    builds in a fresh process (a training worker, say) without any import by hand.
    """

    def import_from_location(self) -> None:
        if not self._imported:
            self._imported = True
            from .plugins import load_plugins  # late import: plugins import this module

            load_plugins()


#: Every network and anonymization component (detector, embedder, generator, discriminator, loss).
MODELS = PluginRegistry("model", parent=MMENGINE_MODELS, scope=SCOPE)
#: Training datasets (person crops, synthetic silhouettes).
DATASETS = PluginRegistry("dataset", parent=MMENGINE_DATASETS, scope=SCOPE)
#: Runner hooks (sample grids, metrics, weight export).
HOOKS = PluginRegistry("hook", parent=MMENGINE_HOOKS, scope=SCOPE)
