"""What things are: models (shapes, configs, checkpoints, the catalog), hardware (GPUs, links),
precisions, engines, environments, prices, calibration profiles, and the :class:`Deployment`
value object that ties them together. Depends on nothing above it."""
