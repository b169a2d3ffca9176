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

from mmengine import registry as mmengine_registry
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry, build_from_cfg

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
#: Built by ``build_from_cfg``, not the parent's ``build_model_from_cfg``: that one imports
#: ``mmengine.model`` (and with it torch.distributed and sympy: 0.8 s of every process's
#: start) only to wrap a list of configs in an ``nn.Sequential``, which sganon never builds.
MODELS = PluginRegistry("model", parent=MMENGINE_MODELS, scope=SCOPE, build_func=build_from_cfg)
#: Training datasets (person crops, synthetic silhouettes).
DATASETS = PluginRegistry("dataset", parent=MMENGINE_DATASETS, scope=SCOPE)
#: Runner hooks (sample grids, metrics, weight export).
HOOKS = PluginRegistry("hook", parent=MMENGINE_HOOKS, scope=SCOPE)


def scoped_child(root: Registry) -> Registry:
    """A plain ``sganon`` child of one of mmengine's runner registries.

    With ``default_scope = "sganon"`` the Runner looks every part up in the sganon node of
    each registry tree (and warns where there is none); these children hold sganon's loops,
    samplers and optimizer parts, and fall back to mmengine's own classes.
    """
    return Registry(root.name, parent=root, scope=SCOPE)


LOOPS = scoped_child(mmengine_registry.LOOPS)
DATA_SAMPLERS = scoped_child(mmengine_registry.DATA_SAMPLERS)
OPTIMIZERS = scoped_child(mmengine_registry.OPTIMIZERS)
OPTIM_WRAPPERS = scoped_child(mmengine_registry.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = scoped_child(mmengine_registry.OPTIM_WRAPPER_CONSTRUCTORS)
MODEL_WRAPPERS = scoped_child(mmengine_registry.MODEL_WRAPPERS)
PARAM_SCHEDULERS = scoped_child(mmengine_registry.PARAM_SCHEDULERS)
LOG_PROCESSORS = scoped_child(mmengine_registry.LOG_PROCESSORS)
VISUALIZERS = scoped_child(mmengine_registry.VISUALIZERS)
VISBACKENDS = scoped_child(mmengine_registry.VISBACKENDS)
RUNNERS = scoped_child(mmengine_registry.RUNNERS)
RUNNER_CONSTRUCTORS = scoped_child(mmengine_registry.RUNNER_CONSTRUCTORS)
FUNCTIONS = scoped_child(mmengine_registry.FUNCTIONS)
