"""Training data: the on-disk person-crop format, its dataset, checks, preparation and augmentation.

Modules: :mod:`.format` (files and folders), :mod:`.dataset` (``PersonCropDataset``),
:mod:`.check` (``sganon data check``), :mod:`.prepare` (``sganon data prepare``),
:mod:`.augment` (training-time augmentation).
"""
