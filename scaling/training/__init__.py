"""Training a planned point: the runner (rows and statuses), the one loop, its steppers, and the
pieces they share (batches, evaluation, optimizers, devices, process groups, trackers)."""
