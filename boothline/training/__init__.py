"""DreamBooth training: class-prior images, the objective, batches, what trains (incl. fp32 master weights),
checkpoints, the loss log, validation grids, the training loop, saving the model and single-file export."""
