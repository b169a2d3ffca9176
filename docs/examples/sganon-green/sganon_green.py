"""Example third-party sganon plugin: a generator that paints every person green."""

import torch
from sganon.core import MODELS, Generator, hookimpl
from sganon.core.capabilities import GeneratorCapabilities


@MODELS.register_module()
class SolidGreen(Generator):
    name = "solid-green"  # --generator solid-green
    description = "paints the person green"

    @classmethod
    def capabilities(cls, args):  # what sganon build and the pipeline assembly check
        # Any crop size, no surface map, no latent, not realistic (a baseline).
        return GeneratorCapabilities(resolution=None, surface_channels=0, realistic=False)

    def anonymize(self, batch, z=None, truncation=None, rng=None):
        green = torch.tensor([-1.0, 1.0, -1.0], device=batch.image.device).view(1, 3, 1, 1)
        return torch.where(batch.mask.bool(), batch.image, green.expand_as(batch.image))


@hookimpl
def sganon_presets():
    return [{"name": "green.solid", "kind": "generator", "component": "solid-green"}]
