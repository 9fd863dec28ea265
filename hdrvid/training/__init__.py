"""Training, for `hdrvid train`: `loop` (options, the optimiser loop, validation, checkpoints,
resume, export) on the windows `data` synthesises from a data folder. A model's own loss terms
live beside its network and are named by its `ModelSpec.train_step`; this package holds what
every model shares."""
